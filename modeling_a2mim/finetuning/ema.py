"""Exponential moving average of the weights (`torch.optim.swa_utils.AveragedModel`) as a Trainer callback."""

import logging
import os

import torch
from safetensors.torch import load_model, save_model
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..training.files import atomic_path

logger = logging.getLogger(__name__)

EMA_WEIGHTS_NAME = "ema.safetensors"


class EMACallback(TrainerCallback):
    """Keeps an EMA copy of the model's parameters and buffers, updated after every optimizer step.

    Every `checkpoint-N` folder gets the EMA state (averaged weights and `n_averaged`) as `ema.safetensors`, and a run
    resumed from `resume_from` continues that average, so a killed and resumed run ends with the same EMA as an
    uninterrupted one. At the end of training the EMA weights are copied into the model, so the final evaluation and
    the saved model are the EMA model (the BEiT fine-tuning protocol).
    """

    def __init__(self, decay: float, resume_from: str | os.PathLike | None = None):
        if not 0 < decay < 1:
            raise ValueError(f"--ema_decay={decay} must lie in (0, 1), e.g. 0.9999.")
        self.decay = decay
        self.resume_from = resume_from
        self.averaged = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        if self.resume_from is None:
            return
        path = os.path.join(self.resume_from, EMA_WEIGHTS_NAME)
        if not os.path.isfile(path):
            logger.warning(
                "%s has no %s (saved before the EMA was checkpointed, or the run was killed while writing it): the "
                "EMA restarts from the resumed weights, so it differs from an uninterrupted run's.",
                self.resume_from, EMA_WEIGHTS_NAME,
            )
            return
        load_model(self.averaged, path)
        logger.info("Resumed the EMA from %s (%d updates so far).", path, self.averaged.n_averaged.item())

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.averaged.update_parameters(model)

    def on_save(self, args, state, control, **kwargs):
        """Writes the EMA state into the checkpoint Trainer has just saved (`output_dir/checkpoint-{global_step}`)."""
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if args.should_save and os.path.isdir(checkpoint):
            with atomic_path(os.path.join(checkpoint, EMA_WEIGHTS_NAME)) as temporary:
                save_model(self.averaged, temporary)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            model.load_state_dict(self.averaged.module.state_dict())
        logger.info("Replaced the model's weights by their EMA (decay %s) for evaluation and saving.", self.decay)
