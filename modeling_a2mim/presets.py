"""Named A2MIM presets: the encoders of the seed tables with their recipe's mask and loss settings.

Each preset is a dict of `A2MIMConfig` keyword arguments; `backbone_config` is a plain dict with a
`model_type` so that the preset table stays data. `A2MIMConfig.from_preset(name)` builds a config.
"""

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


def _vit(hidden_size, num_hidden_layers, num_attention_heads, **extra):
    backbone = {
        **_BEIT_STYLE,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "intermediate_size": 4 * hidden_size,
    }
    recipe = dict(_VIT_RECIPE)
    for key, value in extra.items():
        (recipe if key in recipe else backbone)[key] = value
    backbone["image_size"] = recipe["image_size"]
    return {**recipe, "backbone_config": backbone}


def _resnet(depths, hidden_sizes=(256, 512, 1024, 2048), **extra):
    backbone = {
        "model_type": "resnet",
        "depths": list(depths),
        "hidden_sizes": list(hidden_sizes),
        "embedding_size": 64,
        "layer_type": "bottleneck",
    }
    recipe = dict(_RESNET_RECIPE)
    for key, value in extra.items():
        (recipe if key in recipe else backbone)[key] = value
    return {**recipe, "backbone_config": backbone}


PRESETS = {
    "vit-small": _vit(384, 12, 6),
    "vit-base": _vit(768, 12, 12),
    "vit-large": _vit(1024, 24, 16),
    # DeiT-S/16 has the ViT-S/16 architecture; it differs by its supervised recipe, not its shape.
    "deit-small": _vit(384, 12, 6),
    "resnet-50": _resnet((3, 4, 6, 3)),
    "resnet-101": _resnet((3, 4, 23, 3)),
    "resnet-152": _resnet((3, 8, 36, 3)),
    # CPU-sized members of each family for demos and tests (same method, small shapes).
    "vit-micro": _vit(
        96, 4, 3, patch_size=4, image_size=32, mask_patch_size=8, drop_path_rate=0.0
    ),
    "resnet-micro": _resnet(
        (1, 1, 1, 1),
        hidden_sizes=(16, 32, 64, 128),
        embedding_size=16,
        layer_type="basic",
        image_size=64,
        mask_patch_size=16,
    ),
}
