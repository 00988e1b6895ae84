"""A stock encoder as a stock backbone with its weights: the configs of the paper's protocol, the strict copy."""

import pytest
import torch
from transformers import (
    BeitBackbone,
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    ConvNextBackbone,
    ResNetBackbone,
    ViTConfig,
)

from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.backbones import backbone_config_for, load_encoder_into_backbone, vit_out_indices

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

BACKBONES = {"beit": BeitBackbone, "resnet": ResNetBackbone, "convnext": ConvNextBackbone}


def _encoder(family):
    config = {
        "beit": lambda: tiny_vit_config(backbone={"num_hidden_layers": 4}),
        "resnet": tiny_resnet_config,
        "convnext": tiny_convnext_config,
    }[family]()
    torch.manual_seed(0)
    return A2MIMForMaskedImageModeling(config).stock_encoder()


def _expected_backbone_tensors(family, encoder):
    """The encoder's tensors under the backbone's names (BEiT drops its final norm, ConvNeXt's goes to stage 4)."""
    expected = {}
    for key, tensor in encoder.state_dict().items():
        if family == "beit":
            if not key.startswith("pooler."):
                expected[f"beit.{key}"] = tensor
        elif family == "convnext" and key.startswith("layernorm."):
            expected[key.replace("layernorm.", "hidden_states_norms.stage4.")] = tensor
        else:
            expected[key] = tensor
    return expected


def test_vit_out_indices_scale_the_papers_blocks():
    assert vit_out_indices(12) == [4, 6, 8, 12]
    assert vit_out_indices(24) == [8, 12, 16, 24]
    assert vit_out_indices(4) == [1, 2, 3, 4]
    assert vit_out_indices(5) == [1, 2, 3, 5]
    with pytest.raises(ValueError, match="only 2"):
        vit_out_indices(2)


@pytest.mark.parametrize("family", BACKBONES)
def test_every_backbone_tensor_equals_the_encoders(family):
    encoder = _encoder(family)
    config = backbone_config_for(encoder.config)
    if family == "beit":
        assert config.add_fpn and config.out_indices == [1, 2, 3, 4]
    else:
        assert config.out_features == ["stage1", "stage2", "stage3", "stage4"]
    backbone = BACKBONES[family](config)
    new = load_encoder_into_backbone(backbone, encoder)
    expected = _expected_backbone_tensors(family, encoder)
    state = backbone.state_dict()
    assert sorted(set(state) - set(expected)) == sorted(new)
    if family == "beit":
        assert new and all(key.startswith("fpn.") for key in new)
    elif family == "convnext":  # stage 4's output norm is the encoder's final norm
        assert {key.split(".")[1] for key in new} == {"stage1", "stage2", "stage3"}
    else:
        assert new == []
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key
    size = 32 if family == "beit" else 64
    assert len(backbone(torch.randn(1, 3, size, size)).feature_maps) == 4


def test_a_detector_backbone_with_frozen_batchnorm_gets_every_resnet_weight():
    encoder = _encoder("resnet")
    detector = ConditionalDetrForObjectDetection(ConditionalDetrConfig(
        backbone_config=backbone_config_for(encoder.config), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2, num_queries=4,
        num_labels=2))
    backbone = detector.model.backbone.model
    assert load_encoder_into_backbone(backbone, encoder) == []
    state = backbone.state_dict()
    for key, tensor in encoder.state_dict().items():
        if not key.endswith("num_batches_tracked"):  # frozen BatchNorm keeps no counter
            assert torch.equal(state[key], tensor), key


def test_mismatches_are_named():
    encoder = _encoder("resnet")
    other = tiny_resnet_config(backbone={"hidden_sizes": [8, 16, 32, 32]}).backbone_config
    with pytest.raises(ValueError, match="does not fit the backbone"):
        load_encoder_into_backbone(ResNetBackbone(backbone_config_for(other)), encoder)
    deeper = tiny_resnet_config(backbone={"depths": [1, 1, 1, 2]}).backbone_config
    with pytest.raises(ValueError, match=r"missing \['encoder.stages.3.layers.1"):
        load_encoder_into_backbone(ResNetBackbone(backbone_config_for(deeper)), encoder)
    with pytest.raises(ValueError, match="same family"):
        load_encoder_into_backbone(ConvNextBackbone(backbone_config_for(_encoder("convnext").config)), encoder)


def test_a_plain_vit_is_refused_naming_the_beit_style_presets():
    with pytest.raises(ValueError, match="no ViTBackbone.*vit-base"):
        backbone_config_for(ViTConfig())
