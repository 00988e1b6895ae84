"""Issue 22.8: every known bad argument of the scripts and the converter ends with one line naming the problem and
the fix (through `run_main`), while an unexpected exception keeps its traceback. Issue 22.9: data that cannot train a
classifier is refused, and images stored as plain `{bytes, path}` structs are read."""

import io
import re
import sys
from unittest import mock

import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image

import run_finetuning
import run_linear_probe
import run_object_detection
import run_pretraining
import run_semantic_segmentation
from modeling_a2mim import A2MIMForMaskedImageModeling, convert_openmixup
from modeling_a2mim.data import decode_image
from modeling_a2mim.training.arguments import DataArguments, prepare_splits
from modeling_a2mim.training.cli import run_main

from .helpers import tiny_resnet_config


def one_line_error(main, script: str, *args) -> str:
    """The message `run_main` exits with for `script args` (it must exit with one line)."""
    with mock.patch.object(sys, "argv", [script, *args]), pytest.raises(SystemExit) as exit_info:
        run_main(main, script)
    message = str(exit_info.value.code)
    assert message.startswith(f"{script}: error: ") and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    A2MIMForMaskedImageModeling(tiny_resnet_config()).save_pretrained(root / "good")
    for name in ("corrupt_config", "no_weights", "truncated_weights"):
        A2MIMForMaskedImageModeling(tiny_resnet_config()).save_pretrained(root / name)
    (root / "corrupt_config" / "config.json").write_text('{"model_type": "a2mim",')
    (root / "no_weights" / "model.safetensors").unlink()
    weights = root / "truncated_weights" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (root / "no_config").mkdir()
    return root


MODEL_CASES = {
    "corrupt_config": r"corrupt_config/config\.json is not valid JSON \(.*line 1.*\): the file is damaged",
    "no_weights": r"no_weights has a config\.json but no weights \(model\.safetensors\)",
    "truncated_weights": r"truncated_weights: the weights cannot be read \(.*\); the file is truncated or damaged",
    "no_config": r"no_config has no config\.json, so it is not a saved model",
    "missing/folder": r"missing/folder: no such folder \(and it is not a Hub model id\); check the path\.$",
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_paths_are_one_line_in_every_script(case, broken_checkpoints, tmp_path):
    path = str(broken_checkpoints / case)
    common = ["--model_name_or_path", path, "--output_dir", str(tmp_path / "out")]
    scripts = [
        (run_pretraining.main, "run_pretraining.py", ["--use_cpu", "--max_steps", "1"]),
        (run_finetuning.main, "run_finetuning.py", ["--use_cpu", "--do_train", "--max_steps", "1",
                                                    "--max_train_samples", "4"]),
        (run_linear_probe.main, "run_linear_probe.py", ["--use_cpu", "--max_train_samples", "4",
                                                        "--max_eval_samples", "4"]),
        (run_semantic_segmentation.main, "run_semantic_segmentation.py", ["--use_cpu", "--do_train"]),
        (run_object_detection.main, "run_object_detection.py", ["--use_cpu", "--do_train"]),
    ]
    for main, script, extra in scripts:
        message = one_line_error(main, script, *common, *extra)
        assert re.search(MODEL_CASES[case], message), message


def test_a_mistyped_absolute_path_says_no_such_folder_not_repo_id(tmp_path):
    message = one_line_error(run_finetuning.main, "run_finetuning.py", "--model_name_or_path",
                             str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out"), "--do_train", "--use_cpu")
    assert f"--model_name_or_path {tmp_path / 'nope'}: no such folder" in message and "Repo id" not in message


@pytest.mark.parametrize("override, expected", [
    ("mask_ratio=abc", "A2MIMConfig.mask_ratio='abc' is invalid: it must be a number."),
    ("backbone_config.hidden_size=-1",
     "A2MIMConfig.backbone_config.hidden_size=-1 is invalid: it must be a positive integer."),
    ("backbone_config.hidden_size=abc", "--config_overrides: Validation error for field 'hidden_size'"),
])
def test_bad_config_overrides_are_one_line(override, expected, tmp_path):
    message = one_line_error(run_pretraining.main, "run_pretraining.py", "--model_preset", "vit-micro",
                             "--config_overrides", override, "--output_dir", str(tmp_path), "--use_cpu",
                             "--max_steps", "1")
    assert expected in message


def test_an_architecture_override_of_a_checkpoint_is_one_line(broken_checkpoints, tmp_path):
    message = one_line_error(run_pretraining.main, "run_pretraining.py", "--model_name_or_path",
                             str(broken_checkpoints / "good"), "--config_overrides", "backbone_config.hidden_sizes=[4]",
                             "--output_dir", str(tmp_path), "--use_cpu", "--max_steps", "1")
    assert "--config_overrides backbone_config.hidden_sizes=[4] changes the architecture of the checkpoint" in message


def test_converter_errors_are_one_line(tmp_path):
    good = {"state_dict": {"backbone.conv1.weight": torch.zeros(8, 3, 7, 7)}}
    torch.save(good, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    torch.save({"state_dict": {"foo.bar": torch.zeros(2)}}, tmp_path / "random.pth")
    torch.save({"state_dict": {}, "meta": mock.sentinel.__class__}, tmp_path / "unsafe.pth")
    (tmp_path / "config.json").write_text("{")
    cases = {
        "truncated.pth": "is not a readable PyTorch checkpoint (RuntimeError: PytorchStreamReader failed",
        "empty.pth": "is empty (0 bytes)",
        "text.pth": "is not a readable PyTorch checkpoint",
        "random.pth": "Not an openmixup A2MIM ResNet, ViT or ConvNeXt checkpoint",
        "unsafe.pth": "Refusing to load",
        "missing.pth": "missing.pth: no such file.",
    }
    for name, expected in cases.items():
        message = one_line_error(convert_openmixup.main, "convert_openmixup", "--checkpoint",
                                 str(tmp_path / name), "--output_dir", str(tmp_path / "out"))
        assert expected in message, message
    message = one_line_error(convert_openmixup.main, "convert_openmixup", "--checkpoint", str(tmp_path / "good.pth"),
                             "--config", str(tmp_path / "config.json"), "--output_dir", str(tmp_path / "out"))
    assert "--config" in message and "is not a readable JSON config" in message


def test_an_unexpected_exception_keeps_its_traceback():
    def main():
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        run_main(main, "script.py")


def one_class_parquet(path, classes=("cat",), rows=8):
    images = []
    for index in range(rows):
        buffer = io.BytesIO()
        PIL.Image.new("RGB", (16, 16), (index * 20, 0, 0)).save(buffer, "PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    Dataset.from_dict({"image": images, "label": [index % len(classes) for index in range(rows)]},
                      features=Features({"image": Image(), "label": ClassLabel(names=list(classes))})).to_parquet(
        str(path))
    return path


@pytest.mark.parametrize("classes", [("cat",), ("cat", "dog")])
def test_finetuning_and_the_probe_refuse_training_data_of_one_class(classes, broken_checkpoints, tmp_path):
    """Issue 22.9: one class named (or, of two named, only one present) cannot train a classifier."""
    data = one_class_parquet(tmp_path / "train.parquet", classes)
    if len(classes) == 2:  # keep only the rows of class 0
        Dataset.from_parquet(str(data)).filter(lambda row: row["label"] == 0).to_parquet(str(data))
    common = ["--model_name_or_path", str(broken_checkpoints / "good"), "--data_files", str(data), "--use_cpu"]
    expected = (r"has 1 class \(\['cat'\]\); a classifier needs at least two" if len(classes) == 1 else
                r"holds only the class \['cat'\] of \['cat', 'dog'\].*a classifier needs at least two")
    message = one_line_error(run_finetuning.main, "run_finetuning.py", *common, "--output_dir", str(tmp_path / "ft"),
                             "--do_train", "--max_steps", "1")
    assert re.search(expected, message), message
    message = one_line_error(run_linear_probe.main, "run_linear_probe.py", *common, "--output_dir",
                             str(tmp_path / "probe"), "--train_val_split", "0.25")
    assert re.search(expected, message), message


def test_an_image_column_of_bytes_path_structs_without_metadata_is_decoded(tmp_path):
    """Issue 22.9: a parquet file written by pyarrow stores images as {bytes, path} structs with no `datasets`
    metadata; they are found, checked and decoded like an `Image` column."""
    rows = []
    for index in range(6):
        buffer = io.BytesIO()
        PIL.Image.new("RGB", (16, 16), (index * 40, 0, 0)).save(buffer, "PNG")
        rows.append({"bytes": buffer.getvalue(), "path": None})
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"picture": pa.array(rows, type=struct), "id": list(range(6))}),
                   tmp_path / "train.parquet")
    arguments = DataArguments(data_files=[str(tmp_path / "train.parquet")])
    train, _, column = prepare_splits(arguments, seed=0)
    assert column == "picture" and isinstance(train.features["picture"], Image)
    assert decode_image(train[3]["picture"]).getpixel((0, 0)) == (120, 0, 0)
    arguments.image_column_name = "picture"
    assert prepare_splits(arguments, seed=0)[2] == "picture"

    pq.write_table(pa.table({"picture": pa.array([{"bytes": b"junk", "path": None}] * 2, type=struct)}),
                   tmp_path / "junk.parquet")
    with pytest.raises(ValueError, match=r"'picture' does not hold images: none of its first 2 \{bytes, path\} "
                                         r"structs decodes as an image"):
        prepare_splits(DataArguments(data_files=[str(tmp_path / "junk.parquet")], image_column_name="picture"), 0)
