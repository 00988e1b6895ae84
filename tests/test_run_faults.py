"""Runs that go wrong (issue 22): a finished run stays finished (in every training script), a diverged run is an
error, logs give the base learning rate, two runs cannot share an output folder (in every training script), a resumed
run reproduces the uninterrupted one."""

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

import run_finetuning
import run_object_detection
import run_pretraining
import run_semantic_segmentation
from modeling_a2mim import BlockMaskGenerator
from modeling_a2mim.data.collator import MaskingCollator
from modeling_a2mim.data.sample_positions import SAMPLE_POSITION_KEY, with_sample_positions
from modeling_a2mim.data.transforms import PretrainingTransform
from modeling_a2mim.training.cli import run_main
from modeling_a2mim.training.divergence import DivergenceCallback

from .pretraining_data import textured_image, write_parquet
from .resume_pair import RESUME_STEP, run_pair

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--use_cpu", "--dataloader_num_workers", "0", "--logging_steps", "1", "--seed", "0", "--report_to", "none"]
PAIR = ["--model_preset", "vit-micro", "--max_steps", "8", "--per_device_train_batch_size", "2", "--save_steps", "2",
        *FAST]


def logged_losses(output_dir: Path) -> dict[int, float]:
    """`{step: loss}` of the Trainer log history in `output_dir/trainer_state.json`."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def assert_resumed_like_uninterrupted(folder: Path) -> None:
    uninterrupted, resumed = logged_losses(folder / "uninterrupted"), logged_losses(folder / "resumed")
    assert sorted(uninterrupted) == sorted(resumed) == list(range(1, 9))
    # Steps 7-8 were trained again after resuming from checkpoint-6 (steps 1-6 come from its log history).
    for step in range(RESUME_STEP + 1, 9):
        assert resumed[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-7), step


def test_a_sample_s_mask_and_crop_depend_on_the_seed_and_its_position_only(monkeypatch):
    dataset = with_sample_positions([{"image": textured_image(i, 40)} for i in range(6)])
    collator = MaskingCollator(BlockMaskGenerator(32, 8, 0.6), PretrainingTransform(32), seed=3)
    batch = collator([dataset[i] for i in range(6)])
    assert dataset[4][SAMPLE_POSITION_KEY] == (0, 4)
    # Sample 4 alone, in another process (rank 1), after other draws: the same mask and crop.
    monkeypatch.setenv("RANK", "1")
    torch.rand(5)
    alone = MaskingCollator(BlockMaskGenerator(32, 8, 0.6), PretrainingTransform(32), seed=3)([dataset[4]])
    assert torch.equal(alone["bool_masked_pos"][0], batch["bool_masked_pos"][4])
    assert torch.equal(alone["pixel_values"][0], batch["pixel_values"][4])
    dataset.set_epoch(1)  # another epoch: new draws
    next_epoch = collator([dataset[i] for i in range(6)])["bool_masked_pos"]
    assert not torch.equal(next_epoch, batch["bool_masked_pos"])
    assert len({tuple(mask.flatten().tolist()) for mask in batch["bool_masked_pos"]}) == 6  # distinct per sample


# Map-style, 14 samples: 7 steps per epoch, so the resumed run skips 6 batches, then crosses into epoch 1. Streamed, 10
# samples: 5 steps per pass, so the resumed run re-reads pass 1 and skips its first batch.
@pytest.mark.parametrize("streamed, count", [(False, 14), (True, 10)], ids=["map-style", "streamed"])
def test_a_resumed_run_logs_the_losses_of_the_uninterrupted_run(tmp_path, streamed, count):
    parquet = write_parquet(tmp_path / "train.parquet", count=count, size=32)
    data = ["--data_files", str(parquet)] + (["--streaming", "--shuffle_buffer_size", "8"] if streamed else [])
    run_pair(tmp_path, [*PAIR, *data])
    assert_resumed_like_uninterrupted(tmp_path)


# Map-style, 14 samples over 2 processes: 4 steps per epoch, so the resumed run skips the first 2 batches of epoch 1.
# Streamed, 20 samples at a global batch of 4: 5 steps per pass, so the resumed run re-reads pass 1 and skips 1 batch.
@pytest.mark.parametrize("streamed, count", [(False, 14), (True, 20)], ids=["map-style", "streamed"])
def test_a_resumed_two_process_run_logs_the_losses_of_the_uninterrupted_run(tmp_path, streamed, count):
    parquet = write_parquet(tmp_path / "train.parquet", count=count, size=32)
    data = ["--data_files", str(parquet)] + (["--streaming", "--shuffle_buffer_size", "8"] if streamed else [])
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         str(ROOT / "tests" / "resume_pair.py"), str(tmp_path), *PAIR, *data],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_resumed_like_uninterrupted(tmp_path)


def folder_digest(folder: Path) -> dict[str, str]:
    """`{relative path: sha256}` of every file under `folder`."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


SIX_STEPS = ["--model_preset", "vit-micro", "--max_steps", "6", "--save_steps", "2", "--max_train_samples", "40",
             "--per_device_train_batch_size", "4", *FAST]


def test_a_finished_run_stays_finished_and_a_run_killed_before_its_final_save_only_finishes(tmp_path, caplog):
    out = tmp_path / "out"
    first = run_pretraining.main(["--output_dir", str(out), *SIX_STEPS])
    before = folder_digest(out)
    for _ in range(2):
        with caplog.at_level(logging.WARNING):
            again = run_pretraining.main(["--output_dir", str(out), *SIX_STEPS])
        assert again == json.loads((out / "all_results.json").read_text())
        assert again["final_loss"] == first["final_loss"]
        assert folder_digest(out) == before  # nothing trained, nothing written: checkpoint-7 used to appear
    assert f"The run in {out} is complete (step 6 of --max_steps 6): nothing to train" in caplog.text

    # Killed after checkpoint-6 (its last step), before the final save: the rerun writes the final outputs only.
    killed = tmp_path / "killed"
    shutil.copytree(out / "checkpoint-6", killed / "checkpoint-6")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        finished = run_pretraining.main(["--output_dir", str(killed), *SIX_STEPS])
    assert "The checkpoint is at the run's last step (6 of 6): training nothing" in caplog.text
    assert sorted(path.name for path in killed.glob("checkpoint-*")) == ["checkpoint-6"]
    assert json.loads((killed / "trainer_state.json").read_text())["global_step"] == 6
    assert finished["final_loss"] == first["final_loss"] and "train_loss" not in finished
    expected, saved = load_file(out / "model.safetensors"), load_file(killed / "model.safetensors")
    assert expected.keys() == saved.keys() and all(torch.equal(expected[k], saved[k]) for k in expected)


# The scripts that parse sys.argv, each at a tiny size: 3 steps, saving at step 2.
TINY_RUNS = {
    "finetuning": (run_finetuning.main, "run_finetuning.py", [
        "--model_preset", "vit-micro", "--max_train_samples", "16", "--per_device_train_batch_size", "8",
        "--warmup_steps", "0"]),
    "segmentation": (run_semantic_segmentation.main, "run_semantic_segmentation.py", [
        "--model_preset", "resnet-micro", "--crop_size", "32", "--num_train_scenes", "8", "--num_eval_scenes", "4",
        "--scene_size", "32", "--per_device_train_batch_size", "4"]),
    "detection": (run_object_detection.main, "run_object_detection.py", [
        "--model_preset", "resnet-micro", "--image_square_size", "64", "--scene_size", "64", "--num_train_scenes",
        "8", "--num_eval_scenes", "4", "--num_queries", "5", "--d_model", "16", "--encoder_layers", "1",
        "--decoder_layers", "1", "--attention_heads", "2", "--ffn_dim", "32", "--per_device_train_batch_size", "4"]),
}


def run_tiny(script: str, output_dir: Path, *extra: str) -> None:
    main, name, args = TINY_RUNS[script]
    with mock.patch.object(sys, "argv", [name, "--output_dir", str(output_dir), "--do_train", "--max_steps", "3",
                                         "--save_steps", "2", *args, *FAST, *extra]):
        run_main(main, name)


@pytest.mark.parametrize("script", TINY_RUNS)
def test_a_finished_run_of_every_script_stays_finished(tmp_path, script, caplog):
    run_tiny(script, tmp_path)
    before = folder_digest(tmp_path)
    with caplog.at_level(logging.WARNING):
        run_tiny(script, tmp_path)
    assert f"The run in {tmp_path} is complete (step 3 of --max_steps 3): nothing to train" in caplog.text
    assert folder_digest(tmp_path) == before and not (tmp_path / "checkpoint-4").exists()  # the weights included
    assert not (tmp_path / ".a2mim.lock").exists()


def test_a_diverged_run_stops_with_one_line_and_keeps_only_finite_checkpoints(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        run_pretraining.main(["--output_dir", str(out), "--model_preset", "resnet-micro", "--learning_rate", "1e8",
                              "--max_steps", "8", "--save_steps", "2", "--max_train_samples", "16",
                              "--per_device_train_batch_size", "4", *FAST])
    step = int(re.match(r"Training diverged at step (\d+):", str(error.value)).group(1))
    last = 2 * ((step - 1) // 2)  # the last checkpoint saved before that step
    assert last >= 2 and str(error.value) == (
        f"Training diverged at step {step}: the gradients are not finite (NaN/inf), so the run stopped without "
        f"writing a final model; the last finite checkpoint is {out / f'checkpoint-{last}'} (a rerun resumes from "
        "it). To fix it, lower --learning_rate (now 1e+08), add warmup (--warmup_steps) or clip gradients "
        "(--max_grad_norm 1.0).")
    assert not (out / "model.safetensors").exists() and not (out / "all_results.json").exists()
    assert sorted(int(path.name[11:]) for path in out.glob("checkpoint-*")) == list(range(2, last + 1, 2))
    for path in out.glob("checkpoint-*"):
        assert all(torch.isfinite(t).all() for t in load_file(path / "model.safetensors").values())


def fp16_optimizer(skipped: bool):
    """What accelerate's optimizer shows a callback under fp16: a loss scaler and whether it skipped the step."""
    return types.SimpleNamespace(scaler=object(), step_was_skipped=skipped)


def test_divergence_callback_counts_fp16_skipped_steps_and_refuses_non_finite_weights(tmp_path, caplog):
    args = types.SimpleNamespace(output_dir=str(tmp_path), learning_rate=1e-3, fp16=True, max_grad_norm=1.0,
                                 should_save=True)
    state = types.SimpleNamespace(global_step=10, is_world_process_zero=True)
    model = torch.nn.Linear(2, 2)
    model.weight.grad = torch.full((2, 2), float("inf"))
    callback = DivergenceCallback(max_consecutive_skipped_steps=3)
    callback.on_pre_optimizer_step(args, state, None, model=model, optimizer=fp16_optimizer(True))  # the scaler skips
    for skipped in (True, True, False, True, True):
        callback.on_optimizer_step(args, state, None, optimizer=fp16_optimizer(skipped))
    with pytest.raises(ValueError, match=r"^Training diverged at step 11: the fp16 loss scaler skipped 3 steps in a "
                                         r"row .* use --bf16 instead of --fp16\.$"):
        callback.on_optimizer_step(args, state, None, optimizer=fp16_optimizer(True))
    assert callback.skipped_steps == 5
    with caplog.at_level(logging.WARNING):
        callback.on_train_end(args, state, None, model=model)
    assert "The fp16 loss scaler skipped 5 of 10 steps" in caplog.text

    with pytest.raises(ValueError, match=r"^Training diverged at step 11: the gradients are not finite"):
        DivergenceCallback().on_pre_optimizer_step(args, state, None, model=model, optimizer=object())
    (tmp_path / "checkpoint-10").mkdir()
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"^Training diverged at step 10: the weights are not finite"):
        DivergenceCallback().on_save(args, state, None, model=model)
    assert not (tmp_path / "checkpoint-10").exists()


def test_logs_give_the_base_learning_rate_not_the_mask_token_s(tmp_path):
    run_pretraining.main(["--output_dir", str(tmp_path), "--model_preset", "resnet-micro", "--learning_rate", "1e-3",
                          "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--max_steps", "2",
                          "--save_strategy", "no", "--max_train_samples", "8", "--per_device_train_batch_size", "4",
                          *FAST])
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    assert [entry["learning_rate"] for entry in history if "learning_rate" in entry] == [1e-3, 1e-3]  # was 1e-4


HOLD_LOCK = """
import sys, time
from modeling_a2mim.training.output_lock import lock_output_dir
lock_output_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def another_run_holding(output_dir: Path):
    """A live process holding `output_dir`'s lock (killed at the end); yields its pid."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def in_use_message(output_dir: Path, pid: int) -> str:
    return (rf"--output_dir {output_dir} is in use by another run \(pid {pid} on host .*, since .*\): wait for it to "
            rf"finish, or pass another --output_dir\.$")


def test_a_live_run_holds_its_output_folder_and_a_killed_one_does_not(tmp_path):
    out = tmp_path / "out"
    args = ["--output_dir", str(out), "--max_steps", "1", "--max_train_samples", "4",
            "--per_device_train_batch_size", "4", "--save_strategy", "no", *FAST]
    with another_run_holding(out) as pid, pytest.raises(ValueError, match=f"^{in_use_message(out, pid)}"):
        run_pretraining.main(args)
    assert (out / ".a2mim.lock").exists()  # the killed holder's stale lock file: it blocks nothing
    assert run_pretraining.main(args)["final_loss"] > 0
    assert not (out / ".a2mim.lock").exists()  # a run that ends releases its folder


def test_every_script_refuses_a_folder_held_by_a_live_run_in_one_line(tmp_path):
    with another_run_holding(tmp_path) as pid:
        for script, (_, name, _) in TINY_RUNS.items():
            with pytest.raises(SystemExit) as exit_info:
                run_tiny(script, tmp_path)
            message = str(exit_info.value.code)
            assert re.match(f"^{name}: error: {in_use_message(tmp_path, pid)}", message) and "\n" not in message
    assert not (tmp_path / "model.safetensors").exists()
