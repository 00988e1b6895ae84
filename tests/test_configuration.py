from pathlib import Path

import pytest
from transformers import AutoConfig, BeitConfig, ResNetConfig

from modeling_a2mim import A2MIMConfig
from modeling_a2mim.presets import PRESET_SOURCES

from .helpers import tiny_resnet_config, tiny_vit_config


# preset: (encoder type, px, last width, depth, mask_layer, its stride, its channels, spatial loss, frequency weight,
#          gamma init, frequency unmask weight), as the openmixup configs of the rows set them.
SEED_PRESETS = {
    "vit-small": ("beit", 224, 384, 12, 0, 16, 384, "l1", 0.1, None, 0.0),
    "vit-base": ("beit", 224, 768, 12, 0, 16, 768, "l1", 0.1, None, 0.0),
    "vit-large": ("beit", 224, 1024, 24, 0, 16, 1024, "l1", 0.1, None, 0.0),
    "deit-small": ("beit", 192, 384, 12, 8, 16, 384, "l1", 0.5, None, 0.0),
    "resnet-50": ("resnet", 224, 2048, [3, 4, 6, 3], 3, 16, 1024, "focal_l1", 0.5, 1e-6, 1e-3),
    "resnet-101": ("resnet", 224, 2048, [3, 4, 23, 3], 3, 16, 1024, "focal_l1", 0.5, 1e-6, 1e-3),
    "resnet-152": ("resnet", 224, 2048, [3, 8, 36, 3], 3, 16, 1024, "focal_l1", 0.5, 1e-6, 1e-3),
    "resnet-200": ("resnet", 224, 2048, [3, 24, 36, 3], 3, 16, 1024, "focal_l1", 0.5, 1e-6, 1e-3),
    "resnet-50-in100": ("resnet", 192, 2048, [3, 4, 6, 3], 3, 16, 1024, "focal_l1", 0.5, 0.1, 1e-3),
    "convnext-tiny": ("convnext", 224, 768, [3, 3, 9, 3], 3, 32, 768, "focal_l1", 0.0, 1e-6, 0.0),
    "convnext-small": ("convnext", 224, 768, [3, 3, 27, 3], 3, 32, 768, "focal_l1", 0.0, 1e-6, 0.0),
    "convnext-base": ("convnext", 224, 1024, [3, 3, 27, 3], 3, 32, 1024, "focal_l1", 0.0, 1e-6, 0.0),
}


@pytest.mark.parametrize("name", SEED_PRESETS)
def test_seed_presets(name):
    model_type, size, width, depth, layer, stride, channels, loss, weight, gamma, unmask = SEED_PRESETS[name]
    config = A2MIMConfig.from_preset(name)
    backbone = config.backbone_config
    assert (backbone.model_type, config.image_size, config.encoder_hidden_size) == (model_type, size, width)
    assert (config.mask_layer, config.mask_layer_stride, config.mask_layer_channels) == (layer, stride, channels)
    assert (config.spatial_loss, config.frequency_loss_weight) == (loss, weight)
    assert (config.mask_gamma_init, config.frequency_unmask_weight) == (gamma, unmask)
    assert (config.mask_patch_size, config.mask_ratio, config.mask_grid_size) == (32, 0.6, size // 32)
    assert config.preset == name and config.encoder_stride == (16 if model_type == "beit" else 32)
    if model_type == "beit":
        assert (backbone.num_hidden_layers, backbone.patch_size, backbone.image_size) == (depth, 16, size)
        assert backbone.use_absolute_position_embeddings and backbone.use_relative_position_bias
        assert backbone.layer_scale_init_value == 0.1 and backbone.layer_norm_eps == 1e-6
    else:
        assert backbone.depths == depth
    if model_type == "convnext":
        assert backbone.layer_norm_eps == 1e-6 and backbone.drop_path_rate == 0.0


def test_every_preset_is_described_with_its_row():
    described = A2MIMConfig.describe_presets()
    assert list(described) == A2MIMConfig.presets()
    assert set(SEED_PRESETS) | {"vit-micro", "resnet-micro", "convnext-micro"} == set(described)
    assert described["deit-small"] == (
        "DeiT-S/16, ImageNet-100, 800 ep; imagenet100/deit_small_l8_sz192_4xb256_accu2_cos_ep800.py; "
        "fine-tuned top-1 87.24"
    )
    assert described["convnext-micro"].endswith("no fine-tuning number")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown A2MIM preset 'vit-huge'. Known presets: vit-small, vit-base"):
        A2MIMConfig.from_preset("vit-huge")


def test_preset_overrides_and_save_load_round_trip(tmp_path):
    config = A2MIMConfig.from_preset("vit-micro", mask_ratio=0.5)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, A2MIMConfig) and isinstance(loaded.backbone_config, BeitConfig)
    assert loaded.mask_ratio == 0.5 and loaded.backbone_config.hidden_size == 96
    assert loaded.preset == "vit-micro" and loaded.family == "vit"
    without_path = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(loaded) == without_path(config)


def test_backbone_accepts_config_objects_and_syncs_image_size():
    config = A2MIMConfig(backbone_config=BeitConfig(image_size=64, patch_size=8), mask_patch_size=16)
    assert config.image_size == 64 and config.backbone_config.image_size == 64
    config = A2MIMConfig(backbone_config=BeitConfig(patch_size=8), image_size=96, mask_patch_size=16)
    assert config.backbone_config.image_size == 96
    resnet = A2MIMConfig(backbone_config=ResNetConfig())
    assert (resnet.image_size, resnet.mask_layer) == (224, 3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tiny_vit_config(mask_ratio=0.0), r"mask_ratio=0.0 is invalid: it must lie strictly between 0 and 1"),
        (lambda: tiny_vit_config(mask_ratio=1.2), r"mask_ratio=1.2 is invalid"),
        (lambda: tiny_vit_config(image_size=36), r"image_size=36 is invalid: it must be a positive multiple of "
                                                 r"mask_patch_size=8"),
        (lambda: tiny_vit_config(mask_patch_size=2, image_size=32), r"mask_patch_size=2 is invalid: the features at "
                                                                    r"mask_layer=0 have stride 4"),
        (lambda: tiny_resnet_config(mask_patch_size=8), r"mask_patch_size=8 is invalid: .* stride 16"),
        (lambda: tiny_vit_config(mask_layer=2), r"mask_layer=2 is invalid: the encoder has 2 transformer blocks; "
                                                r"use 0\.\.1"),
        (lambda: tiny_resnet_config(mask_layer=4), r"mask_layer=4 is invalid: the encoder has 4 ResNet stages"),
        (lambda: tiny_resnet_config(image_size=48), r"image_size=48 is invalid: it must be a multiple of the "
                                                    r"encoder's output stride 32"),
        (lambda: tiny_vit_config(mask_token_mode="add"), r"mask_token_mode='add' is invalid: use 'residual'"),
        (lambda: tiny_vit_config(spatial_loss="l2"), r"spatial_loss='l2' is invalid: use 'l1' or 'focal_l1'"),
        (lambda: tiny_vit_config(unmask_weight=2), r"unmask_weight=2 is invalid: it must lie in \[0, 1\]"),
        (lambda: tiny_vit_config(frequency_loss_weight=-1), r"frequency_loss_weight=-1 is invalid"),
        (lambda: A2MIMConfig(backbone_config={"model_type": "swin"}),
         r"model_type='swin', which A2MIM does not support; use one of \['beit', 'vit', 'resnet', 'convnext'\]"),
    ],
)
def test_invalid_values_raise_clear_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_residual_token_without_mean_fill_warns_that_the_task_leaks():
    with pytest.warns(UserWarning, match="sees the masked pixels.*mask_token_mode='replace'"):
        tiny_vit_config(mean_fill=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_vit_config(mean_fill=False, mask_token_mode="replace")


def test_readme_preset_table_matches_the_presets():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name, source in PRESET_SOURCES.items():
        config = f"`{source.config}`" if source.config.endswith(".py") else source.config
        top1 = "—" if source.top1 is None else str(source.top1)
        assert f"| `{name}` | {source.row} | {config} | {top1} |" in readme, name
