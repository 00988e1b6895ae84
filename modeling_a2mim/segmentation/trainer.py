"""`Trainer` for UperNet: the recipes' parameter groups (layer-wise lr decay), full training batches, and
sliding-window evaluation."""

import torch

from ..training.trainer import A2MIMTrainer
from .data import IGNORE_INDEX
from .inference import slide_logits


class SegmentationTrainer(A2MIMTrainer):
    """An `A2MIMTrainer` for `UperNetForSemanticSegmentation`.

    - Training batches are always full (`drop_last`): UperNet's pyramid pooling applies BatchNorm to a 1 x 1 map,
      which fails in training on a batch of one ("Expected more than 1 value per channel"), and an epoch's last
      batch can hold a single image. Evaluation keeps every image.
    - `eval_mode="slide"` evaluates `crop` x `crop` windows every `stride` pixels and averages their logits (the
      eval loss is then the main head's cross-entropy on those logits).
    - The model's loss is the mean over its micro-batch, so Trainer must divide it by the accumulation steps; it
      would not (UperNet's forward takes `**kwargs` and the batches hold `labels`): `loss_is_scaled_for_ga = False`.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, eval_mode: str = "whole", crop_size: int | None = None, eval_stride: int | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_mode, self.crop_size, self.eval_stride = eval_mode, crop_size, eval_stride

    def get_train_dataloader(self):
        drop_last, self.args.dataloader_drop_last = self.args.dataloader_drop_last, True
        try:
            return super().get_train_dataloader()
        finally:
            self.args.dataloader_drop_last = drop_last

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if self.eval_mode != "slide":
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        model.eval()
        pixel_values = inputs["pixel_values"].to(self.args.device)
        labels = inputs["labels"].to(self.args.device)
        with torch.no_grad(), self.autocast_smart_context_manager():
            logits = slide_logits(model, pixel_values, self.crop_size, self.eval_stride)
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        return loss.detach(), None if prediction_loss_only else logits, labels
