"""Trainer callbacks shared by the scripts."""

import logging
import math

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback

from ..data import SkippedImageCounter
from .optimization import base_learning_rate

logger = logging.getLogger(__name__)


class SkippedImagesCallback(TrainerCallback):
    """Warns once at the end of training when any unreadable image was skipped. (`A2MIMTrainer(skipped_images=...)`
    registers it, and adds the count to every log entry itself.)"""

    def __init__(self, counter: SkippedImageCounter):
        self.counter = counter

    def on_train_end(self, args, state, control, **kwargs):
        if self.counter.value and state.is_world_process_zero:
            print(f"Skipped {self.counter.value} unreadable image(s) during training (see the warnings above).")


class ResumedScheduleCallback(TrainerCallback):
    """A resumed run trains its first step at the learning rate of the schedule it runs now.

    Trainer restores the checkpoint's optimizer, whose learning rates are where the checkpoint's schedule had brought
    them, and the scheduler's step count; the schedule itself is rebuilt for this run's length. When a finished run is
    extended (a larger `--max_steps` or more epochs), the first resumed step would train at the old schedule's last
    value (0 at the end of a cosine) before the new schedule takes over at the second. This callback sets every
    group's learning rate to the new schedule's value at the resumed step before that first step, and logs it.
    """

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
        if state.global_step == 0 or optimizer is None or not isinstance(scheduler, LambdaLR):
            return
        scheduled = [base * factor(scheduler.last_epoch)
                     for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        restored = [group["lr"] for group in optimizer.param_groups]
        if all(math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-15) for old, new in zip(restored, scheduled)):
            return
        for group, learning_rate in zip(optimizer.param_groups, scheduled):
            group["lr"] = learning_rate
        logger.warning(
            "Resumed at step %d of a %d-step schedule: learning rate %.4g from this step on (the checkpoint's "
            "schedule had reached %.4g).", state.global_step, state.max_steps,
            base_learning_rate(optimizer, scheduled[0]), base_learning_rate(optimizer, restored[0]),
        )
