"""`Trainer` for fine-tuning: MixUp/CutMix on training batches, soft-target CE/BCE loss, AdamW or LAMB on the
recipes' parameter groups (no decay for norms, biases, embeddings; layer-wise lr decay through `lr_multiplier`)."""

from timm.optim import Lamb

from ..training.trainer import A2MIMTrainer
from .mixing import BatchMixing, ClassificationLoss
from .recipes import OPTIMIZERS


class FinetuningTrainer(A2MIMTrainer):
    """An `A2MIMTrainer` whose loss is `loss_function(logits, targets)`, with `mixing` applied to training batches.

    Mixing happens here rather than in the collator because Trainer shares one collator between training and
    evaluation, and evaluation must see clean images and integer labels. `optimizer_name="lamb"` swaps AdamW for
    timm's LAMB (the RSB recipes) on the same parameter groups.

    `compute_loss` returns the mean loss of its micro-batch, so Trainer must divide it by the accumulation steps.
    Trainer would skip that division here (the stock classifiers accept `**kwargs` and the batches hold `labels`, so it
    believes the loss is normalized by `num_items_in_batch`): `loss_is_scaled_for_ga = False` says otherwise.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss_function: ClassificationLoss, mixing: BatchMixing | None = None,
                 optimizer_name: str = "adamw", **kwargs):
        if optimizer_name not in OPTIMIZERS:
            raise ValueError(f"Unknown --optimizer {optimizer_name!r}; use one of {', '.join(OPTIMIZERS)}.")
        super().__init__(*args, **kwargs)
        self.classification_loss = loss_function
        self.mixing = mixing
        self.optimizer_name = optimizer_name

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixel_values, targets = inputs["pixel_values"], inputs["labels"]
        if model.training and self.mixing is not None:
            pixel_values, targets = self.mixing(pixel_values, targets)
        outputs = model(pixel_values=pixel_values)
        loss = self.classification_loss(outputs.logits, targets)
        return (loss, outputs) if return_outputs else loss

    def get_optimizer_cls_and_kwargs(self, args, model=None):
        if self.optimizer_name == "lamb":
            return Lamb, {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2)}
        return A2MIMTrainer.get_optimizer_cls_and_kwargs(args, model)
