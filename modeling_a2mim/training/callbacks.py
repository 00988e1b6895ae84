"""Trainer callbacks shared by the scripts."""

from transformers import TrainerCallback

from ..data import SkippedImageCounter


class SkippedImagesCallback(TrainerCallback):
    """Adds `skipped_images` (unreadable images dropped so far) to every log entry, hence to the train and eval
    metrics the Trainer returns, and warns once at the end of training when any image was skipped.

    Add it with `add_first(trainer, callback)` so that the loggers (console, TensorBoard) see the count too.
    """

    def __init__(self, counter: SkippedImageCounter):
        self.counter = counter

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs["skipped_images"] = self.counter.value
            if state.log_history:
                state.log_history[-1]["skipped_images"] = self.counter.value

    def on_train_end(self, args, state, control, **kwargs):
        if self.counter.value and state.is_world_process_zero:
            print(f"Skipped {self.counter.value} unreadable image(s) during training (see the warnings above).")


def add_first(trainer, callback: TrainerCallback) -> None:
    """Register `callback` before the Trainer's own callbacks, so the logging ones see what it adds to the logs."""
    trainer.callback_handler.callbacks.insert(0, callback)
