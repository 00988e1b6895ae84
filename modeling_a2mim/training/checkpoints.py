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


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest complete `checkpoint-N` in `output_dir` (incomplete ones are reported and skipped), or `None`."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(match.group(1)), name) for name in os.listdir(output_dir)
        if (match := CHECKPOINT_PATTERN.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    )
    for _, name in reversed(steps):
        path = os.path.join(output_dir, name)
        if is_complete_checkpoint(path):
            return path
        logger.warning("Ignoring %s: it has no readable trainer_state.json (the run was killed while saving it).", path)
    return None


def resolve_resume_checkpoint(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from: an explicit path (must be complete), `"last"`/`"true"` or nothing for the newest
    complete checkpoint in `output_dir` (`None` when there is none and nothing was asked for)."""
    if resume_from_checkpoint and resume_from_checkpoint.lower() not in ("last", "true"):
        if not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"--resume_from_checkpoint {resume_from_checkpoint} is not a complete checkpoint (no readable "
                "trainer_state.json); pass another checkpoint-N folder or 'last'."
            )
        return resume_from_checkpoint
    found = last_complete_checkpoint(output_dir)
    if found is None and resume_from_checkpoint:
        raise ValueError(f"--resume_from_checkpoint {resume_from_checkpoint}: no complete checkpoint in {output_dir}.")
    return found
