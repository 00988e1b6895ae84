"""The transfer source every downstream script starts from: the stock encoder and the statistics it was pretrained
with."""

import pytest
import torch
from transformers import ViTImageProcessor

from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.transfer import IMAGENET_STATISTICS, load_transfer_source

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

FAMILIES = {"vit": tiny_vit_config, "resnet": tiny_resnet_config, "convnext": tiny_convnext_config}
FASHION_MEAN, FASHION_STD = [0.286] * 3, [0.353] * 3


@pytest.mark.parametrize("family", FAMILIES)
def test_an_a2mim_checkpoint_gives_its_stock_encoder_and_its_own_statistics(family, tmp_path):
    model = A2MIMForMaskedImageModeling(FAMILIES[family]())
    model.save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=FASHION_MEAN,
                      image_std=FASHION_STD).save_pretrained(tmp_path)
    source = load_transfer_source(str(tmp_path))
    expected = model.stock_encoder().state_dict()
    assert source.encoder.state_dict().keys() == expected.keys()
    for name, tensor in source.encoder.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    processor = source.image_processor
    assert (list(processor.image_mean), list(processor.image_std)) == (FASHION_MEAN, FASHION_STD)
    assert processor.size == {"height": model.config.image_size, "width": model.config.image_size}
    assert source.statistics_source == f"{tmp_path}/preprocessor_config.json"


@pytest.mark.parametrize("family", FAMILIES)
def test_without_a_saved_processor_the_statistics_are_imagenet_and_say_so(family, tmp_path):
    A2MIMForMaskedImageModeling(FAMILIES[family]()).save_encoder(tmp_path, image_processor=ViTImageProcessor())
    (tmp_path / "preprocessor_config.json").unlink()
    source = load_transfer_source(str(tmp_path), image_size=48)
    assert source.statistics_source.startswith(IMAGENET_STATISTICS) and "has no image processor" in \
        source.statistics_source
    assert list(source.image_processor.image_mean) == pytest.approx([0.485, 0.456, 0.406])
    assert source.image_processor.size == {"height": 48, "width": 48}


def test_a_preset_is_a_random_encoder_of_its_architecture():
    source = load_transfer_source(model_preset="resnet-micro")
    assert type(source.encoder).__name__ == "ResNetModel" and source.statistics_source == IMAGENET_STATISTICS
    with pytest.raises(ValueError, match="exactly one of --model_name_or_path"):
        load_transfer_source("x", model_preset="resnet-micro")
