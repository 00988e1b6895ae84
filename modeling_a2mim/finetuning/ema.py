"""Exponential moving average of the weights (`torch.optim.swa_utils.AveragedModel`) as a Trainer callback."""

import logging

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class EMACallback(TrainerCallback):
    """Keeps an EMA copy of the model's parameters and buffers, updated after every optimizer step.

    At the end of training the EMA weights are copied into the model, so the final evaluation and the saved
    checkpoint are the EMA model (the BEiT fine-tuning protocol).
    """

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"--ema_decay={decay} must lie in (0, 1), e.g. 0.9999.")
        self.decay = decay
        self.averaged = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.averaged.update_parameters(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            model.load_state_dict(self.averaged.module.state_dict())
        logger.info("Replaced the model's weights by their EMA (decay %s) for evaluation and saving.", self.decay)
