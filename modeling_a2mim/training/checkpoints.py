"""Finding the checkpoint to resume from, skipping any that a kill left incomplete."""

import json
import logging
import os
import re

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def is_complete_checkpoint(path: str) -> bool:
    """Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG states); a checkpoint is
    complete when that file exists and parses."""
    try:
        with open(os.path.join(path, "trainer_state.json")) as handle:
            json.load(handle)
        return True
    except (OSError, ValueError):
        return False


START_OVER = "none"  # --resume_from_checkpoint none: train from the start even if checkpoints exist


def checkpoint_folders(output_dir: str) -> list[str]:
    """The `checkpoint-N` folders in `output_dir`, newest (highest N) first."""
    if not os.path.isdir(output_dir):
        return []
    steps = sorted(
        ((int(match.group(1)), name) for name in os.listdir(output_dir)
         if (match := CHECKPOINT_PATTERN.match(name)) and os.path.isdir(os.path.join(output_dir, name))),
        reverse=True,
    )
    return [os.path.join(output_dir, name) for _, name in steps]


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest complete `checkpoint-N` in `output_dir` (incomplete ones are reported and skipped), or `None` when
    there is no checkpoint. A `ValueError` when there are checkpoints but none is complete: starting over would
    silently throw their training away."""
    folders = checkpoint_folders(output_dir)
    for path in folders:
        if is_complete_checkpoint(path):
            return path
        logger.warning("Ignoring %s: it has no readable trainer_state.json (the run was killed while saving it).", path)
    if folders:
        raise ValueError(
            f"Every checkpoint in {output_dir} is incomplete (no readable trainer_state.json in "
            f"{', '.join(os.path.basename(path) for path in folders)}): pass --resume_from_checkpoint with a complete "
            f"checkpoint folder, or --resume_from_checkpoint {START_OVER} to start over."
        )
    return None


def resolve_resume_checkpoint(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from, logged as "Resuming from PATH": an explicit path (must be complete),
    `"last"`/`"true"` or nothing for the newest complete checkpoint in `output_dir` (`None` when there is none and
    nothing was asked for), `"none"` to start over whatever `output_dir` holds."""
    request = (resume_from_checkpoint or "").lower()
    if request == START_OVER:
        return None
    if resume_from_checkpoint and request not in ("last", "true"):
        if not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"--resume_from_checkpoint {resume_from_checkpoint} is not a complete checkpoint (no readable "
                "trainer_state.json); pass another checkpoint-N folder or 'last'."
            )
        found = resume_from_checkpoint
    else:
        found = last_complete_checkpoint(output_dir)
        if found is None and resume_from_checkpoint:
            raise ValueError(f"--resume_from_checkpoint {resume_from_checkpoint}: no complete checkpoint in "
                             f"{output_dir}.")
    if found:
        logger.warning("Resuming from %s", found)
    return found
