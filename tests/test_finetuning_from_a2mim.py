"""Fine-tuning from A2MIM checkpoints: the stock classifier built in memory, ConvNeXt through both scripts, and two
processes (torchrun, gloo) starting from an A2MIM checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from transformers import ConvNextForImageClassification

import run_finetuning
import run_linear_probe
from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.finetuning.layer_decay import layer_decay_multiplier
from modeling_a2mim.finetuning.models import load_classifier

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"vit": tiny_vit_config, "resnet": tiny_resnet_config, "convnext": tiny_convnext_config}
LABELS = ["a", "b", "c"]


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_from_an_a2mim_checkpoint_is_built_in_memory_like_the_exported_encoder(family, tmp_path):
    model = A2MIMForMaskedImageModeling(FAMILIES[family]())
    model.save_pretrained(tmp_path / "a2mim")
    model.save_encoder(tmp_path / "encoder")
    with mock.patch("tempfile.TemporaryDirectory", side_effect=AssertionError("no disk round trip")):
        in_memory, processor, _ = load_classifier(str(tmp_path / "a2mim"), labels=LABELS)
    exported, exported_processor, _ = load_classifier(str(tmp_path / "encoder"), labels=LABELS)
    assert type(in_memory) is type(exported) and in_memory.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert processor.to_dict() == exported_processor.to_dict()
    encoder_state = exported.base_model.state_dict()
    for name, tensor in in_memory.base_model.state_dict().items():
        assert torch.equal(tensor, encoder_state[name]), name
    pixels = torch.randn(2, 3, model.config.image_size, model.config.image_size)
    with torch.no_grad():
        pooled = in_memory.base_model.eval()(pixels).pooler_output.flatten(1)
        assert torch.allclose(pooled, model.a2mim.eval()(pixels).pooler_output, atol=1e-5)


def test_save_encoder_writes_only_on_the_main_process(tmp_path):
    model = A2MIMForMaskedImageModeling(tiny_resnet_config())
    with mock.patch("torch.distributed.is_initialized", return_value=True), \
            mock.patch("torch.distributed.get_rank", return_value=1):
        model.save_encoder(tmp_path / "rank1")
    assert not (tmp_path / "rank1").exists()
    with mock.patch("torch.distributed.is_initialized", return_value=True), \
            mock.patch("torch.distributed.get_rank", return_value=0):
        model.save_encoder(tmp_path / "rank0")
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {
        "config.json", "model.safetensors", "preprocessor_config.json"
    }


def test_convnext_layer_decay_and_drop_path(tmp_path):
    model = A2MIMForMaskedImageModeling(tiny_convnext_config())
    model.save_pretrained(tmp_path)
    classifier, _, _ = load_classifier(str(tmp_path), labels=LABELS, drop_path_rate=0.2)
    assert type(classifier) is ConvNextForImageClassification and classifier.config.drop_path_rate == 0.2
    multiplier = layer_decay_multiplier(classifier, 0.5)
    assert multiplier("convnext.embeddings.patch_embeddings.weight") == 0.5**5
    assert multiplier("convnext.encoder.stages.2.layers.0.dwconv.weight") == 0.5**2
    assert multiplier("convnext.encoder.stages.3.downsampling_layer.1.weight") == 0.5
    assert multiplier("convnext.layernorm.weight") == multiplier("classifier.weight") == 1


SCRIPT_ARGS = ["--max_train_samples", "16", "--max_eval_samples", "16", "--use_cpu", "--report_to", "none",
               "--dataloader_num_workers", "0", "--seed", "0"]


def test_run_finetuning_and_linear_probe_accept_convnext(tmp_path):
    A2MIMForMaskedImageModeling(tiny_convnext_config()).save_pretrained(tmp_path / "a2mim")
    output = tmp_path / "ft"
    with mock.patch.object(sys, "argv", [run_finetuning.__file__, "--model_name_or_path", str(tmp_path / "a2mim"),
                                         "--output_dir", str(output), "--do_train", "--do_eval", "--max_steps", "2",
                                         "--per_device_train_batch_size", "8", "--layer_decay", "0.8",
                                         "--drop_path_rate", "0.1", "--train_image_size", "64",
                                         "--eval_image_size", "64", "--save_strategy", "no", *SCRIPT_ARGS]):
        run_finetuning.main()
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["ConvNextForImageClassification"] and config["drop_path_rate"] == 0.1
    assert 0 <= json.loads((output / "eval_results.json").read_text())["eval_accuracy"] <= 1

    with mock.patch.object(sys, "argv", [run_linear_probe.__file__, "--model_name_or_path", str(tmp_path / "a2mim"),
                                         "--output_dir", str(tmp_path / "probe"), "--max_train_samples", "16",
                                         "--max_eval_samples", "16", "--use_cpu"]):
        results = run_linear_probe.main()
    assert results["feature_dim"] == 64 and 0 <= results["linear_probe_accuracy"] <= 1


def test_two_process_finetuning_from_an_a2mim_checkpoint(tmp_path):
    A2MIMForMaskedImageModeling(tiny_resnet_config()).save_pretrained(tmp_path / "a2mim")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "run_finetuning.py"), "--model_name_or_path", str(tmp_path / "a2mim"),
         "--output_dir", str(tmp_path / "out"), "--do_train", "--do_eval", "--max_steps", "2",
         "--per_device_train_batch_size", "4", "--train_image_size", "64", "--eval_image_size", "64",
         "--save_strategy", "no", *SCRIPT_ARGS],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == [
        "ResNetForImageClassification"
    ]
