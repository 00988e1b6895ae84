"""End-to-end runs of run_pretraining.py: a few steps each on tiny presets and tiny local datasets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import PIL.Image
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModelForMaskedImageModeling, set_seed

import modeling_a2mim  # noqa: F401
from modeling_a2mim import BlockMaskGenerator
from modeling_a2mim.data.transforms import PretrainingTransform
from modeling_a2mim.training.model_init import build_pretraining_model

from . import sample_log
from .pretraining_data import textured_image, write_image_folder, write_parquet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import run_pretraining  # noqa: E402

FAST = ["--use_cpu", "--dataloader_num_workers", "0", "--logging_steps", "1", "--seed", "0"]


def fixed_batch_loss(model, size: int) -> float:
    """Loss of `model` on 8 fixed images with fixed masks (seed 0)."""
    transform = PretrainingTransform.from_config(model.config, train=False)
    pixel_values = torch.stack([transform(textured_image(i, size)) for i in range(8)])
    masks = BlockMaskGenerator.from_config(model.config)(8, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        return model(pixel_values=pixel_values, bool_masked_pos=masks).loss.item()


def assert_learned(output_dir, preset: str, size: int):
    """The saved model loads through the Auto class and beats its own step-0 weights on a fixed batch."""
    trained = AutoModelForMaskedImageModeling.from_pretrained(output_dir)
    set_seed(0)
    initial, _ = build_pretraining_model(preset)
    assert fixed_batch_loss(trained, size) < fixed_batch_loss(initial, size)


def test_imagefolder_mixed_modes_corrupt_file_vit_and_push(tmp_path, monkeypatch):
    data = write_image_folder(tmp_path / "images", count=30, size=40, corrupted=1)
    calls = {}
    monkeypatch.setattr(HfApi, "whoami", lambda self: {"name": "someone"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("repo", repo_id))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: calls.setdefault(
        "files", {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}))
    out = tmp_path / "out"
    metrics = run_pretraining.main([
        "--output_dir", str(out), "--model_preset", "vit-micro", "--train_dir", str(data), "--max_steps", "8",
        "--per_device_train_batch_size", "8", "--learning_rate", "2e-3", "--save_steps", "4", *FAST,
        "--push_to_hub", "--hub_model_id", "someone/a2mim-test", "--hub_token", "hf_test", "--report_to", "tensorboard",
    ])
    assert metrics["skipped_images"] >= 1  # the truncated file, counted each time it is drawn
    assert_learned(out, "vit-micro", 32)

    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMaskedImageModeling"].endswith("A2MIMForMaskedImageModeling")
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406]) and processor["size"]["height"] == 32
    card = ModelCard.load(out / "README.md")
    assert "| steps | 8 |" in card.text and "final_loss" in card.text and "| skipped_images |" in card.text
    for folder in (out, out / "checkpoint-4", out / "checkpoint-8"):
        with PIL.Image.open(folder / "reconstructions.png") as grid:
            assert grid.size == (4 * 96, 14 + 6 * 96)
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    assert not list(out.rglob("*.tmp"))

    assert calls["repo"] == "someone/a2mim-test"
    assert sorted(calls["files"]) == ["README.md", "all_results.json", "config.json", "configuration_a2mim.py",
                                      "losses.py", "masking.py", "model.safetensors", "modeling_a2mim.py",
                                      "preprocessor_config.json", "presets.py", "reconstructions.png"]
    assert calls["files"]["README.md"] == (out / "README.md").read_bytes()
    # Every code file save_pretrained wrote went up: the folder test_modeling.py loads with trust_remote_code=True
    # in a process without the package.
    assert {path.name for path in out.glob("*.py")} <= set(calls["files"])


def test_parquet_streaming_resnet_from_yaml_file_and_an_overriding_flag(tmp_path):
    parquet = write_parquet(tmp_path / "train.parquet", count=24, size=72)
    out = tmp_path / "out"
    args_file = tmp_path / "args.yaml"
    args_file.write_text("\n".join([
        f"output_dir: {out}", "model_preset: resnet-micro", f"data_files: ['{parquet}']", "streaming: true",
        "shuffle_buffer_size: 16", "max_steps: 20", "per_device_train_batch_size: 4", "learning_rate: 0.003",
        "save_strategy: 'no'", "use_cpu: true", "dataloader_num_workers: 0", "logging_steps: 2", "seed: 0",
    ]))
    metrics = run_pretraining.main([str(args_file), "--max_steps", "8"])  # a flag after the file overrides it
    assert metrics["skipped_images"] == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert_learned(out, "resnet-micro", 72)


def test_a_dataset_saved_with_save_to_disk_is_the_train_split_and_outputs_follow_the_umask(tmp_path):
    parquet = write_parquet(tmp_path / "train.parquet", count=8, size=32)
    datasets.Dataset.from_parquet(str(parquet)).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "out"
    previous = os.umask(0o027)
    try:
        run_pretraining.main(["--output_dir", str(out), "--dataset_name", str(tmp_path / "saved"), "--max_steps",
                              "1", "--per_device_train_batch_size", "4", "--save_steps", "1", "--report_to", "none",
                              *FAST])
    finally:
        os.umask(previous)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    modes = {str(path.relative_to(out)): path.stat().st_mode & 0o666 for path in out.rglob("*") if path.is_file()}
    assert {"model.safetensors", "README.md", "reconstructions.png", "checkpoint-1/model.safetensors"} <= set(modes)
    assert set(modes.values()) == {0o640}, modes  # not mkstemp's / save_pretrained's 0600


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image_column_name", "picture"], "--image_column_name 'picture' is not a column"),
        (["--streaming"], "--streaming needs --max_steps"),
        (["--fp16"], "--fp16 needs a CUDA GPU"),
        (["--config_overrides", "mask_ratio=1.5"], "mask_ratio=1.5 is invalid"),
        (["--config_overrides", "ratio=0.5"], "'ratio' is not an A2MIMConfig field"),
    ],
)
def test_clear_errors_before_training(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        run_pretraining.main(["--output_dir", str(tmp_path), "--max_train_samples", "8", *FAST, *extra])


def test_a_column_without_images_or_only_unreadable_images_is_a_one_line_error(tmp_path):
    parquet = write_parquet(tmp_path / "train.parquet", count=4, size=32)
    args = ["--output_dir", str(tmp_path / "out"), "--max_steps", "1", *FAST]
    with pytest.raises(ValueError, match=r"^--image_column_name 'id' does not hold images: it is Value\('int64'\)"):
        run_pretraining.main([*args, "--data_files", str(parquet), "--image_column_name", "id"])
    broken = datasets.Dataset.from_dict({"image": [{"bytes": b"not a png", "path": None}] * 12},
                                        features=datasets.Features({"image": datasets.Image()}))
    broken.to_parquet(str(tmp_path / "broken.parquet"))
    with pytest.raises(ValueError, match="^No readable images in the first 12 examples of 'image'"):
        run_pretraining.main([*args, "--data_files", str(tmp_path / "broken.parquet")])


def test_push_to_hub_checks_the_hub_before_training_and_keeps_the_output_when_the_upload_fails(tmp_path,
                                                                                                monkeypatch):
    out = tmp_path / "out"
    args = ["--output_dir", str(out), "--max_steps", "1", "--max_train_samples", "8", "--per_device_train_batch_size",
            "4", "--save_strategy", "no", "--report_to", "none", *FAST, "--push_to_hub"]
    with pytest.raises(ValueError, match=r"^--push_to_hub needs --hub_model_id"):
        run_pretraining.main(args)
    monkeypatch.setattr("modeling_a2mim.training.hub.get_token", lambda: None)
    with pytest.raises(ValueError, match=r"^--push_to_hub needs a Hugging Face token with write access: run `hf auth"):
        run_pretraining.main([*args, "--hub_model_id", "someone/a2mim"])
    # HF_HUB_OFFLINE=1 (conftest): the real HfApi cannot reach the Hub.
    with pytest.raises(ValueError, match=r"^--push_to_hub cannot use the Hub repository someone/a2mim "
                                         r"\(OfflineModeIsEnabled: Cannot reach"):
        run_pretraining.main([*args, "--hub_model_id", "someone/a2mim", "--hub_token", "hf_test"])
    assert not out.exists()  # nothing trained

    def refuse(self, repo_id, **kwargs):
        raise ConnectionError("Connection reset by peer")

    monkeypatch.setattr(HfApi, "whoami", lambda self: {"name": "someone"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(HfApi, "create_commit", refuse)
    with pytest.raises(ValueError, match=rf"^Uploading to someone/a2mim failed \(ConnectionError: Connection reset by "
                                         rf"peer\); the output in {out} is complete\. Upload "
                                         rf"it later with: hf upload someone/a2mim {out} --include README.md "):
        run_pretraining.main([*args, "--hub_model_id", "someone/a2mim", "--hub_token", "hf_test"])
    assert {"model.safetensors", "config.json", "README.md", "reconstructions.png"} <= {p.name for p in out.iterdir()}


def test_empty_dataset_error_from_the_command_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_pretraining.py"), "--output_dir", str(tmp_path / "out"), "--train_dir",
         str(tmp_path / "empty"), "--max_steps", "2", "--use_cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "run_pretraining.py: error: The data source has no examples" in result.stderr
    assert "Traceback" not in result.stderr


def test_stock_encoder_initializes_the_a2mim_encoder(tmp_path):
    for preset in ("vit-micro", "resnet-micro"):
        source, _ = build_pretraining_model(preset)
        source.save_encoder(tmp_path / preset)
        model, description = build_pretraining_model(model_name_or_path=str(tmp_path / preset),
                                                     config_overrides="mask_ratio=0.5")
        assert model.config.mask_ratio == 0.5 and "encoder from" in description
        # The export's own size and preset, not the family's 224 px seed preset.
        assert (model.config.image_size, model.config.preset) == (source.config.image_size, preset)
        assert f"recipe of preset {preset} (the encoder has its architecture)" in description
        expected = source.a2mim.encoder.state_dict()
        for name, tensor in model.a2mim.encoder.state_dict().items():
            assert torch.equal(tensor, expected[name]), name


def test_continued_pretraining_from_an_exported_resnet_keeps_its_size_and_says_which_recipe(tmp_path, caplog):
    source, _ = build_pretraining_model("resnet-micro")
    source.save_encoder(tmp_path / "export")
    out = tmp_path / "out"
    with caplog.at_level("INFO"):
        run_pretraining.main(["--output_dir", str(out), "--model_name_or_path", str(tmp_path / "export"),
                              "--max_steps", "1", "--max_train_samples", "4", "--per_device_train_batch_size", "4",
                              "--save_strategy", "no", "--report_to", "none", *FAST])
    assert ("with the A2MIM settings and recipe of preset resnet-micro (the encoder has its architecture) at 64 px "
            "(preprocessor_config.json)") in caplog.text
    assert json.loads((out / "preprocessor_config.json").read_text())["size"]["height"] == 64
    assert json.loads((out / "config.json").read_text())["image_size"] == 64


SAMPLE_LOG_SCRIPT = str(ROOT / "tests" / "sample_log.py")  # runs run_pretraining.py, logging each step's sample ids


def test_two_process_streaming_each_sample_once_per_epoch(tmp_path):
    parquet = write_parquet(tmp_path / "train.parquet", count=24, size=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 24 samples, 2 ranks x 4 per device = 8 per step: epoch 0 is steps 0-2, epoch 1 steps 3-5.
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         SAMPLE_LOG_SCRIPT, str(tmp_path / "ids"), "--output_dir", str(tmp_path / "out"), "--model_preset", "vit-micro",
         "--data_files", str(parquet), "--streaming", "--shuffle_buffer_size", "24", "--max_steps", "6",
         "--per_device_train_batch_size", "4", "--save_strategy", "no", "--report_to", "none", *FAST],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logged = sample_log.read(tmp_path / "ids")
    assert sorted(logged) == [0, 1] and sorted(logged[0]) == sorted(logged[1]) == list(range(6))
    epochs = []
    for steps in (range(0, 3), range(3, 6)):
        rank_ids = [[i for step in steps for i in logged[rank][step]] for rank in (0, 1)]
        assert not set(rank_ids[0]) & set(rank_ids[1])  # the ranks trained on different samples
        assert sorted(rank_ids[0] + rank_ids[1]) == list(range(24))  # every sample exactly once per epoch
        epochs.append(rank_ids[0] + rank_ids[1])
    assert epochs[0] != epochs[1]  # reshuffled between epochs
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == 6


KILL_AT_SAVE = """
import os, signal, sys
sys.path.insert(0, {root!r})
from transformers import TrainerCallback
import run_pretraining
from tests import sample_log

sample_log.install({sample_log!r})

class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)

run_pretraining.main(sys.argv[1:], callbacks=[KillAfterSave()])
"""


def run_script(out: Path, args: list[str], sample_log_dir: Path) -> str:
    """Run run_pretraining.py to the end, logging each step's sample ids into `sample_log_dir`; returns its logs."""
    result = subprocess.run([sys.executable, SAMPLE_LOG_SCRIPT, str(sample_log_dir), "--output_dir", str(out), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def kill_after_checkpoint(out: Path, args: list[str], sample_log_dir: Path, step: int) -> None:
    """Run run_pretraining.py and SIGKILL it right after it saved `checkpoint-{step}`."""
    code = KILL_AT_SAVE.format(root=str(ROOT), step=step, sample_log=str(sample_log_dir))
    killed = subprocess.run([sys.executable, "-c", code, "--output_dir", str(out), *args], capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (out / "model.safetensors").exists() and (out / f"checkpoint-{step}" / "trainer_state.json").exists()


def test_kill_and_resume_reaches_the_same_step_with_the_same_data(tmp_path):
    parquet = write_parquet(tmp_path / "train.parquet", count=40, size=32)
    args = ["--model_preset", "vit-micro", "--data_files", str(parquet), "--max_steps", "6",
            "--per_device_train_batch_size", "4", "--save_steps", "2", "--report_to", "none", *FAST]
    out = tmp_path / "out"
    kill_after_checkpoint(out, args, tmp_path / "ids", step=4)
    (out / "checkpoint-5").mkdir()  # what a kill during a save leaves: a checkpoint without trainer_state.json
    (out / "checkpoint-5" / "config.json").write_text("{")
    logs = run_script(out, args, tmp_path / "ids")
    assert f"Resuming from {out / 'checkpoint-4'}" in logs and "missing keys" not in logs
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6

    logged = sample_log.read(tmp_path / "ids")[0]
    assert sorted(logged) == list(range(6))  # steps 0-3 before the kill (then 4 again, lost), 4-5 after resuming
    # The resumed run continued the epoch's permutation instead of restarting from its first batch: the 6 batches
    # of one epoch over 40 samples are 24 distinct samples.
    assert len({i for ids in logged.values() for i in ids}) == 24


def test_streaming_kill_and_resume_trains_the_samples_of_an_uninterrupted_run(tmp_path, monkeypatch):
    parquet = write_parquet(tmp_path / "train.parquet", count=12, size=32)
    # 12 samples / 4 per step: the streamed pass 0 is steps 0-2, pass 1 steps 3-5. The kill after checkpoint-5 lies
    # inside pass 1, so the resumed run must skip all of pass 0 and the first 2 batches of pass 1.
    args = ["--model_preset", "vit-micro", "--data_files", str(parquet), "--streaming", "--shuffle_buffer_size", "8",
            "--max_steps", "6", "--per_device_train_batch_size", "4", "--save_steps", "5", "--report_to", "none",
            *FAST]
    sample_log.install(tmp_path / "uninterrupted_ids", monkeypatch.setattr)
    run_pretraining.main(["--output_dir", str(tmp_path / "uninterrupted"), *args])
    expected = sample_log.read(tmp_path / "uninterrupted_ids")[0]
    assert sorted(expected) == list(range(6))
    for steps in (range(0, 3), range(3, 6)):
        assert sorted(i for step in steps for i in expected[step]) == list(range(12))  # each sample once per pass

    out = tmp_path / "out"
    kill_after_checkpoint(out, args, tmp_path / "ids", step=5)
    logs = run_script(out, args, tmp_path / "ids")
    assert f"Resuming from {out / 'checkpoint-5'}" in logs
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    logged = sample_log.read(tmp_path / "ids")[0]  # steps 0-5 before the kill (5 lost with it), then 5 again
    assert logged == expected
