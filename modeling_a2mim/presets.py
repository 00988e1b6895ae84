"""Named A2MIM presets: the encoders of the seed tables and A2MIM results, with their recipe's mask and loss settings.

Each preset is a dict of `A2MIMConfig` keyword arguments; `backbone_config` is a plain dict with a
`model_type` so that the preset table stays data. `A2MIMConfig.from_preset(name)` builds a config, and
`PRESET_SOURCES` says which results row and openmixup config each preset reproduces.
"""

from dataclasses import dataclass

# BEiT-style ViT as the reference implementation runs it: learnable absolute position embedding and
# per-layer relative position bias, layer scale 0.1, LayerNorm eps 1e-6, exact GELU, and the final
# LayerNorm over every token (the pretraining form; fine-tuning exports switch to mean pooling).
_BEIT_STYLE = {
    "model_type": "beit",
    "use_absolute_position_embeddings": True,
    "use_relative_position_bias": True,
    "use_shared_relative_position_bias": False,
    "use_mask_token": False,
    "use_mean_pooling": False,
    "layer_scale_init_value": 0.1,
    "drop_path_rate": 0.1,
    "layer_norm_eps": 1e-6,
    "hidden_act": "gelu",
    "patch_size": 16,
    "image_size": 224,
}

# ViT recipe: mask token right after the patch embedding, L1 + 0.1 x frequency loss.
_VIT_RECIPE = {
    "image_size": 224,
    "mask_patch_size": 32,
    "mask_ratio": 0.6,
    "mask_layer": 0,
    "mask_token_mode": "residual",
    "mask_gamma_init": None,
    "spatial_loss": "l1",
    "frequency_loss_weight": 0.1,
    "frequency_unmask_weight": 0.0,
}

# ResNet recipe: mask token at the input of the last stage with gamma 1e-6, focal L1 + 0.5 x frequency.
_RESNET_RECIPE = {
    "image_size": 224,
    "mask_patch_size": 32,
    "mask_ratio": 0.6,
    "mask_layer": 3,
    "mask_token_mode": "residual",
    "mask_gamma_init": 1e-6,
    "spatial_loss": "focal_l1",
    "frequency_loss_weight": 0.5,
    "frequency_unmask_weight": 1e-3,
}


# ConvNeXt recipe (openmixup `MIMConvNeXt`): mask token right after stage 3's downsampling layer (stride 32) with
# gamma 1e-6, focal L1; the released configs set the frequency weight to 0.
_CONVNEXT_RECIPE = {**_RESNET_RECIPE, "frequency_loss_weight": 0.0, "frequency_unmask_weight": 0.0}


def _preset(recipe: dict, backbone: dict, extra: dict) -> dict:
    """`recipe` and `backbone` with `extra` applied: recipe keys override the recipe, others the backbone."""
    recipe, backbone = dict(recipe), dict(backbone)
    for key, value in extra.items():
        (recipe if key in recipe else backbone)[key] = value
    return {**recipe, "backbone_config": backbone}


def _vit(hidden_size, num_hidden_layers, num_attention_heads, **extra):
    backbone = {
        **_BEIT_STYLE,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "intermediate_size": 4 * hidden_size,
    }
    preset = _preset(_VIT_RECIPE, backbone, extra)
    preset["backbone_config"]["image_size"] = preset["image_size"]
    return preset


def _resnet(depths, hidden_sizes=(256, 512, 1024, 2048), **extra):
    backbone = {
        "model_type": "resnet",
        "depths": list(depths),
        "hidden_sizes": list(hidden_sizes),
        "embedding_size": 64,
        "layer_type": "bottleneck",
    }
    return _preset(_RESNET_RECIPE, backbone, extra)


def _convnext(depths, hidden_sizes, **extra):
    # openmixup's ConvNeXt: LayerNorm eps 1e-6 everywhere (transformers' final norm defaults to 1e-12), GELU,
    # layer scale 1e-6, no stochastic depth in pretraining.
    backbone = {
        "model_type": "convnext",
        "depths": list(depths),
        "hidden_sizes": list(hidden_sizes),
        "layer_norm_eps": 1e-6,
        "layer_scale_init_value": 1e-6,
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
    }
    return _preset(_CONVNEXT_RECIPE, backbone, extra)


_PRESETS = {
    "vit-small": _vit(384, 12, 6),
    "vit-base": _vit(768, 12, 12),
    "vit-large": _vit(1024, 24, 16),
    # The ImageNet-100 DeiT-S row: ViT-S/16 shape, 192 px, mask token before block 8, L1 + 0.5 x frequency.
    "deit-small": _vit(384, 12, 6, image_size=192, mask_layer=8, frequency_loss_weight=0.5),
    "resnet-50": _resnet((3, 4, 6, 3)),
    "resnet-101": _resnet((3, 4, 23, 3)),
    "resnet-152": _resnet((3, 8, 36, 3)),
    "resnet-200": _resnet((3, 24, 36, 3)),
    # The ImageNet-100 ResNet-50 row: 192 px, gamma initialized to 0.1.
    "resnet-50-in100": _resnet((3, 4, 6, 3), image_size=192, mask_gamma_init=0.1),
    "convnext-tiny": _convnext((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext-small": _convnext((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext-base": _convnext((3, 3, 27, 3), (128, 256, 512, 1024)),
    # CPU-sized members of each family for demos and tests (same method, small shapes).
    "vit-micro": _vit(96, 4, 3, patch_size=4, image_size=32, mask_patch_size=8, drop_path_rate=0.0),
    "resnet-micro": _resnet(
        (1, 1, 1, 1),
        hidden_sizes=(16, 32, 64, 128),
        embedding_size=16,
        layer_type="basic",
        image_size=64,
        mask_patch_size=16,
    ),
    # 64 px leaves stage 3 a 2x2 map, so the token enters after stage 2's downsampling (stride 16, like resnet-micro).
    "convnext-micro": _convnext((1, 1, 1, 1), (16, 32, 64, 128), image_size=64, mask_patch_size=16, mask_layer=2),
}
# Each preset names itself, so a config (and a checkpoint) built from it remembers its recipe.
PRESETS = {name: {**fields, "preset": name} for name, fields in _PRESETS.items()}


@dataclass(frozen=True)
class PresetSource:
    """Where a preset comes from: the results row it reproduces, the openmixup pretraining config
    (`configs/selfsup/a2mim/...`) its mask and loss settings are read from, and the fine-tuning top-1 (%) reported
    for that row (None where no number is reported)."""

    row: str
    config: str
    top1: float | None


_CPU_SIZED = "CPU-sized, for tests and the demo"
PRESET_SOURCES = {
    "vit-small": PresetSource("ViT-S/16, ImageNet-1k, 800 ep", "imagenet/vit_small_l0_sz224_8xb256_step_ep800.py",
                              82.1),
    "vit-base": PresetSource("ViT-B/16, ImageNet-1k, 800 ep", "imagenet/vit_base_l0_sz224_8xb128_accu2_step_ep800.py",
                             84.3),
    "vit-large": PresetSource("ViT-L/16, ImageNet-1k, 800 ep",
                              "imagenet/vit_large_l0_sz224_8xb128_accu2_step_ep800.py", 86.1),
    "deit-small": PresetSource("DeiT-S/16, ImageNet-100, 800 ep",
                               "imagenet100/deit_small_l8_sz192_4xb256_accu2_cos_ep800.py", 87.24),
    "resnet-50": PresetSource("ResNet-50, ImageNet-1k, 300 ep (RSB A2 fine-tuning; 100 ep + A3: 78.8)",
                              "imagenet/r50_l3_sz224_init_8xb256_cos_ep300.py", 80.4),
    "resnet-101": PresetSource("ResNet-101, ImageNet-1k, 300 ep", "imagenet/r101_l3_sz224_init_8xb256_cos_ep300.py",
                               81.9),
    "resnet-152": PresetSource("ResNet-152, ImageNet-1k, 300 ep", "imagenet/r152_l3_sz224_init_8xb256_cos_ep300.py",
                               82.5),
    "resnet-200": PresetSource("ResNet-200, ImageNet-1k, 300 ep", "imagenet/r200_l3_sz224_init_8xb256_cos_ep300.py",
                               83.0),
    "resnet-50-in100": PresetSource("ResNet-50, ImageNet-100, 800 ep",
                                    "imagenet100/r50_l3_sz192_4xb256_accu2_cos_fp16_ep800.py", 89.32),
    "convnext-tiny": PresetSource("ConvNeXt-T, ImageNet-1k, 300 ep",
                                  "imagenet/convnext_t_l3_sz224_init_8xb256_cos_ep300.py", None),
    "convnext-small": PresetSource("ConvNeXt-S, ImageNet-1k, 300 ep",
                                   "imagenet/convnext_s_l3_sz224_init_8xb256_cos_ep300.py", 83.7),
    "convnext-base": PresetSource("ConvNeXt-B, ImageNet-1k, 300 ep",
                                  "imagenet/convnext_b_l3_sz224_init_8xb256_cos_ep300.py", 84.1),
    "vit-micro": PresetSource(f"BEiT-style ViT, 32 px ({_CPU_SIZED})", "ViT recipe", None),
    "resnet-micro": PresetSource(f"basic-block ResNet, 64 px ({_CPU_SIZED})", "ResNet recipe", None),
    "convnext-micro": PresetSource(f"ConvNeXt, 64 px, token after stage 2 ({_CPU_SIZED})", "ConvNeXt recipe", None),
}
