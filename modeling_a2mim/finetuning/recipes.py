"""The fine-tuning recipes behind the seed tables, as data: every field is a default that a script flag overrides.

Values from `A2MIM_NOTES.md` (the A2MIM paper's fine-tuning protocols); where the notes are silent, from the
recipes' own papers: RSB = Wightman et al. 2021, "ResNet strikes back" (A2: LAMB lr 5e-3, RandAugment m7, drop path
0.05); BEiT = Bao et al. 2022 (EMA decay 0.9999, test crop 0.875).
"""

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class FinetuningRecipe:
    """One fine-tuning protocol. Learning rates are for `reference_batch_size` images per optimizer step."""

    name: str
    description: str
    num_train_epochs: float
    optimizer: str  # "adamw" or "lamb"
    learning_rate: float
    reference_batch_size: int
    lr_scaling: str  # how the learning rate follows the batch size: "linear" or "sqrt"
    weight_decay: float
    warmup_ratio: float  # warmup epochs / epochs
    loss: str  # "cross_entropy" or "bce"
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    auto_augment: str | None = None  # timm RandAugment string, e.g. "rand-m9-mstd0.5-inc1"
    color_jitter: float = 0.0  # timm applies it only without auto_augment
    random_erasing: float = 0.0
    random_erasing_mode: str = "pixel"  # timm RandomErasing fill: per-pixel normal noise, as the recipes
    min_crop_scale: float = 0.08  # RandomResizedCrop keeps between this fraction of the image area and all of it
    layer_decay: float | None = None
    drop_path_rate: float | None = None
    ema_decay: float | None = None
    max_grad_norm: float = 0.0  # 0 disables clipping
    train_image_size: int | None = None  # None: the checkpoint's resolution
    eval_image_size: int | None = None
    eval_crop_ratio: float | None = None  # resize the short side to size / ratio, then center crop

    def to_dict(self) -> dict:
        return asdict(self)


RSB_A3 = FinetuningRecipe(
    name="rsb-a3",
    description="ResNet strikes back A3: 100 epochs at 160 px (test 224 px), LAMB, BCE, mixup/cutmix",
    num_train_epochs=100,
    optimizer="lamb",
    learning_rate=8e-3,
    reference_batch_size=2048,
    lr_scaling="sqrt",
    weight_decay=0.02,
    warmup_ratio=5 / 100,
    loss="bce",
    mixup_alpha=0.1,
    cutmix_alpha=1.0,
    auto_augment="rand-m6-mstd0.5-inc1",
    drop_path_rate=0.0,
    train_image_size=160,
    eval_image_size=224,
    eval_crop_ratio=0.95,
)

BEIT_FT = FinetuningRecipe(
    name="beit-ft",
    description="BEiT/SimMIM ViT fine-tuning: 100 epochs at 224 px, AdamW, layer-wise lr decay, EMA",
    num_train_epochs=100,
    optimizer="adamw",
    learning_rate=1e-2,
    reference_batch_size=1024,
    lr_scaling="linear",
    weight_decay=0.05,
    warmup_ratio=20 / 100,
    loss="cross_entropy",
    label_smoothing=0.1,
    mixup_alpha=0.8,
    cutmix_alpha=1.0,
    auto_augment="rand-m9-mstd0.5-inc1",
    random_erasing=0.25,
    layer_decay=0.65,
    drop_path_rate=0.1,
    ema_decay=0.9999,
    max_grad_norm=0.0,
    train_image_size=224,
    eval_image_size=224,
    eval_crop_ratio=0.875,
)

# RSB A2 is A3 for longer, at full resolution, with a lower learning rate and stronger regularization.
RSB_A2 = replace(
    RSB_A3,
    name="rsb-a2",
    description="ResNet strikes back A2: 300 epochs at 224 px, LAMB, BCE, mixup/cutmix",
    num_train_epochs=300,
    learning_rate=5e-3,
    warmup_ratio=5 / 300,
    auto_augment="rand-m7-mstd0.5-inc1",
    drop_path_rate=0.05,
    train_image_size=224,
)

RECIPES = {"rsb-a3": RSB_A3, "rsb-a2": RSB_A2, "beit-ft": BEIT_FT}

# Without --recipe: a plain AdamW + cosine fine-tune at the checkpoint's resolution (no mixing, no EMA).
PLAIN = FinetuningRecipe(
    name="plain",
    description="AdamW + cosine at the checkpoint's resolution",
    num_train_epochs=3,
    optimizer="adamw",
    learning_rate=5e-5,
    reference_batch_size=0,  # 0: the learning rate is used as given, whatever the batch size
    lr_scaling="linear",
    weight_decay=0.0,
    warmup_ratio=0.0,
    loss="cross_entropy",
    max_grad_norm=1.0,
)


def get_recipe(name: str | None) -> FinetuningRecipe:
    """The named recipe, `PLAIN` for `None`; a `ValueError` listing the known names otherwise."""
    if name is None:
        return PLAIN
    if name not in RECIPES:
        raise ValueError(f"Unknown --recipe {name!r}. Known recipes: {', '.join(RECIPES)}.")
    return RECIPES[name]


def scaled_learning_rate(recipe: FinetuningRecipe, total_batch_size: int) -> float:
    """The recipe's learning rate scaled from its reference batch size to `total_batch_size` images per step."""
    if not recipe.reference_batch_size:
        return recipe.learning_rate
    ratio = total_batch_size / recipe.reference_batch_size
    return recipe.learning_rate * (ratio**0.5 if recipe.lr_scaling == "sqrt" else ratio)
