"""Stopping a diverged run (NaN / inf gradients) with one clear line, before it writes a non-finite model."""

import logging
import os
import shutil

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .checkpoints import checkpoint_folders, is_complete_checkpoint

logger = logging.getLogger(__name__)

# Under fp16 the loss scaler halves its scale at every overflow and skips that step; this many skipped steps in a row
# (a scale divided by 2**25, from 65536 to below 0.002) means the loss itself is not finite any more.
MAX_CONSECUTIVE_SKIPPED_STEPS = 25


def all_finite(tensors) -> bool:
    """Whether every floating-point tensor of `tensors` holds only finite values."""
    tensors = [tensor for tensor in tensors if tensor is not None and tensor.is_floating_point()]
    return not tensors or bool(torch.stack([torch.isfinite(tensor).all() for tensor in tensors]).all())


def last_checkpoint_before(output_dir: str, step: int) -> str | None:
    """The newest complete `checkpoint-N` of `output_dir` with `N < step`."""
    for path in checkpoint_folders(output_dir):
        if int(path.rsplit("-", 1)[1]) < step and is_complete_checkpoint(path):
            return path
    return None


def divergence_message(args, step: int, what: str) -> str:
    """The one-line error of a run that diverged at `step`: where it stopped, what is kept, what to change."""
    checkpoint = last_checkpoint_before(args.output_dir, step)
    kept = (f"the last finite checkpoint is {checkpoint} (a rerun resumes from it)" if checkpoint
            else "no checkpoint was saved before it")
    fixes = [f"lower --learning_rate (now {args.learning_rate:g})", "add warmup (--warmup_steps)"]
    if args.fp16:
        fixes.append("use --bf16 instead of --fp16")
    if not args.max_grad_norm:
        fixes.append("clip gradients (--max_grad_norm 1.0)")
    return (f"Training diverged at step {step}: {what}, so the run stopped without writing a final model; {kept}. "
            f"To fix it, {', '.join(fixes[:-1])} or {fixes[-1]}.")


class DivergenceCallback(TrainerCallback):
    """Stops training with a `ValueError` (one line through the scripts' `run_main`) when it diverges.

    - Before every optimizer step the gradients are checked: a non-finite one (a NaN / inf loss, or an overflow) stops
      the run before that update, so the weights in memory and every checkpoint written so far stay finite. Trainer
      would log such a step's loss through its NaN filter (`'loss': 0`) and train on.
    - Under fp16 with a loss scaler, overflowing steps are normal: the scaler skips them. They are counted (logged at
      the end of training); only `MAX_CONSECUTIVE_SKIPPED_STEPS` skipped steps in a row count as divergence.
    - After every save and at the end of training the weights and buffers are checked (e.g. BatchNorm statistics of a
      non-finite forward): a checkpoint holding non-finite values is deleted and the run stops.
    """

    def __init__(self, max_consecutive_skipped_steps: int = MAX_CONSECUTIVE_SKIPPED_STEPS):
        self.max_consecutive_skipped_steps = max_consecutive_skipped_steps
        self.skipped_steps = 0
        self.consecutive_skipped_steps = 0

    @staticmethod
    def _scales_loss(optimizer) -> bool:
        return getattr(optimizer, "scaler", None) is not None  # accelerate's optimizer under fp16

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None or self._scales_loss(optimizer):
            return
        if not all_finite(parameter.grad for parameter in model.parameters()):
            raise ValueError(divergence_message(args, state.global_step + 1, "the gradients are not finite (NaN/inf)"))

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if not self._scales_loss(optimizer):
            return
        if not getattr(optimizer, "step_was_skipped", False):
            self.consecutive_skipped_steps = 0
            return
        self.skipped_steps += 1
        self.consecutive_skipped_steps += 1
        if self.consecutive_skipped_steps >= self.max_consecutive_skipped_steps:
            raise ValueError(divergence_message(
                args, state.global_step + 1,
                f"the fp16 loss scaler skipped {self.consecutive_skipped_steps} steps in a row (gradients not finite)",
            ))

    def _check_weights(self, args, state, model, checkpoint: str | None = None) -> None:
        if model is None or all_finite(model.state_dict().values()):
            return
        if checkpoint is not None and args.should_save and os.path.isdir(checkpoint):
            shutil.rmtree(checkpoint)
        raise ValueError(divergence_message(args, state.global_step, "the weights are not finite (NaN/inf)"))

    def on_save(self, args, state, control, model=None, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        self._check_weights(args, state, model, checkpoint)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._check_weights(args, state, model)
        if self.skipped_steps and state.is_world_process_zero:
            logger.warning("The fp16 loss scaler skipped %d of %d steps (gradient overflow; normal while it finds its "
                           "scale).", self.skipped_steps, state.global_step)
