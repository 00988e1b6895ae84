"""End-to-end runs of run_semantic_segmentation.py at tiny sizes on the embedded Fashion-MNIST scenes."""

import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import PIL.Image
import pytest

import run_semantic_segmentation
from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.data.scenes import SCENE_ID2LABEL
from modeling_a2mim.training.cli import run_main

from .helpers import tiny_resnet_config, tiny_vit_config

COMMON = [
    "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--num_train_scenes", "16",
    "--num_eval_scenes", "8", "--use_cpu", "--report_to", "none", "--dataloader_num_workers", "0", "--seed", "0",
    "--disable_tqdm", "true",
]


def segment(output_dir, *args):
    with mock.patch.object(sys, "argv", ["run_semantic_segmentation.py", "--output_dir", str(output_dir), *COMMON,
                                         *args]):
        run_semantic_segmentation.main()
    return {name: json.loads((output_dir / f"{name}_results.json").read_text())
            for name in ("train", "eval") if (output_dir / f"{name}_results.json").is_file()}


def one_line_error(*args) -> str:
    with mock.patch.object(sys, "argv", ["run_semantic_segmentation.py", *COMMON, *args]), \
            pytest.raises(SystemExit) as exit_info:
        run_main(run_semantic_segmentation.main, "run_semantic_segmentation.py")
    message = str(exit_info.value.code)
    assert message.startswith("run_semantic_segmentation.py: error: ") and "\n" not in message
    return message


@pytest.fixture(scope="module")
def a2mim_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2mim")
    configs = {"vit": tiny_vit_config(backbone={"num_hidden_layers": 4}), "resnet": tiny_resnet_config()}
    for name, config in configs.items():
        A2MIMForMaskedImageModeling(config).save_pretrained(root / name)
    return root


CLEAN_LOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    from transformers import AutoModelForSemanticSegmentation, pipeline
    folder = sys.argv[1]
    model = AutoModelForSemanticSegmentation.from_pretrained(folder)
    segmenter = pipeline("image-segmentation", model=folder, device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    outputs = segmenter(image)
    print(json.dumps({"class": type(model).__name__, "backbone": type(model.backbone).__name__,
                      "labels": [o["label"] for o in outputs], "sizes": [list(o["mask"].size) for o in outputs],
                      "imported_a2mim": "modeling_a2mim" in sys.modules}))
""")


def load_without_package(model_dir, tmp_path) -> dict:
    """Load the saved model in a fresh interpreter that cannot see this checkout (isolated mode, temp cwd)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-c", CLEAN_LOAD, str(model_dir)], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_vit_from_a2mim_checkpoint_saves_a_stock_model_that_loads_without_the_package(a2mim_checkpoints, tmp_path):
    output = tmp_path / "vit-seg"
    results = segment(output, "--model_name_or_path", str(a2mim_checkpoints / "vit"), "--do_train", "--do_eval",
                      "--max_steps", "2", "--save_steps", "1", "--scene_size", "32")
    assert results["train"]["skipped_images"] == 0
    assert 0 <= results["eval"]["eval_mean_iou"] <= 1 and "eval_iou_background" in results["eval"]
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["UperNetForSemanticSegmentation"] and "auto_map" not in config
    assert config["backbone_config"]["model_type"] == "beit" and config["backbone_config"]["add_fpn"]
    assert config["backbone_config"]["out_indices"] == [1, 2, 3, 4]
    assert {int(k): v for k, v in config["id2label"].items()} == SCENE_ID2LABEL
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["image_processor_type"] == "SegformerImageProcessor"
    assert processor["size"] == {"height": 32, "width": 32}
    for folder in (output, output / "checkpoint-1", output / "checkpoint-2"):
        picture = PIL.Image.open(folder / "segmentations.png")
        assert picture.size == (3 * 128, 14 + 4 * 128)
    card = (output / "README.md").read_text()
    assert "image-segmentation" in card and "AutoModelForSemanticSegmentation" in card and "mean_iou" in card

    loaded = load_without_package(output, tmp_path)
    assert loaded["class"] == "UperNetForSemanticSegmentation" and loaded["backbone"] == "BeitBackbone"
    assert not loaded["imported_a2mim"]
    assert loaded["labels"] and set(loaded["labels"]) <= set(SCENE_ID2LABEL.values())
    assert all(size == [40, 48] for size in loaded["sizes"])  # masks at the input image's size

    # evaluating the saved UperNet gives the numbers of the run that trained it
    evaluated = segment(tmp_path / "vit-eval", "--model_name_or_path", str(output), "--do_eval", "--scene_size", "32")
    assert evaluated["eval"]["eval_mean_iou"] == pytest.approx(results["eval"]["eval_mean_iou"])
    assert evaluated["eval"]["eval_loss"] == pytest.approx(results["eval"]["eval_loss"], rel=1e-5)


def test_resnet_resume_continues_from_the_last_checkpoint(a2mim_checkpoints, tmp_path, caplog):
    output = tmp_path / "resnet-seg"
    args = ["--model_name_or_path", str(a2mim_checkpoints / "resnet"), "--do_train", "--save_steps", "2",
            "--logging_steps", "1"]
    segment(output, *args, "--max_steps", "2")
    first = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    with caplog.at_level("WARNING"):
        segment(output, *args, "--max_steps", "4")
    assert any(f"Resuming from {output / 'checkpoint-2'}" in record.getMessage() for record in caplog.records)
    state = json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 4 and losses[:2] == [e["loss"] for e in first["log_history"] if "loss" in e]


def _write_folder(root, masks, image_size=(24, 24)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, mask in masks.items():
        PIL.Image.new("RGB", image_size, (200, 10, 90)).save(root / "images" / f"{stem}.png")
        mask.save(root / "masks" / f"{stem}.png")
    return root


def test_bad_inputs_stop_with_one_line(a2mim_checkpoints, tmp_path):
    good = PIL.Image.fromarray(np.ones((24, 24), np.uint8), mode="L")
    id2label = json.dumps({"0": "background", "1": "thing"})
    resnet = ["--model_name_or_path", str(a2mim_checkpoints / "resnet"), "--do_train", "--max_steps", "1"]
    folder = _write_folder(tmp_path / "rgb", {"a": good, "b": PIL.Image.new("RGB", (24, 24))})
    message = one_line_error(*resnet, "--output_dir", str(tmp_path / "o1"), "--train_dir", str(folder),
                             "--id2label", id2label)
    assert "masks/b.png" in message and "is RGB" in message
    beyond = PIL.Image.fromarray(np.full((24, 24), 2, np.uint8), mode="L")
    folder = _write_folder(tmp_path / "beyond", {"a": beyond})
    message = one_line_error(*resnet, "--output_dir", str(tmp_path / "o2"), "--train_dir", str(folder),
                             "--id2label", id2label)
    assert "masks/a.png" in message and "[2] beyond the 2 classes" in message
    message = one_line_error(*resnet, "--output_dir", str(tmp_path / "o3"), "--train_dir", str(folder))
    assert "pass --id2label" in message
    message = one_line_error(*resnet, "--output_dir", str(tmp_path / "o4"), "--per_device_train_batch_size", "1")
    assert "BatchNorm" in message and "--per_device_train_batch_size 2" in message


def test_vit_trains_and_evaluates_at_crops_larger_than_its_pretraining_resolution(a2mim_checkpoints, tmp_path,
                                                                                    caplog):
    output = tmp_path / "vit-48"
    with caplog.at_level("WARNING"):
        results = segment(output, "--model_name_or_path", str(a2mim_checkpoints / "vit"), "--do_train", "--do_eval",
                          "--max_steps", "1", "--save_strategy", "no", "--crop_size", "48", "--scene_size", "48")
    assert "pretrained at 32 px; at 48 px crops (48 px evaluation) its position embeddings" in caplog.text
    assert 0 <= results["eval"]["eval_mean_iou"] <= 1
    config = json.loads((output / "config.json").read_text())
    assert config["backbone_config"]["image_size"] == 32  # the tables keep their shape, interpolated per forward
    assert json.loads((output / "preprocessor_config.json").read_text())["size"] == {"height": 48, "width": 48}
