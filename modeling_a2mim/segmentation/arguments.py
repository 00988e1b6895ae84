"""Arguments of `run_semantic_segmentation.py` (transformers' example flag names) and how a recipe fills the flags a
user did not give."""

import logging
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..training.arguments import DataArguments
from ..training.recipes import with_overrides
from .recipes import EVAL_MODES, RECIPES, SegmentationRecipe, get_recipe

logger = logging.getLogger(__name__)


@dataclass
class SegmentationDataArguments(DataArguments):
    """`DataArguments` for image/mask pairs. `--train_dir` / `--validation_dir` are folders with `images/` and
    `masks/` (same file stems); with no source the embedded Fashion-MNIST scenes are used."""

    label_column_name: str | None = field(
        default=None,
        metadata={"help": "The mask column; default: the first of label, annotation, mask, semantic_segmentation, "
                          "segmentation."},
    )
    do_reduce_labels: bool = field(
        default=False,
        metadata={"help": "Mask id 0 (e.g. ADE20K's 'other') becomes the ignore index 255 and every id k becomes "
                          "k - 1 (the transformers example's flag)."},
    )
    id2label: str | None = field(
        default=None,
        metadata={"help": "Class names: a JSON file or inline JSON {\"0\": \"wall\", ...}; default: the names of a "
                          "ClassLabel mask column (masks as 2-D arrays of class ids), else an id2label.json next to "
                          "the data (or in the Hub dataset repository)."},
    )
    num_train_scenes: int = field(default=1000, metadata={"help": "Embedded default: training scenes to build."})
    num_eval_scenes: int = field(default=200, metadata={"help": "Embedded default: held-out scenes to build."})
    scene_size: int = field(default=64, metadata={"help": "Embedded default: scene side in pixels."})

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_train_scenes", "num_eval_scenes", "scene_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} {getattr(self, name)} must be a positive integer.")

    @property
    def uses_embedded_scenes(self) -> bool:
        return not any((self.dataset_name, self.train_dir, self.validation_dir, self.data_files,
                        self.validation_files))

    @property
    def source_description(self) -> str:
        if self.uses_embedded_scenes:
            return (f"embedded Fashion-MNIST scenes ({self.num_train_scenes} train scenes from training images, "
                    f"{self.num_eval_scenes} from held-out test images, {self.scene_size} px)")
        if self.train_dir and not self.validation_dir:
            return f"image/mask folder {self.train_dir}"
        if self.train_dir:
            return f"image/mask folders {self.train_dir}; evaluation data {self.validation_dir}"
        return super().source_description.replace("image folder", "image/mask folder")


@dataclass
class SegmentationRecipeArguments:
    """A UperNet protocol and its knobs. Every knob left unset takes the recipe's value (see `recipes.py`)."""

    recipe: str | None = field(
        default=None,
        metadata={"help": f"A segmentation protocol: {', '.join(RECIPES)}; without it a CPU-sized AdamW + poly run."},
    )
    optimizer: str | None = field(default=None, metadata={"help": "adamw or sgd (momentum 0.9)."})
    crop_size: int | None = field(
        default=None, metadata={"help": "Training crop (and evaluation window) side; default: the encoder's."}
    )
    eval_image_size: int | None = field(
        default=None,
        metadata={"help": "Evaluation (and the saved image processor) resize images to this square; default: the "
                          "crop size."},
    )
    eval_mode: str | None = field(default=None, metadata={"help": f"Evaluation: {' or '.join(EVAL_MODES)}."})
    eval_stride: int | None = field(
        default=None, metadata={"help": "Sliding-window step (--eval_mode slide); default 2/3 of the crop."}
    )
    min_resize_ratio: float | None = field(default=None, metadata={"help": "Random resize: smallest ratio (0.5)."})
    max_resize_ratio: float | None = field(default=None, metadata={"help": "Random resize: largest ratio (2.0)."})
    photometric_distortion: bool | None = field(
        default=None, metadata={"help": "Random brightness/contrast/saturation/hue (mmseg's, each with p 0.5)."}
    )
    head_channels: int | None = field(default=None, metadata={"help": "UperHead channels (768 for ViT-B)."})
    auxiliary_head: bool | None = field(default=None, metadata={"help": "Train with the auxiliary FCN head."})
    auxiliary_loss_weight: float | None = field(default=None, metadata={"help": "Auxiliary loss weight (0.4)."})
    layer_decay: float | None = field(default=None, metadata={"help": "Layer-wise lr decay (1 disables)."})
    drop_path_rate: float | None = field(
        default=None, metadata={"help": "Stochastic depth (BEiT and ConvNeXt encoders; ResNet has none)."}
    )
    poly_power: float | None = field(default=None, metadata={"help": "Power of the polynomial lr decay."})
    min_learning_rate: float | None = field(default=None, metadata={"help": "Learning rate at the end of the decay."})
    scale_learning_rate: bool = field(
        default=True,
        metadata={"help": "Scale the recipe's learning rate linearly from its reference batch size (16) to yours when "
                          "--learning_rate is not given."},
    )


# TrainingArguments flags that override a recipe field.
_TRAINING_FLAGS = {
    "max_steps": "max_steps",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup",
    "max_grad_norm": "max_grad_norm",
}


def resolve_recipe(recipe_args: SegmentationRecipeArguments, training_args: TrainingArguments,
                   given: set[str]) -> SegmentationRecipe:
    """The recipe with the user's overrides, applied to the TrainingArguments the user did not give (learning rate
    scaled from the recipe's batch to the global batch unless `--learning_rate` is given)."""
    effective, applied = with_overrides(get_recipe(recipe_args.recipe), recipe_args, training_args, given,
                                        _TRAINING_FLAGS, scale_learning_rate=recipe_args.scale_learning_rate)
    logger.info("Segmentation recipe %s (effective): %s; set %s", effective.name, effective.to_dict(), applied)
    return effective
