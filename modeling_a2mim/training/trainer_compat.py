"""The private `Trainer` methods `A2MIMTrainer` overrides: the project's only dependence on transformers' internals.

No public hook does either job on the supported transformers versions (setup.py's range):

- `_init_training_state`: a streamed (length-less) training set resumes at its pass and batch. Trainer counts every
  step as a batch of pass 0 (it cannot know a stream's length), so it would skip `global_step` batches of pass 0 and
  then restart the next pass from its beginning. `datasets`' resumable `IterableDataset.state_dict()` does not help
  here: Trainer neither saves a data loader state in its checkpoints nor skips by one.
- `_load_from_checkpoint`: resumed weights go through `from_pretrained`, which applies transformers' key renames.
  `save_pretrained` writes the checkpoint's weights under their original (legacy) names, e.g. BEiT's
  `encoder.layer.N.attention.attention.query` and `lambda_1`, while Trainer loads them back with a plain
  `load_state_dict(strict=False)` against the renamed modules (`layers.N.attention.q_proj`): every BEiT encoder weight,
  layer scale included, would silently keep its initial value (`tests/test_trainer_compat.py` shows it).

`tests/test_trainer_compat.py` checks, on the installed transformers, that Trainer still defines and calls both with
these signatures, and runs a resume through each; `.ci/run` runs it on the oldest and the newest supported version.
"""

from transformers import PreTrainedModel, Trainer
from transformers.utils import logging

from .stream_position import StreamPositionCallback

logger = logging.get_logger(__name__)


class TrainerCompat(Trainer):
    """`Trainer` with the two private overrides above; `A2MIMTrainer` derives from it. A subclass sets
    `self.streams_training_data` (the training set has no length) before training."""

    streams_training_data = False

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint,
                             trial) -> tuple[int, int]:
        """Trainer's `(epochs_trained, batches to skip in that epoch)`, taken for a streamed training set from the
        checkpoint's `StreamPositionCallback` state."""
        epochs_trained, batches_to_skip = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        )
        if resume_from_checkpoint is None or not self.streams_training_data or self.args.ignore_data_skip:
            return epochs_trained, batches_to_skip
        saved = self.state.stateful_callbacks.get(StreamPositionCallback.__name__)
        if not isinstance(saved, dict):
            logger.warning(f"{resume_from_checkpoint} has no stream position; Trainer skips {batches_to_skip} batches "
                           "of the first pass over the streamed data, which is wrong after the first pass.")
            return epochs_trained, batches_to_skip
        position = next(cb for cb in self.callback_handler.callbacks if isinstance(cb, StreamPositionCallback))
        for name, value in saved["attributes"].items():
            setattr(position, name, value)
        logger.info(f"Resuming the streamed training data at pass {position.epoch}, skipping its first "
                    f"{position.batches_in_epoch} batches.")
        return position.epoch, position.batches_in_epoch

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """The checkpoint's weights through `from_pretrained` (strictly), not Trainer's plain `load_state_dict`."""
        model = self.model if model is None else model
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or not isinstance(model, PreTrainedModel):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded = type(model).from_pretrained(resume_from_checkpoint, config=model.config)
        model.load_state_dict(loaded.state_dict(), strict=True)
