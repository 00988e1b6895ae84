"""Runs that go wrong (issue 22): a resumed run reproduces the uninterrupted one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .pretraining_data import write_parquet
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


# Map-style, 14 samples: 7 steps per epoch, so the resumed run skips 6 batches, then crosses into epoch 1. Streamed, 10
# samples: 5 steps per pass, so the resumed run re-reads pass 1 and skips its first batch.
@pytest.mark.parametrize("streamed, count", [(False, 14), (True, 10)], ids=["map-style", "streamed"])
def test_a_resumed_run_logs_the_losses_of_the_uninterrupted_run(tmp_path, streamed, count):
    parquet = write_parquet(tmp_path / "train.parquet", count=count, size=32)
    data = ["--data_files", str(parquet)] + (["--streaming", "--shuffle_buffer_size", "8"] if streamed else [])
    run_pair(tmp_path, [*PAIR, *data])
    assert_resumed_like_uninterrupted(tmp_path)


def test_a_resumed_two_process_run_logs_the_losses_of_the_uninterrupted_run(tmp_path):
    # 14 samples over 2 processes: 4 steps per epoch, so the resumed run skips the first 2 batches of epoch 1.
    parquet = write_parquet(tmp_path / "train.parquet", count=14, size=32)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         str(ROOT / "tests" / "resume_pair.py"), str(tmp_path), *PAIR, "--data_files", str(parquet)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_resumed_like_uninterrupted(tmp_path)
