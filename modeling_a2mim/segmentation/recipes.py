"""The UperNet protocols of the A2MIM paper's ADE20K rows, as data: every field is a default a script flag overrides
(through `modeling_a2mim.training.recipes.apply_recipe`, as pretraining and fine-tuning do).

- `upernet-vit-ade20k`: the authors' `seg_mmsegmentation/configs/ade20k/upernet_mae_base_8x2_512x512_160k_ade20k.py`
  (see A2MIM_NOTES.md): 512 crops, 160k iterations at batch 16, AdamW lr 1e-4, weight decay 0.05, layer-wise lr decay
  0.65, linear warmup 1500 iterations then poly (power 1) to 0, UperHead 768 channels + auxiliary FCN head (0.4),
  drop path 0.1, sliding-window evaluation (stride 341).
- `upernet-resnet-ade20k`: the paper's ResNet-50 38.3 mIoU row does not say its head, and the authors' repository
  ships only an FCN on a *dilated* ResNet-50 (`fcn_r50_d8_4x4_512x512_160k_ade20k.py`), which transformers'
  `ResNetBackbone` cannot build (it has no dilation). This recipe is mmseg's own UperNet R50 ADE20K 160k protocol
  (`upernet_r50_512x512_160k_ade20k.py`), the standard UperNet-on-ResNet transfer benchmark: SGD lr 0.01, momentum
  0.9, weight decay 5e-4, poly (power 0.9) to 1e-4, no warmup, UperHead 512 channels + auxiliary FCN head (0.4),
  whole-image evaluation. (mmseg trains it with SyncBN; here each process's BatchNorm sees its own batch.)
- `upernet-convnext-ade20k`: mmseg's ConvNeXt UperNet (`upernet_convnext_base_fp16_512x512_160k_ade20k.py`): AdamW
  lr 1e-4, weight decay 0.05, stage-wise lr decay 0.9, warmup 1500, poly (power 1), UperHead 512 + auxiliary head,
  drop path 0.4 (ConvNeXt-B), whole-image evaluation.

Training augmentation is the mmseg ADE20K pipeline in every recipe: random resize (ratio 0.5-2.0 of the crop; the
CPU-sized default without --recipe: 0.75-1.5), random crop (padding with the ignore index), horizontal flip,
photometric distortion.
"""

from dataclasses import dataclass

from ..training.recipes import Recipe

EVAL_MODES = ("whole", "slide")
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True, kw_only=True)
class SegmentationRecipe(Recipe):
    """One UperNet protocol. `learning_rate` is for `reference_batch_size` images per step; `warmup` a fraction of
    `max_steps`; the schedule is polynomial decay of power `poly_power` to `min_learning_rate` (absolute)."""

    name: str
    description: str
    reported: str = ""
    max_steps: int
    optimizer: str = "adamw"
    momentum: float = 0.9  # SGD only
    poly_power: float = 1.0
    min_learning_rate: float = 0.0
    crop_size: int | None = None  # None: the encoder's resolution
    min_resize_ratio: float = 0.5
    max_resize_ratio: float = 2.0
    photometric_distortion: bool = True
    head_channels: int = 512
    auxiliary_head: bool = True
    auxiliary_loss_weight: float = 0.4
    auxiliary_channels: int = 256
    layer_decay: float | None = None
    drop_path_rate: float | None = None
    eval_mode: str = "whole"
    eval_stride: int | None = None  # sliding window step; None: 2/3 of the crop (341 for 512, mmseg's)

    def __post_init__(self):
        super().__post_init__()
        if self.eval_mode not in EVAL_MODES:
            raise ValueError(f"--eval_mode {self.eval_mode!r} is not one of {', '.join(EVAL_MODES)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}.")
        if not 0 < self.min_resize_ratio <= self.max_resize_ratio:
            raise ValueError(f"--min_resize_ratio {self.min_resize_ratio} / --max_resize_ratio "
                             f"{self.max_resize_ratio}: need 0 < min <= max, e.g. 0.5 and 2.0.")

    def training_arguments(self) -> dict:
        values = {**super().training_arguments(), "max_steps": self.max_steps,
                  "lr_scheduler_type": "polynomial",
                  "lr_scheduler_kwargs": {"power": self.poly_power, "lr_end": self.min_learning_rate}}
        if self.optimizer == "sgd":
            values.update(optim="sgd", optim_args=f"momentum={self.momentum}")
        return values


UPERNET_VIT_ADE20K = SegmentationRecipe(
    name="upernet-vit-ade20k",
    description="UperNet on a BEiT-style ViT, ADE20K: 160k iterations, 512 crops, AdamW, layer decay 0.65, slide eval",
    reported="ViT-B/16: 49.0 mIoU",
    max_steps=160_000,
    learning_rate=1e-4,
    reference_batch_size=16,
    weight_decay=0.05,
    warmup=1500 / 160_000,
    crop_size=512,
    head_channels=768,
    layer_decay=0.65,
    drop_path_rate=0.1,
    eval_mode="slide",
)

UPERNET_RESNET_ADE20K = SegmentationRecipe(
    name="upernet-resnet-ade20k",
    description="mmseg UperNet-R50 on ADE20K: 160k iterations, 512 crops, SGD 0.01 momentum 0.9, poly 0.9",
    reported="ResNet-50: 38.3 mIoU (the paper's head unstated)",
    max_steps=160_000,
    optimizer="sgd",
    learning_rate=0.01,
    reference_batch_size=16,
    weight_decay=5e-4,
    poly_power=0.9,
    min_learning_rate=1e-4,
    crop_size=512,
    head_channels=512,
)

UPERNET_CONVNEXT_ADE20K = SegmentationRecipe(
    name="upernet-convnext-ade20k",
    description="mmseg UperNet-ConvNeXt on ADE20K: 160k iterations, 512 crops, AdamW, stage-wise lr decay 0.9",
    max_steps=160_000,
    learning_rate=1e-4,
    reference_batch_size=16,
    weight_decay=0.05,
    warmup=1500 / 160_000,
    crop_size=512,
    head_channels=512,
    layer_decay=0.9,
    drop_path_rate=0.4,
)

RECIPES = {recipe.name: recipe for recipe in (UPERNET_VIT_ADE20K, UPERNET_RESNET_ADE20K, UPERNET_CONVNEXT_ADE20K)}

# Without --recipe: the CPU-sized default for the embedded scenes (AdamW, poly, the encoder's resolution). A UperNet
# trained from scratch first predicts background everywhere (86 % of the scenes' pixels); measured on resnet-micro
# at batch 8 (README): 300 steps at lr 1e-3 or 3e-3 never leave that plateau (mIoU 0.079), nor do 1500 steps at 3e-3
# with mmseg's 0.5-2.0 resize (0.098), while 1500 steps at 3e-3 with a milder 0.75-1.5 resize reach 0.26.
PLAIN = SegmentationRecipe(
    name="plain",
    description="AdamW + poly decay at the encoder's resolution, resize 0.75-1.5, UperHead 64 channels (CPU-sized)",
    max_steps=1500,
    learning_rate=3e-3,
    reference_batch_size=None,
    weight_decay=0.01,
    warmup=0.05,
    min_resize_ratio=0.75,
    max_resize_ratio=1.5,
    head_channels=64,
    auxiliary_channels=32,
)


def get_recipe(name: str | None) -> SegmentationRecipe:
    """The named recipe, `PLAIN` for `None`; a `ValueError` listing the known names otherwise."""
    if name is None:
        return PLAIN
    if name not in RECIPES:
        raise ValueError(f"Unknown --recipe {name!r}. Known recipes: {', '.join(RECIPES)}.")
    return RECIPES[name]
