"""Arguments of `run_finetuning.py` / `run_linear_probe.py`, and how a recipe fills the flags a user did not give."""

import logging
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..training.arguments import DataArguments
from ..training.recipes import with_overrides
from .recipes import RECIPES, FinetuningRecipe, get_recipe

logger = logging.getLogger(__name__)


@dataclass
class FinetuningDataArguments(DataArguments):
    """`DataArguments` plus the label column and label-scarce subsets."""

    label_column_name: str | None = field(
        default=None,
        metadata={"help": "The label column (a ClassLabel, or strings mapped to ids); default: `label`/`labels` "
                          "or the only ClassLabel column."},
    )
    train_samples_per_class: int | None = field(
        default=None,
        metadata={"help": "Label-scarce fine-tuning: keep N training images of every class (balanced, drawn with "
                          "--seed)."},
    )


@dataclass
class ModelArguments:
    """Which encoder to start from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "An A2MIM checkpoint (its encoder is used), an exported encoder, or a stock BEiT/ViT/"
                          "ResNet encoder or classifier (Hub id or folder)."},
    )
    model_preset: str | None = field(
        default=None,
        metadata={"help": "Train from scratch: an A2MIM preset's encoder (e.g. vit-base, resnet-50, vit-micro)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models and data."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit id)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or datasets."})


@dataclass
class RecipeArguments:
    """A seed recipe and its knobs. Every knob left unset takes the recipe's value (see `recipes.py`)."""

    recipe: str | None = field(
        default=None,
        metadata={"help": f"A fine-tuning protocol: {', '.join(RECIPES)}; without it a plain AdamW + cosine "
                          "fine-tune."},
    )
    optimizer: str | None = field(default=None, metadata={"help": "adamw or lamb."})
    loss: str | None = field(default=None, metadata={"help": "cross_entropy or bce."})
    mixup_alpha: float | None = field(default=None, metadata={"help": "MixUp alpha (0 disables)."})
    cutmix_alpha: float | None = field(default=None, metadata={"help": "CutMix alpha (0 disables)."})
    auto_augment: str | None = field(
        default=None,
        metadata={"help": "timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 (magnitude 9 of 10, magnitude noise "
                          "0.5, increasing ops); an empty string disables it."},
    )
    random_erasing: float | None = field(
        default=None, metadata={"help": "timm RandomErasing probability (0 disables)."}
    )
    random_erasing_mode: str | None = field(
        default=None, metadata={"help": "timm RandomErasing fill: pixel (per-pixel noise, the recipes'), rand or const."}
    )
    min_crop_scale: float | None = field(
        default=None, metadata={"help": "Smallest area fraction of RandomResizedCrop (0.08 in the recipes)."}
    )
    layer_decay: float | None = field(default=None, metadata={"help": "Layer-wise lr decay (1 disables)."})
    drop_path_rate: float | None = field(
        default=None, metadata={"help": "Stochastic depth (BEiT and ConvNeXt encoders; ViT and ResNet have none)."}
    )
    ema_decay: float | None = field(
        default=None, metadata={"help": "EMA of the weights, which becomes the saved result (0 disables)."}
    )
    train_image_size: int | None = field(default=None, metadata={"help": "Training resolution."})
    eval_image_size: int | None = field(default=None, metadata={"help": "Evaluation resolution."})
    eval_crop_ratio: float | None = field(
        default=None, metadata={"help": "Evaluation: resize the short side to size / ratio, center crop size."}
    )
    scale_learning_rate: bool = field(
        default=True,
        metadata={"help": "Scale the recipe's learning rate from its reference batch size to yours (linear for "
                          "AdamW, sqrt for LAMB) when --learning_rate is not given."},
    )


# TrainingArguments flags that override a recipe field (transformers' names for the recipe's knobs).
_TRAINING_FLAGS = {
    "num_train_epochs": "num_train_epochs",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup",
    "max_grad_norm": "max_grad_norm",
    "label_smoothing_factor": "label_smoothing",
}


def resolve_recipe(
    recipe_args: RecipeArguments, training_args: TrainingArguments, given: set[str]
) -> FinetuningRecipe:
    """The recipe with the user's overrides applied (flags of `RecipeArguments` and the TrainingArguments in `given`);
    sets the TrainingArguments the user did not give through `apply_recipe`, the rule pretraining uses too.

    The learning rate is the user's `--learning_rate`, else the recipe's scaled from its reference batch to the
    global batch (`--scale_learning_rate`, default on). The returned recipe keeps its own learning rate and reference
    batch; `training_args.learning_rate` holds the one used.
    """
    effective, applied = with_overrides(get_recipe(recipe_args.recipe), recipe_args, training_args, given,
                                        _TRAINING_FLAGS, scale_learning_rate=recipe_args.scale_learning_rate)
    logger.info("Fine-tuning recipe %s (effective): %s; set %s", effective.name, effective.to_dict(), applied)
    return effective
