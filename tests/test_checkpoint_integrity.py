"""Issue 22.3 and 22.7: a checkpoint counts as complete only when every file a resume reads is whole, and a full disk
stops a run with one line while the newest complete checkpoint stays the one a rerun resumes from."""

import errno
import json
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from unittest import mock

import pytest

import run_pretraining
from modeling_a2mim.training.checkpoints import last_complete_checkpoint, resolve_resume_checkpoint

ARGS = ["--model_preset", "vit-micro", "--max_train_samples", "16", "--per_device_train_batch_size", "4",
        "--save_steps", "2", "--use_cpu", "--report_to", "none", "--dataloader_num_workers", "0",
        "--logging_steps", "1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 4-step run with checkpoint-2 and checkpoint-4."""
    out = tmp_path_factory.mktemp("run") / "out"
    run_pretraining.main(["--output_dir", str(out), "--max_steps", "4", *ARGS])
    return out


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name, problem", [
    ("model.safetensors", "model.safetensors has {} bytes where its header announces"),
    ("optimizer.pt", "optimizer.pt is not a whole torch archive"),
    ("scheduler.pt", "scheduler.pt is not a whole torch archive"),
    ("rng_state.pth", "rng_state.pth is not a whole torch archive"),
    ("trainer_state.json", "trainer_state.json is not valid JSON"),
])
def test_a_cut_file_makes_the_checkpoint_incomplete_and_the_warning_names_it(finished_run, tmp_path, caplog, name,
                                                                              problem):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    cut(out / "checkpoint-4" / name)
    with caplog.at_level(logging.WARNING, logger="modeling_a2mim.training.checkpoints"):
        assert last_complete_checkpoint(str(out)) == str(out / "checkpoint-2")
    size = (out / "checkpoint-4" / name).stat().st_size
    assert f"Ignoring {out / 'checkpoint-4'}: {problem.format(size)}" in caplog.text
    with pytest.raises(ValueError, match=rf"checkpoint-4 is not a complete checkpoint \({name}"):
        resolve_resume_checkpoint(str(out / "checkpoint-4"), str(out))


def test_a_rerun_resumes_from_the_last_whole_checkpoint(finished_run, tmp_path, caplog):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    cut(out / "checkpoint-4" / "optimizer.pt")
    with caplog.at_level(logging.WARNING):
        metrics = run_pretraining.main(["--output_dir", str(out), "--max_steps", "6", *ARGS])
    assert f"Resuming from {out / 'checkpoint-2'}" in caplog.text
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6 and metrics["final_loss"] > 0


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (the vit-micro weights alone are larger), or `None` where this machine cannot mount one."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stops_with_one_line_and_the_last_complete_checkpoint_stays(small_disk, tmp_path):
    if small_disk is None:  # no tmpfs here: the safetensors writer says what it says on a full disk
        out = tmp_path / "out"
        from safetensors import SafetensorError

        full = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        writer = mock.patch("transformers.modeling_utils.safe_save_file", side_effect=full)
    else:
        out = small_disk / "out"
        writer = mock.patch.dict(os.environ, {})
    with writer, pytest.raises(ValueError) as error:
        run_pretraining.main(["--output_dir", str(out), "--max_steps", "4", *ARGS])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"The disk holding --output_dir {out} is full (")
    assert "MiB free) while saving; a save needs about" in message and "rerun the same command" in message
    if small_disk is not None:  # the checkpoint the full disk cut is not trusted
        with pytest.raises(ValueError, match=r"is incomplete \(checkpoint-2: "):
            last_complete_checkpoint(str(out))


def test_other_errors_during_a_save_keep_their_traceback(tmp_path):
    failure = OSError(errno.EACCES, "Permission denied")
    writer = mock.patch("transformers.modeling_utils.safe_save_file", side_effect=failure)
    with writer, pytest.raises(OSError) as error:
        run_pretraining.main(["--output_dir", str(tmp_path / "out"), "--max_steps", "2", *ARGS])
    assert error.value is failure
