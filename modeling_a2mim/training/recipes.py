"""Pretraining recipe defaults per preset family, and how they fill the `TrainingArguments` the user left unset.

The seed recipes (A2MIM paper / reference implementation, ImageNet-1k at global batch 2048):

| | ResNet (100 ep) | ViT (800 ep) |
|---|---|---|
| AdamW lr per 512 images | 3e-4 (1.2e-3 at 2048) | 1e-4 (4e-4 at 2048) |
| betas, weight decay | (0.9, 0.999), 0.05 | (0.9, 0.999), 0.05 |
| warmup | 10 of 100 epochs (0.1) | 10 of 800 epochs (0.0125) |
| schedule | cosine to 1e-5 (min lr rate 1e-5 / 1.2e-3) | x0.1 at epoch 700 of 800 (0.875) |
| grad clip | none | 5 |
| mask token lr | x0.1 | x1 |

The `-micro` presets are CPU demo sizes, not paper models: they keep the family's rules but use a larger lr per
512 images and a cosine schedule so that a few hundred steps on a small batch already reconstruct visibly.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PretrainingRecipe:
    """Optimizer and schedule defaults of one recipe.

    `learning_rate_per_512` is scaled linearly by the global batch (per device x processes x accumulation) / 512.
    `warmup` is a fraction of the training steps. `schedule` is `"cosine"` (to `min_lr_rate` x peak) or `"step"`
    (x0.1 at `step_decay_at` x training steps). `max_grad_norm=0` disables clipping.
    """

    learning_rate_per_512: float
    weight_decay: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    warmup: float = 0.1
    schedule: str = "cosine"
    min_lr_rate: float = 0.0
    step_decay_at: float | None = None
    max_grad_norm: float = 0.0
    mask_token_lr_multiplier: float = 1.0


RECIPES = {
    "resnet": PretrainingRecipe(3e-4, warmup=0.1, schedule="cosine", min_lr_rate=1e-5 / 1.2e-3,
                                mask_token_lr_multiplier=0.1),
    "vit": PretrainingRecipe(1e-4, warmup=10 / 800, schedule="step", step_decay_at=700 / 800, max_grad_norm=5.0),
    # convnext_*_l3_sz224_init_8xb256_cos_ep300: as ResNet, 10 of 300 epochs warmup.
    "convnext": PretrainingRecipe(3e-4, warmup=10 / 300, schedule="cosine", min_lr_rate=1e-5 / 1.2e-3,
                                  mask_token_lr_multiplier=0.1),
    "convnext-micro": PretrainingRecipe(1.6e-2, warmup=0.05, schedule="cosine", min_lr_rate=0.01,
                                        mask_token_lr_multiplier=0.1),
    "resnet-micro": PretrainingRecipe(1.6e-2, warmup=0.05, schedule="cosine", min_lr_rate=0.01,
                                      mask_token_lr_multiplier=0.1),
    "vit-micro": PretrainingRecipe(1.6e-2, warmup=0.05, schedule="cosine", min_lr_rate=0.01, max_grad_norm=5.0),
}

# TrainingArguments fields a recipe fills when the user did not pass them.
RECIPE_FIELDS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "warmup_steps", "lr_scheduler_type",
                 "lr_scheduler_kwargs", "max_grad_norm")


def recipe_for(config, preset: str | None = None) -> tuple[str, PretrainingRecipe]:
    """`(name, recipe)` for a preset name, else the preset the config remembers (`vit-micro` / `resnet-micro` get the
    demo recipes), else the config's family."""
    preset = preset or config.preset
    family = config.family
    name = f"{family}-micro" if preset and preset.endswith("-micro") else family
    return name, RECIPES[name]


def global_batch_size(training_args) -> int:
    """Images per optimizer step over all processes: per-device batch x accumulation steps x processes."""
    return (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
            * max(training_args.world_size, 1))


def apply_recipe(training_args, recipe: PretrainingRecipe, explicit: set[str]) -> dict:
    """Fill the recipe's values into `training_args` for every field in `RECIPE_FIELDS` not in `explicit` (the flags
    the user passed). Returns `{field: value}` of what was set, plus `step_decay_at` when the step schedule applies
    (the caller hands it to `A2MIMTrainer`). An explicit `--learning_rate` is used as is, not scaled."""
    global_batch = global_batch_size(training_args)
    values = {
        "learning_rate": recipe.learning_rate_per_512 * global_batch / 512,
        "weight_decay": recipe.weight_decay,
        "adam_beta1": recipe.adam_beta1,
        "adam_beta2": recipe.adam_beta2,
        "warmup_steps": recipe.warmup,
        "max_grad_norm": recipe.max_grad_norm,
    }
    if recipe.schedule == "cosine":
        values["lr_scheduler_type"] = "cosine_with_min_lr"
        if "lr_scheduler_type" not in explicit:  # the kwargs belong to the recipe's scheduler, not to the user's
            values["lr_scheduler_kwargs"] = {"min_lr_rate": recipe.min_lr_rate}
    applied = {name: value for name, value in values.items() if name not in explicit}
    for name, value in applied.items():
        setattr(training_args, name, value)
    if recipe.schedule == "step" and "lr_scheduler_type" not in explicit:
        applied["step_decay_at"] = recipe.step_decay_at
    return applied
