"""Optimizer parameter groups of the A2MIM recipes and a warmup + step schedule (`trainer.A2MIMTrainer` uses them)."""

import math
from collections.abc import Callable

from torch import nn
from torch.optim.lr_scheduler import LambdaLR

# Parameters the fine-tuning recipes exclude from weight decay by name (norms and biases are found by type / suffix);
# each pretraining recipe has its own list (`PretrainingRecipe.no_weight_decay`).
NO_DECAY_NAME_PARTS = (
    "mask_token",
    "cls_token",
    "position_embeddings",
    "lambda_1",
    "lambda_2",
    "relative_position_bias_table",
    "layer_scale_parameter",
)
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def mask_token_lr_multiplier(multiplier: float = 0.1) -> Callable[[str], float]:
    """The CNN recipes' hook: the mask token and its gamma learn at `multiplier` x the base learning rate."""
    return lambda name: multiplier if name.split(".")[-1] in ("mask_token", "mask_gamma") else 1.0


def no_weight_decay_names(model: nn.Module, name_parts: tuple[str, ...] = NO_DECAY_NAME_PARTS) -> set[str]:
    """Names of the parameters without weight decay: norm weights/biases, all biases, and every parameter whose name
    contains one of `name_parts` (by default the mask token, cls token, position embeddings, layer scale and relative
    position bias tables)."""
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, NORM_TYPES):
            names.update(f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters(recurse=False))
    for name, _ in model.named_parameters():
        leaf = name.split(".")[-1]
        if leaf == "bias" or any(part in name for part in name_parts):
            names.add(name)
    return names


def build_parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    lr_multiplier: Callable[[str], float] | None = None,
    no_decay_name_parts: tuple[str, ...] = NO_DECAY_NAME_PARTS,
) -> list[dict]:
    """Optimizer parameter groups, one per (weight decay, lr multiplier) pair.

    Each group holds `lr = learning_rate * multiplier` (learning rate schedulers scale every group's own initial lr)
    and records `lr_multiplier`. Frozen parameters are left out; see `no_weight_decay_names` for `no_decay_name_parts`.
    """
    no_decay = no_weight_decay_names(model, no_decay_name_parts)
    groups: dict[tuple[float, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = 0.0 if name in no_decay else weight_decay
        multiplier = lr_multiplier(name) if lr_multiplier is not None else 1.0
        group = groups.setdefault(
            (decay, multiplier),
            {"params": [], "param_names": [], "weight_decay": decay, "lr": learning_rate * multiplier,
             "lr_multiplier": multiplier},
        )
        group["params"].append(param)
        group["param_names"].append(name)
    return list(groups.values())


def base_learning_rate(optimizer, first_group_rate: float) -> float:
    """The base learning rate (multiplier 1) when the optimizer's first group runs at `first_group_rate`: every group's
    rate is the base rate times its `lr_multiplier` (`build_parameter_groups`; schedules scale all groups alike)."""
    multiplier = optimizer.param_groups[0].get("lr_multiplier", 1.0) if optimizer.param_groups else 1.0
    return first_group_rate / multiplier if multiplier else first_group_rate


def get_warmup_step_schedule(optimizer, num_warmup_steps: int, num_training_steps: int, decay_at: float,
                             gamma: float = 0.1) -> LambdaLR:
    """Linear warmup, then constant, then x`gamma` from step `decay_at * num_training_steps` (the ViT recipe decays
    at epoch 700 of 800: `decay_at=0.875`)."""
    milestone = math.floor(decay_at * num_training_steps)

    def factor(step: int) -> float:
        if step < num_warmup_steps:
            return (step + 1) / (num_warmup_steps + 1)
        return gamma if step >= milestone else 1.0

    return LambdaLR(optimizer, factor)
