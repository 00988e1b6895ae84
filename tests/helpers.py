"""Tiny configurations shared by the tests."""

from modeling_a2mim import A2MIMConfig


def _tiny_config(backbone: dict, overrides: dict, **defaults) -> A2MIMConfig:
    """`A2MIMConfig` of `backbone` (updated by `overrides["backbone"]`) and `defaults` updated by `overrides`."""
    backbone.update(overrides.pop("backbone", {}))
    return A2MIMConfig(backbone_config=backbone, **{**defaults, **overrides})


def tiny_vit_config(**overrides) -> A2MIMConfig:
    """BEiT-style ViT: 32 px, patch 4, 2 blocks of width 32; 4x4 mask grid."""
    backbone = {
        "model_type": "beit",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "patch_size": 4,
        "image_size": 32,
        "use_absolute_position_embeddings": True,
        "use_relative_position_bias": True,
        "use_mean_pooling": False,
        "layer_scale_init_value": 0.1,
        "drop_path_rate": 0.0,
        "layer_norm_eps": 1e-6,
    }
    return _tiny_config(backbone, overrides, image_size=32, mask_patch_size=8, mask_layer=0, spatial_loss="l1",
                        frequency_loss_weight=0.1)


def tiny_resnet_config(**overrides) -> A2MIMConfig:
    """Basic-block ResNet: 64 px, 4 stages of widths 8..64; mask at the last stage input (stride 16)."""
    backbone = {
        "model_type": "resnet",
        "embedding_size": 8,
        "hidden_sizes": [8, 16, 32, 64],
        "depths": [1, 1, 1, 1],
        "layer_type": "basic",
    }
    return _tiny_config(backbone, overrides, image_size=64, mask_patch_size=16, mask_layer=3, mask_gamma_init=1e-6,
                        spatial_loss="focal_l1", frequency_loss_weight=0.5, frequency_unmask_weight=1e-3)


def tiny_convnext_config(**overrides) -> A2MIMConfig:
    """ConvNeXt: 64 px, 4 stages of widths 8..64; mask after stage 3's downsampling layer (stride 32)."""
    backbone = {"model_type": "convnext", "hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 1, 1],
                "layer_norm_eps": 1e-6}
    return _tiny_config(backbone, overrides, image_size=64, mask_patch_size=32, mask_layer=3, mask_gamma_init=1e-6,
                        spatial_loss="focal_l1", frequency_loss_weight=0.5)
