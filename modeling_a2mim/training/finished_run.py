"""A rerun of a finished run trains nothing and leaves its outputs as they are; `claim_output_dir` is how every
training script starts: the output folder locked, a finished run recognized."""

import json
import logging
import os

from .checkpoints import checkpoint_folders, is_complete_checkpoint
from .output_lock import OutputDirLock, lock_output_dir

logger = logging.getLogger(__name__)

WEIGHTS_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def finished_run_results(training_args) -> dict | None:
    """The results (`all_results.json`) of the finished run in `--output_dir` when this command asks for nothing more,
    else `None` (then train, or resume, as usual).

    A run is finished when its final save is complete (`trainer_state.json`, weights and model card in the output
    folder, no newer checkpoint) and its `global_step` reaches `--max_steps` (or its epoch `--num_train_epochs`). It
    says so in one log line. An explicit `--resume_from_checkpoint PATH` or `none` is always obeyed. A run killed after
    its last checkpoint but before its final save is not finished: it resumes from that checkpoint and only writes the
    final outputs (`A2MIMTrainer.get_batch_samples`).
    """
    output_dir = training_args.output_dir
    request = (training_args.resume_from_checkpoint or "").lower()
    if request not in ("", "last", "true"):  # a checkpoint path, or START_OVER
        return None
    state = _read_json(os.path.join(output_dir, "trainer_state.json"))
    has_weights = any(os.path.isfile(os.path.join(output_dir, name)) for name in WEIGHTS_NAMES)
    if state is None or not has_weights or not os.path.isfile(os.path.join(output_dir, "README.md")):
        return None
    step = state.get("global_step", 0)
    newer = [path for path in checkpoint_folders(output_dir)
             if int(path.rsplit("-", 1)[1]) > step and is_complete_checkpoint(path)]
    if newer:
        return None
    if training_args.max_steps > 0:
        done, length = step >= training_args.max_steps, f"--max_steps {training_args.max_steps}"
    else:
        epochs = training_args.num_train_epochs
        done, length = (state.get("epoch") or 0) + 1e-9 >= epochs, f"--num_train_epochs {epochs:g}"
    if not done:
        return None
    logger.warning(
        f"The run in {output_dir} is complete (step {step} of {length}): nothing to train, its final model and files "
        "are left as they are. To train longer, rerun with a larger --max_steps or --num_train_epochs (it resumes "
        "from the last checkpoint on the new schedule)."
    )
    return _read_json(os.path.join(output_dir, "all_results.json")) or {}


def claim_output_dir(training_args, train: bool = True) -> tuple[OutputDirLock | None, dict | None]:
    """`(lock, finished)`: lock `--output_dir` for this run (`lock_output_dir`: a one-line `ValueError` when another
    live run holds it; `None` on the other ranks) and, when this run trains (`train`), the results of the finished run
    already there (`finished_run_results`; the lock is then released: the script has nothing to do and returns).

    Call it once the recipe has filled `--max_steps` / `--num_train_epochs`: a run is finished against them.
    """
    lock = lock_output_dir(training_args.output_dir, training_args.process_index == 0)
    finished = finished_run_results(training_args) if train else None
    if finished is not None and lock is not None:
        lock.release()
    return lock, finished
