"""The transfer source every downstream script starts from: the stock encoder and the statistics it was pretrained
with."""

import json
import sys
from unittest import mock

import pytest
import torch
from transformers import AutoModelForMaskedImageModeling, ViTImageProcessor

import run_finetuning
import run_linear_probe
import run_pretraining
from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling
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


def test_pretraining_records_its_statistics_and_finetuning_probe_and_export_normalize_with_them(tmp_path):
    """Issue 22.1: pretrain vit-micro from a stock encoder whose processor has Fashion-MNIST statistics; every consumer
    of the A2MIM checkpoint then normalizes with them, and says so."""
    stock = tmp_path / "stock"
    A2MIMForMaskedImageModeling(A2MIMConfig.from_preset("vit-micro")).save_encoder(
        stock, image_processor=ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=FASHION_MEAN,
                                                 image_std=FASHION_STD))
    pretrained = tmp_path / "pretrained"
    fast = ["--use_cpu", "--dataloader_num_workers", "0", "--seed", "0", "--report_to", "none", "--save_strategy",
            "no"]
    run_pretraining.main(["--output_dir", str(pretrained), "--model_name_or_path", str(stock), "--model_preset",
                          "vit-micro", "--max_steps", "1", "--max_train_samples", "4", "--per_device_train_batch_size",
                          "4", *fast])
    config = json.loads((pretrained / "config.json").read_text())
    assert (config["image_mean"], config["image_std"]) == (FASHION_MEAN, FASHION_STD)
    saved = json.loads((pretrained / "preprocessor_config.json").read_text())
    assert (saved["image_mean"], saved["image_std"]) == (FASHION_MEAN, FASHION_STD)
    assert f"| image statistics | {stock}/preprocessor_config.json: mean {FASHION_MEAN}" in \
        (pretrained / "README.md").read_text()

    # The export without an explicit processor writes the recorded statistics.
    AutoModelForMaskedImageModeling.from_pretrained(pretrained).save_encoder(tmp_path / "export")
    exported = json.loads((tmp_path / "export" / "preprocessor_config.json").read_text())
    assert (exported["image_mean"], exported["image_std"]) == (FASHION_MEAN, FASHION_STD)

    # Fine-tuning: the training transform and the saved (evaluation) processor use them; the card says where from.
    seen = []
    build_train_transform = run_finetuning.build_train_transform

    def spy(size, mean, std, recipe):
        seen.append((list(mean), list(std)))
        return build_train_transform(size, mean, std, recipe)

    finetuned = tmp_path / "finetuned"
    argv = [run_finetuning.__file__, "--model_name_or_path", str(pretrained), "--output_dir", str(finetuned),
            "--do_train", "--do_eval", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--max_train_samples", "8", "--max_eval_samples", "8", *fast]
    with mock.patch.object(sys, "argv", argv), mock.patch.object(run_finetuning, "build_train_transform", spy):
        run_finetuning.main()
    assert seen == [(FASHION_MEAN, FASHION_STD)]
    processor = json.loads((finetuned / "preprocessor_config.json").read_text())
    assert (processor["image_mean"], processor["image_std"]) == (FASHION_MEAN, FASHION_STD)
    statistics = f"the A2MIM config of {pretrained} (image_mean / image_std)"
    assert f"| image statistics | {statistics} |" in (finetuned / "README.md").read_text()

    # The linear probe normalizes with them too.
    seen.clear()
    build_eval_image_processor = run_linear_probe.build_eval_image_processor

    def eval_spy(size, mean, std, *args):
        seen.append((list(mean), list(std)))
        return build_eval_image_processor(size, mean, std, *args)

    argv = [run_linear_probe.__file__, "--model_name_or_path", str(pretrained), "--output_dir",
            str(tmp_path / "probe"), "--max_train_samples", "20", "--max_eval_samples", "10", "--use_cpu"]
    with mock.patch.object(sys, "argv", argv), mock.patch.object(run_linear_probe, "build_eval_image_processor",
                                                                 eval_spy):
        results = run_linear_probe.main()
    assert seen == [(FASHION_MEAN, FASHION_STD)] and results["image_statistics"] == statistics
