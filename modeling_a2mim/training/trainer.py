"""`A2MIMTrainer`: the `Trainer` both scripts use, with the recipes' parameter groups, schedules and resume rules."""

from collections.abc import Callable

import torch
from transformers import SchedulerType, get_scheduler
from transformers.trainer_utils import has_length
from transformers.utils import logging

from ..data import SkippedImageCounter
from .callbacks import ResumedScheduleCallback, SkippedImagesCallback
from .divergence import DivergenceCallback
from .files import reporting_a_full_disk
from .optimization import NO_DECAY_NAME_PARTS, base_learning_rate, build_parameter_groups, get_warmup_step_schedule
from .stream_position import StreamPositionCallback
from .trainer_compat import TrainerCompat

logger = logging.get_logger(__name__)


class A2MIMTrainer(TrainerCompat):
    """`Trainer` with the recipes' parameter groups and optional step schedule.

    Args (besides `Trainer`'s):
        lr_multiplier: `name -> multiplier` for each parameter's learning rate (mask token x0.1 for ResNet,
            layer-wise decay for fine-tuning); `None` keeps every multiplier at 1.
        no_decay_name_parts: name parts of the parameters without weight decay besides norms and biases (the
            pretraining recipe's `no_weight_decay`; default `NO_DECAY_NAME_PARTS`).
        step_decay_at: when set, the schedule is warmup + constant + x0.1 at this fraction of training instead of
            `--lr_scheduler_type`.
        skipped_images: the counter of unreadable images the collators dropped; every log entry (console,
            TensorBoard, the train and eval metrics) gets its value as `skipped_images`, and the end of training warns
            when it is not 0.
        eval_data_collator: collates the evaluation batches instead of `data_collator` (for pretraining: a
            `MaskingCollator` with the center-crop transform and `fixed_masks=True`, restarted before every
            evaluation, so that eval losses of different steps are measured on the same crops and masks).

    A resumed run trains at the current schedule's learning rate from its first step (`ResumedScheduleCallback`), so a
    finished run extended with a larger `--max_steps` continues on the new schedule. A streamed (length-less)
    training set resumes where it stopped: a `StreamPositionCallback` records the pass and
    the batches trained in it, and a resumed run re-reads that pass (same seed, same order) and skips those batches.
    A run resumed from a checkpoint at `max_steps` trains nothing (`get_batch_samples`) and only finishes. A
    `DivergenceCallback` stops a run at its first non-finite gradient, and the logged `learning_rate` is the base
    rate, not the first parameter group's.
    """

    def __init__(self, *args, lr_multiplier: Callable[[str], float] | None = None,
                 no_decay_name_parts: tuple[str, ...] = NO_DECAY_NAME_PARTS, step_decay_at: float | None = None,
                 eval_data_collator=None, skipped_images: SkippedImageCounter | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped_images = skipped_images
        self.add_callback(ResumedScheduleCallback())
        self.add_callback(DivergenceCallback())
        self.resumed_at_max_steps = False
        if skipped_images is not None:
            self.add_callback(SkippedImagesCallback(skipped_images))
        self.lr_multiplier = lr_multiplier
        self.no_decay_name_parts = no_decay_name_parts
        self.step_decay_at = step_decay_at
        self.eval_data_collator = eval_data_collator
        self.streams_training_data = self.train_dataset is not None and not has_length(self.train_dataset)
        if self.streams_training_data:
            self.add_callback(StreamPositionCallback())

    def train_and_save(self, resume_from_checkpoint: str | None = None) -> dict:
        """`train`, then the final model, the train metrics (with `skipped_images`) and the trainer state; a full disk
        on the way stops with one line (`reporting_a_full_disk`). Returns the train metrics."""
        with reporting_a_full_disk(self.args.output_dir, self.model):
            result = self.train(resume_from_checkpoint=resume_from_checkpoint)
            self.save_model()
            metrics = dict(result.metrics)
            if self.skipped_images is not None:
                metrics["skipped_images"] = self.skipped_images.value
            self.log_metrics("train", metrics)
            self.save_metrics("train", metrics)
            self.save_state()
        return metrics

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            groups = build_parameter_groups(opt_model, self.args.learning_rate, self.args.weight_decay,
                                            self.lr_multiplier, self.no_decay_name_parts)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.skipped_images is not None:
            logs["skipped_images"] = self.skipped_images.value
        if "learning_rate" in logs and self.optimizer is not None:
            # Trainer logs the first parameter group's rate (the mask token's x0.1 for the CNN recipes).
            logs["learning_rate"] = base_learning_rate(self.optimizer, logs["learning_rate"])
        if self.resumed_at_max_steps:
            logs.pop("train_loss", None)  # no step was trained: Trainer's 0 is no loss
        super().log(logs, start_time)

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        """No batch once the run has reached `max_steps`: a run resumed from its last checkpoint (killed before its
        final save) only finishes, where Trainer would train one step more."""
        if self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps:
            if not self.resumed_at_max_steps:
                logger.warning(f"The checkpoint is at the run's last step ({self.state.global_step} of "
                               f"{self.state.max_steps}): training nothing, only writing the final outputs.")
            self.resumed_at_max_steps = True
            self.control.should_training_stop = True
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        self.eval_data_collator.restart()
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """Trainer's scheduler, or with `step_decay_at` the step schedule in its place. Trainer marks the scheduler it
        creates here as its own, so that the next `train()` call builds a new one for its own step count.

        transformers' polynomial decay divides by its decay steps (training steps - warmup steps), so a warmup as long
        as the run (a recipe's warmup fraction at `--max_steps 1`, or `--warmup_steps` equal to `--max_steps`) raised
        ZeroDivisionError at the last step: that warmup is clamped to leave one step of decay."""
        creating = self.lr_scheduler is None
        super().create_scheduler(num_training_steps, optimizer)
        if not creating:
            return self.lr_scheduler
        warmup = self.args.get_warmup_steps(num_training_steps)
        if self.step_decay_at is not None:
            self.lr_scheduler = get_warmup_step_schedule(optimizer or self.optimizer, warmup, num_training_steps,
                                                         self.step_decay_at)
        elif self.args.lr_scheduler_type == SchedulerType.POLYNOMIAL and warmup == num_training_steps:
            self.lr_scheduler = get_scheduler(
                SchedulerType.POLYNOMIAL, optimizer or self.optimizer, num_warmup_steps=max(num_training_steps - 1, 0),
                num_training_steps=num_training_steps, scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
        return self.lr_scheduler
