"""The fine-tuning recipes behind the seed tables and the A2MIM results, as data: every field is a default that a
script flag overrides (`modeling_a2mim.training.recipes.apply_recipe`, shared with pretraining).

Values from `A2MIM_NOTES.md` (the A2MIM paper's fine-tuning protocols) and openmixup's
`configs/benchmarks/classification/imagenet*/` configs named at each recipe; where both are silent, from the
recipes' own papers: RSB = Wightman et al. 2021, "ResNet strikes back"; BEiT = Bao et al. 2022 (EMA decay 0.9999,
test crop 0.875). `python -m modeling_a2mim.finetuning.recipes` prints the README's table from this data.
"""

from dataclasses import dataclass, replace

from ..training.recipes import Recipe

OPTIMIZERS = ("adamw", "lamb")
LOSSES = ("cross_entropy", "bce")
RANDOM_ERASING_MODES = ("pixel", "rand", "const")  # timm: per-pixel noise, one noise colour per box, zeros


@dataclass(frozen=True, kw_only=True)
class FinetuningRecipe(Recipe):
    """One fine-tuning protocol (cosine schedule). `learning_rate` is for `reference_batch_size` images per optimizer
    step; `warmup` is warmup epochs / epochs. Augmentation follows timm: `auto_augment` is a RandAugment string,
    `random_erasing_mode` the RandomErasing fill, mixing is timm's `Mixup` with `label_smoothing`."""

    name: str
    description: str
    reported: str = ""  # the seed / A2MIM results this protocol gave
    num_train_epochs: float
    optimizer: str  # "adamw" or "lamb"
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
    train_image_size: int | None = None  # None: the checkpoint's resolution
    eval_image_size: int | None = None
    eval_crop_ratio: float | None = None  # resize the short side to size / ratio, then center crop

    def __post_init__(self):
        super().__post_init__()
        for name, allowed in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("random_erasing_mode", RANDOM_ERASING_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}.")

    def training_arguments(self) -> dict:
        return {**super().training_arguments(), "num_train_epochs": self.num_train_epochs,
                "label_smoothing_factor": self.label_smoothing, "lr_scheduler_type": "cosine"}


RSB_A3 = FinetuningRecipe(
    name="rsb-a3",
    description="ResNet strikes back A3: 100 epochs at 160 px (test 224 px), LAMB, BCE, mixup/cutmix",
    reported="ResNet-50: 78.8 (100-ep pretraining) / 78.9 (300-ep)",
    num_train_epochs=100,
    optimizer="lamb",
    learning_rate=8e-3,
    reference_batch_size=2048,
    lr_scaling="sqrt",
    weight_decay=0.02,
    warmup=5 / 100,
    loss="bce",
    mixup_alpha=0.1,
    cutmix_alpha=1.0,
    auto_augment="rand-m6-mstd0.5-inc1",
    drop_path_rate=0.0,
    train_image_size=160,
    eval_image_size=224,
    eval_crop_ratio=0.95,
)

# RSB A2 is A3 for longer, at full resolution, with a lower learning rate, stronger regularization and an EMA
# (openmixup imagenet/r50_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py).
RSB_A2 = replace(
    RSB_A3,
    name="rsb-a2",
    description="ResNet strikes back A2: 300 epochs at 224 px, LAMB, BCE, mixup/cutmix, EMA",
    reported="ResNet-50 / 101 / 152 / 200: 80.4 / 81.9 / 82.5 / 83.0",
    num_train_epochs=300,
    learning_rate=5e-3,
    warmup=5 / 300,
    auto_augment="rand-m7-mstd0.5-inc1",
    drop_path_rate=0.05,
    ema_decay=0.9999,
    train_image_size=224,
)

# The A2MIM paper fine-tunes ConvNeXt with the RSB A2 protocol; drop path is ConvNeXt-T's 0.1 (the ConvNeXt paper
# uses 0.4 / 0.5 for S / B: pass --drop_path_rate).
CONVNEXT_RSB_A2 = replace(
    RSB_A2,
    name="convnext-rsb-a2",
    description="RSB A2 for ConvNeXt: 300 epochs at 224 px, LAMB, BCE, mixup/cutmix, EMA, drop path 0.1",
    reported="ConvNeXt-S / B: 83.7 / 84.1",
    drop_path_rate=0.1,
)

BEIT_FT = FinetuningRecipe(
    name="beit-ft",
    description="BEiT/SimMIM ViT fine-tuning: 100 epochs at 224 px, AdamW, layer-wise lr decay, EMA",
    reported="ViT-B/16: 84.3",
    num_train_epochs=100,
    optimizer="adamw",
    learning_rate=1e-2,
    reference_batch_size=1024,
    weight_decay=0.05,
    warmup=20 / 100,
    loss="cross_entropy",
    label_smoothing=0.1,
    mixup_alpha=0.8,
    cutmix_alpha=1.0,
    auto_augment="rand-m9-mstd0.5-inc1",
    random_erasing=0.25,
    layer_decay=0.65,
    drop_path_rate=0.1,
    ema_decay=0.9999,
    train_image_size=224,
    eval_image_size=224,
    eval_crop_ratio=0.875,
)

# openmixup imagenet/vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep100.py: BEiT fine-tuning with layer decay
# 0.55, gradient clipping 5 and no EMA.
VIT_SMALL_FT = replace(
    BEIT_FT,
    name="vit-small-ft",
    description="ViT-S fine-tuning: 100 epochs at 224 px, AdamW, layer-wise lr decay 0.55, grad clip 5",
    reported="ViT-S/16: 82.1",
    layer_decay=0.55,
    ema_decay=None,
    max_grad_norm=5.0,
)

# openmixup imagenet/vit_large_p16_swin_ft_simmim_sz224_8xb64_accu2_cos_ep100.py: layer decay 0.65, EMA 0.99996.
VIT_LARGE_FT = replace(
    VIT_SMALL_FT,
    name="vit-large-ft",
    description="ViT-L fine-tuning: 100 epochs at 224 px, AdamW, layer-wise lr decay 0.65, grad clip 5, EMA",
    reported="ViT-L/16: 86.1",
    layer_decay=0.65,
    ema_decay=0.99996,
)

# openmixup imagenet100/deit_small_p16_swin_ft_sz224_4xb256_cos_ep100.py: lr 8e-3 at batch 1024, 5 warmup epochs, no
# drop path. openmixup fine-tunes the 192 px encoder at 224 px by interpolating its position embeddings; a stock BEiT
# classifier runs at one resolution, so this recipe keeps the checkpoint's.
DEIT_SMALL_IN100_FT = replace(
    VIT_SMALL_FT,
    name="deit-small-in100-ft",
    description="DeiT-S on ImageNet-100: 100 epochs at the checkpoint's resolution, AdamW, layer-wise lr decay 0.65",
    reported="DeiT-S ImageNet-100: 87.24",
    learning_rate=8e-3,
    warmup=5 / 100,
    layer_decay=0.65,
    drop_path_rate=0.0,
    train_image_size=None,
    eval_image_size=None,
)

# openmixup imagenet100/r50_ft_sz224_4xb256_accu2_cos_ep100.py: plain AdamW, crop + flip only, cross-entropy.
RESNET_50_IN100_FT = FinetuningRecipe(
    name="resnet-50-in100-ft",
    description="ResNet-50 on ImageNet-100: 100 epochs at 224 px, AdamW, crop + flip, cross-entropy",
    reported="ResNet-50 ImageNet-100: 89.32",
    num_train_epochs=100,
    optimizer="adamw",
    learning_rate=5e-3,
    reference_batch_size=2048,
    weight_decay=0.05,
    warmup=20 / 100,
    loss="cross_entropy",
    train_image_size=224,
    eval_image_size=224,
    eval_crop_ratio=0.875,
)

RECIPES = {recipe.name: recipe for recipe in (RSB_A3, RSB_A2, BEIT_FT, VIT_SMALL_FT, VIT_LARGE_FT, DEIT_SMALL_IN100_FT,
                                              RESNET_50_IN100_FT, CONVNEXT_RSB_A2)}

# Without --recipe: a plain AdamW + cosine fine-tune at the checkpoint's resolution (no mixing, no EMA).
PLAIN = FinetuningRecipe(
    name="plain",
    description="AdamW + cosine at the checkpoint's resolution",
    num_train_epochs=3,
    optimizer="adamw",
    learning_rate=5e-5,
    reference_batch_size=None,  # the learning rate is used as given, whatever the batch size
    weight_decay=0.0,
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


def _optional(value, fmt="{:g}") -> str:
    return "-" if value in (None, 0, "") else fmt.format(value)


def finetuning_recipe_table() -> str:
    """The README's fine-tuning recipe table (markdown), one row per recipe."""
    lines = [
        "| recipe | epochs | optimizer, lr @ reference batch | weight decay | warmup epochs | loss, label smoothing | "
        "mixup / cutmix | RandAugment (timm) | random erasing | layer decay | drop path | EMA | grad clip | "
        "train / test px (test crop) | reported top-1 |",
        "|" + "---|" * 15,
    ]
    for recipe in RECIPES.values():
        sizes = f"{recipe.train_image_size or 'checkpoint'} / {recipe.eval_image_size or 'checkpoint'}"
        if recipe.eval_crop_ratio:
            sizes += f" ({recipe.eval_crop_ratio:g})"
        lines.append(
            f"| `{recipe.name}` | {recipe.num_train_epochs:g} | {recipe.optimizer} {recipe.learning_rate:g} @ "
            f"{recipe.reference_batch_size} ({recipe.lr_scaling}) | {recipe.weight_decay:g} | "
            f"{recipe.warmup * recipe.num_train_epochs:g} | {recipe.loss}, {recipe.label_smoothing:g} | "
            f"{recipe.mixup_alpha:g} / {recipe.cutmix_alpha:g} | {_optional(recipe.auto_augment, '`{}`')} | "
            f"{_optional(recipe.random_erasing, '{:g} ' + recipe.random_erasing_mode)} | "
            f"{_optional(recipe.layer_decay)} | {_optional(recipe.drop_path_rate)} | {_optional(recipe.ema_decay)} | "
            f"{_optional(recipe.max_grad_norm)} | {sizes} | {recipe.reported} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(finetuning_recipe_table())
