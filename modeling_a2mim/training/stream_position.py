"""Where a run stands in a streamed (length-less) training set, saved in every checkpoint to resume from there."""

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


class StreamPositionCallback(TrainerCallback, ExportableState):
    """Counts the passes over a streamed dataset (`epoch`, the `set_epoch` value that seeds its shuffle) and the
    batches (micro-batches, i.e. before gradient accumulation) already trained in the current pass.

    Trainer cannot tell this itself: without a dataset length it treats all `max_steps` as one epoch, so after a
    resume it would skip `global_step` batches of pass 0 and restart the next pass from its first batch. The state
    goes to each checkpoint's `trainer_state.json` (under `stateful_callbacks`); `A2MIMTrainer` reads it back.
    """

    def __init__(self):
        self.epoch = 0
        self.batches_in_epoch = 0

    def on_substep_end(self, args, state, control, **kwargs):
        self.batches_in_epoch += 1

    def on_step_end(self, args, state, control, **kwargs):
        self.batches_in_epoch += 1

    def on_epoch_end(self, args, state, control, **kwargs):
        self.epoch += 1
        self.batches_in_epoch = 0

    def state(self) -> dict:
        return {"args": {}, "attributes": {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch}}
