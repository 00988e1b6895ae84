"""Recipes as data, and the one rule both scripts apply them by: a recipe fills the `TrainingArguments` you did not
pass, its learning rate scaled from the recipe's reference batch to your global batch.

`PRETRAINING_RECIPES` holds the pretraining recipe of every preset (openmixup `configs/selfsup/a2mim/`, all at global
batch 2048; the table keeps the learning rate per 512 images, scaled linearly). The fine-tuning protocols are
`FinetuningRecipe`s in `modeling_a2mim/finetuning/recipes.py`; both are `Recipe`s and go through `apply_recipe`.
`python -m modeling_a2mim.training.recipes` prints the README's pretraining recipe table from this data.
"""

import dataclasses
import logging
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

LR_SCALINGS = ("linear", "sqrt")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """What every recipe sets: the learning rate for `reference_batch_size` images per optimizer step (`None`: used
    as given, whatever the batch), how it follows the batch (`lr_scaling`: "linear" or "sqrt"), weight decay, warmup
    (a fraction of the training steps) and gradient clipping (`max_grad_norm`, 0 disables it)."""

    learning_rate: float
    reference_batch_size: int | None
    lr_scaling: str = "linear"
    weight_decay: float = 0.05
    warmup: float = 0.0
    max_grad_norm: float = 0.0

    def __post_init__(self):
        if self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"lr_scaling={self.lr_scaling!r}; use one of {', '.join(LR_SCALINGS)}.")

    def scaled_learning_rate(self, global_batch: int) -> float:
        """The learning rate for `global_batch` images per optimizer step."""
        if not self.reference_batch_size:
            return self.learning_rate
        ratio = global_batch / self.reference_batch_size
        return self.learning_rate * (ratio**0.5 if self.lr_scaling == "sqrt" else ratio)

    def training_arguments(self) -> dict:
        """`{TrainingArguments field: value}` this recipe sets, the learning rate aside (see `apply_recipe`)."""
        return {"weight_decay": self.weight_decay, "warmup_steps": self.warmup, "max_grad_norm": self.max_grad_norm}

    def to_dict(self) -> dict:
        return asdict(self)


def global_batch_size(training_args) -> int:
    """Images per optimizer step over all processes: per-device batch x accumulation steps x processes."""
    return (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
            * max(training_args.world_size, 1))


def apply_recipe(training_args, recipe: Recipe, explicit: set[str], scale_learning_rate: bool = True) -> dict:
    """Set every `TrainingArguments` field the recipe defines and the user did not pass (`explicit`), and return
    `{field: value}` of what was set.

    The learning rate is the recipe's scaled to `global_batch_size(training_args)` (unscaled with
    `scale_learning_rate=False`); an explicit `--learning_rate` is used as is. Scheduler kwargs belong to the recipe's
    scheduler: an explicit `--lr_scheduler_type` gets none of them.
    """
    values = recipe.training_arguments()
    values["learning_rate"] = (
        recipe.scaled_learning_rate(global_batch_size(training_args)) if scale_learning_rate else recipe.learning_rate
    )
    applied = {name: value for name, value in values.items() if name not in explicit}
    if "lr_scheduler_type" in explicit:
        applied.pop("lr_scheduler_kwargs", None)
    for name, value in applied.items():
        setattr(training_args, name, value)
    return applied


def with_overrides(recipe: Recipe, recipe_args, training_args, given: set[str], training_flags: dict[str, str],
                   scale_learning_rate: bool = True) -> tuple[Recipe, dict]:
    """`(effective recipe, {TrainingArguments field: value set})`: `recipe` with the user's overrides (every field of
    the `recipe_args` dataclass that is also a recipe field and not `None`, and each TrainingArguments flag of
    `training_flags` (flag -> recipe field) that is in `given`), then applied to `training_args` by `apply_recipe`.
    Shared by the fine-tuning and segmentation scripts."""
    recipe_fields = {f.name for f in dataclasses.fields(recipe)}
    overrides = {f.name: getattr(recipe_args, f.name) for f in dataclasses.fields(recipe_args)
                 if f.name in recipe_fields and getattr(recipe_args, f.name) is not None}
    overrides.update({field: getattr(training_args, flag) for flag, field in training_flags.items() if flag in given})
    effective = dataclasses.replace(recipe, **overrides)
    return effective, apply_recipe(training_args, effective, given, scale_learning_rate=scale_learning_rate)


# ----- pretraining --------------------------------------------------------------------------------------------------

# Parameters without weight decay besides norms and biases, by name part (the configs' `paramwise_options`; the
# ViT configs decay the relative position bias tables, which BEiT's own fine-tuning does not).
VIT_NO_DECAY = ("mask_token", "cls_token", "position_embeddings", "lambda_1", "lambda_2")
RESNET_NO_DECAY = ("mask_token", "mask_gamma")
CONVNEXT_NO_DECAY = ("mask_token", "mask_gamma", "layer_scale_parameter")


@dataclass(frozen=True, kw_only=True)
class PretrainingRecipe(Recipe):
    """An A2MIM pretraining recipe (AdamW). `schedule` is "cosine" (to `min_lr_rate` x peak) or "step" (x0.1 at
    `step_decay_at` x training steps); `mask_token_lr_multiplier` scales the mask token's and its gamma's learning
    rate; `no_weight_decay` lists name parts excluded from weight decay besides norms and biases; `source` names the
    openmixup config the values come from."""

    source: str
    reference_batch_size: int | None = 512
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    schedule: str = "cosine"
    min_lr_rate: float = 0.0
    step_decay_at: float | None = None
    mask_token_lr_multiplier: float = 1.0
    no_weight_decay: tuple[str, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        if (self.schedule == "step") != (self.step_decay_at is not None):
            raise ValueError("A step schedule needs step_decay_at, and only a step schedule has one.")

    def training_arguments(self) -> dict:
        values = {**super().training_arguments(), "adam_beta1": self.adam_beta1, "adam_beta2": self.adam_beta2}
        if self.schedule == "cosine":
            values.update(lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": self.min_lr_rate})
        return values


def _vit_recipe(source: str, learning_rate: float = 1e-4, **changes) -> PretrainingRecipe:
    """openmixup's ViT recipe: 10 warmup epochs of 800, x0.1 at epoch 700, grad clip 5."""
    values = dict(learning_rate=learning_rate, warmup=10 / 800, schedule="step", step_decay_at=700 / 800,
                  max_grad_norm=5.0, no_weight_decay=VIT_NO_DECAY)
    return PretrainingRecipe(source=source, **{**values, **changes})


def _cnn_recipe(source: str, epochs: int, no_weight_decay=RESNET_NO_DECAY, **changes) -> PretrainingRecipe:
    """openmixup's ResNet/ConvNeXt recipe: 3e-4 per 512, 10 warmup epochs, cosine to 1e-5 (at 1.2e-3 peak), mask
    token and gamma at x0.1."""
    values = dict(learning_rate=3e-4, warmup=10 / epochs, min_lr_rate=1e-5 / 1.2e-3, mask_token_lr_multiplier=0.1,
                  no_weight_decay=no_weight_decay)
    return PretrainingRecipe(source=source, **{**values, **changes})


def _micro_recipe(family_recipe: PretrainingRecipe) -> PretrainingRecipe:
    """CPU demo sizes, not paper models: the family's rules with a larger lr per 512 images and a cosine schedule, so
    that a few hundred steps on a small batch already reconstruct visibly."""
    return PretrainingRecipe(
        source="CPU demo (no openmixup config)", learning_rate=1.6e-2, warmup=0.05, schedule="cosine",
        min_lr_rate=0.01, max_grad_norm=family_recipe.max_grad_norm,
        mask_token_lr_multiplier=family_recipe.mask_token_lr_multiplier, no_weight_decay=family_recipe.no_weight_decay,
    )


_IN1K = "configs/selfsup/a2mim/imagenet/"
_IN100 = "configs/selfsup/a2mim/imagenet100/"
PRETRAINING_RECIPES = {
    "vit-small": _vit_recipe(_IN1K + "vit_small_l0_sz224_8xb256_step_ep800.py"),
    "vit-base": _vit_recipe(_IN1K + "vit_base_l0_sz224_8xb128_accu2_step_ep800.py"),
    "vit-large": _vit_recipe(_IN1K + "vit_large_l0_sz224_8xb128_accu2_step_ep800.py"),
    "deit-small": _vit_recipe(_IN100 + "deit_small_l8_sz192_4xb256_accu2_cos_ep800.py", learning_rate=2e-4,
                              schedule="cosine", step_decay_at=None, min_lr_rate=1e-5 / 8e-4),
    "resnet-50": _cnn_recipe(_IN1K + "r50_l3_sz224_init_8xb256_cos_ep100.py", epochs=100),
    "resnet-101": _cnn_recipe(_IN1K + "r101_l3_sz224_init_8xb256_cos_ep300.py", epochs=300),
    "resnet-152": _cnn_recipe(_IN1K + "r152_l3_sz224_init_8xb256_cos_ep300.py", epochs=300),
    "resnet-200": _cnn_recipe(_IN1K + "r200_l3_sz224_init_8xb256_cos_ep300.py", epochs=300),
    "resnet-50-in100": _cnn_recipe(_IN100 + "r50_l3_sz192_4xb256_accu2_cos_fp16_ep800.py", epochs=800),
    **{f"convnext-{size}": _cnn_recipe(_IN1K + f"convnext_{size[0]}_l3_sz224_init_8xb256_cos_ep300.py", epochs=300,
                                       no_weight_decay=CONVNEXT_NO_DECAY)
       for size in ("tiny", "small", "base")},
}
PRETRAINING_RECIPES.update({
    "vit-micro": _micro_recipe(PRETRAINING_RECIPES["vit-base"]),
    "resnet-micro": _micro_recipe(PRETRAINING_RECIPES["resnet-50"]),
    "convnext-micro": _micro_recipe(PRETRAINING_RECIPES["convnext-base"]),
})

# The recipe a checkpoint without a known preset gets (a stock encoder, a custom config).
FAMILY_RECIPES = {"vit": "vit-base", "resnet": "resnet-50", "convnext": "convnext-base"}


def recipe_for(config, preset: str | None = None) -> tuple[str, PretrainingRecipe]:
    """`(name, recipe)`: the recipe of `preset`, else of the preset the config remembers (`config.preset`, so a run
    continued from a checkpoint keeps its recipe), else the family's paper recipe (`FAMILY_RECIPES`), logged."""
    for name in (preset, config.preset):
        if name in PRETRAINING_RECIPES:
            return name, PRETRAINING_RECIPES[name]
    name = FAMILY_RECIPES[config.family]
    logger.info("No recipe for preset %r: using the %s family's paper recipe %r.", preset or config.preset,
                config.family, name)
    return name, PRETRAINING_RECIPES[name]


def _number(value: float) -> str:
    return f"{value:g}"


def pretraining_recipe_table() -> str:
    """The README's pretraining recipe table (markdown), one row per preset."""
    lines = [
        "| preset | lr per 512 images | warmup | schedule | grad clip | mask token / gamma lr | no weight decay "
        "(besides norms, biases) | openmixup config |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, recipe in PRETRAINING_RECIPES.items():
        if recipe.schedule == "step":
            schedule = f"x0.1 at {recipe.step_decay_at:.1%} of training"
        else:
            schedule = f"cosine to {recipe.min_lr_rate:.3g} x peak"
        source = "/".join(recipe.source.split("/")[-2:]) if "/" in recipe.source else recipe.source
        clip = _number(recipe.max_grad_norm) if recipe.max_grad_norm else "none"
        lines.append(
            f"| `{name}` | {_number(recipe.learning_rate)} | {recipe.warmup:.2%} | {schedule} | {clip} | "
            f"x{_number(recipe.mask_token_lr_multiplier)} | {', '.join(recipe.no_weight_decay)} | {source} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(pretraining_recipe_table())
