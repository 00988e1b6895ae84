"""Test-only: `python tests/resume_pair.py FOLDER ARGS...` (also under torchrun) runs `run_pretraining.py ARGS...` to
the end in `FOLDER/uninterrupted`, then copies its `checkpoint-{RESUME_STEP}` (the state a kill two steps later would
have left to resume from) into `FOLDER/resumed` and runs the same command there, which resumes from it."""

import os
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import run_pretraining  # noqa: E402

RESUME_STEP = 6


def run_pair(folder: Path, args: list[str]) -> None:
    run_pretraining.main(["--output_dir", str(folder / "uninterrupted"), *args])
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_rank() == 0:
        shutil.copytree(folder / "uninterrupted" / f"checkpoint-{RESUME_STEP}",
                        folder / "resumed" / f"checkpoint-{RESUME_STEP}")
    if distributed:
        torch.distributed.barrier()
    run_pretraining.main(["--output_dir", str(folder / "resumed"), *args])
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    run_pair(Path(sys.argv[1]), sys.argv[2:])
