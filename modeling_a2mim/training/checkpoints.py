"""Finding the checkpoint to resume from, skipping any that a kill or a full disk left incomplete."""

import json
import logging
import os
import re
import struct
import zipfile

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


# Files a resume reads with torch.load: zip archives (optimizer.pt, scheduler.pt, rng_state*.pth, training_args.bin).
TORCH_ARCHIVE_SUFFIXES = (".pt", ".pth", ".bin")


def _safetensors_problem(path: str) -> str | None:
    """Why a safetensors file is unreadable (its header, or a size other than the header announces), else `None`."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return "has no safetensors header"
        (header_size,) = struct.unpack("<Q", prefix)
        if 8 + header_size > size:
            return "is cut inside its safetensors header"
        try:
            header = json.loads(handle.read(header_size))
            end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"),
                      default=0)
        except (ValueError, TypeError, KeyError, IndexError):
            return "has an unreadable safetensors header"
    if size != 8 + header_size + end:
        return f"has {size} bytes where its header announces {8 + header_size + end} (cut while it was written)"
    return None


def _file_problem(path: str) -> str | None:
    name = os.path.basename(path)
    try:
        if name.endswith(".json"):
            with open(path) as handle:
                json.load(handle)
        elif name.endswith(".safetensors"):
            return _safetensors_problem(path)
        elif name.endswith(TORCH_ARCHIVE_SUFFIXES):
            with zipfile.ZipFile(path) as archive:
                size = os.path.getsize(path)
                if any(info.header_offset + info.compress_size > size for info in archive.infolist()):
                    return "is a cut torch archive"
    except zipfile.BadZipFile:
        return "is not a whole torch archive (cut while it was written)"
    except ValueError:
        return "is not valid JSON"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    return None


def checkpoint_problem(path: str) -> str | None:
    """Why checkpoint folder `path` cannot be resumed from, naming the file, or `None` when it is complete.

    Trainer writes `trainer_state.json` last, after the weights, optimizer, scheduler and RNG states, so a kill leaves
    a folder without it; a full disk or a kill inside the filesystem's write-back can also leave any file cut short.
    So every file a resume reads is checked: each JSON file parses, each safetensors file has a readable header and
    exactly the size it announces, each torch archive (optimizer, scheduler, RNG states, training arguments) is a whole
    zip archive.
    """
    if not os.path.isfile(os.path.join(path, "trainer_state.json")):
        return "trainer_state.json is missing (the run was stopped while saving)"
    for name in sorted(os.listdir(path)):
        problem = _file_problem(os.path.join(path, name))
        if problem:
            return f"{name} {problem}"
    return None


def is_complete_checkpoint(path: str) -> bool:
    """Whether `path` is a checkpoint a resume can read (`checkpoint_problem` finds nothing)."""
    return checkpoint_problem(path) is None


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
    problems = []
    for path in folders:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("Ignoring %s: %s.", path, problem)
        problems.append(f"{os.path.basename(path)}: {problem}")
    if folders:
        raise ValueError(
            f"Every checkpoint in {output_dir} is incomplete ({'; '.join(problems)}): pass --resume_from_checkpoint "
            f"with a complete checkpoint folder, or --resume_from_checkpoint {START_OVER} to start over."
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
        problem = checkpoint_problem(resume_from_checkpoint) if os.path.isdir(resume_from_checkpoint) else \
            "no such folder"
        if problem:
            raise ValueError(
                f"--resume_from_checkpoint {resume_from_checkpoint} is not a complete checkpoint ({problem}); pass "
                "another checkpoint-N folder or 'last'."
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
