"""MixUp / CutMix with label smoothing on training batches (timm's `Mixup`, as the recipes run it), and the
soft-target losses they need."""

import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import mixup_target
from torch import nn

from .recipes import LOSSES


class BatchMixing(nn.Module):
    """timm's batch-wise MixUp (`mixup_alpha`) / CutMix (`cutmix_alpha`): with both, CutMix is drawn with probability
    `switch_prob` per batch; an alpha of 0 disables that method.

    `(pixel_values (B, C, H, W), labels (B,) long) -> (mixed pixel_values, targets (B, num_classes))`; the targets are
    the label-smoothed (`label_smoothing`, timm's off value `s / K`, on value `1 - s + s / K`) one-hot vectors mixed
    with the same weight as the images, so each row sums to 1. timm mixes a batch with its reverse and needs an even
    size: in an odd batch (a last partial batch) the final image stays unmixed with its smoothed one-hot target.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 label_smoothing: float = 0.0, switch_prob: float = 0.5):
        super().__init__()
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("BatchMixing needs mixup_alpha > 0 or cutmix_alpha > 0.")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mix = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, switch_prob=switch_prob, mode="batch",
                         label_smoothing=label_smoothing, num_classes=num_classes)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        even = len(labels) - len(labels) % 2
        if even == 0:
            return pixel_values, mixup_target(labels, self.num_classes, lam=1.0, smoothing=self.label_smoothing)
        mixed, targets = self.mix(pixel_values[:even].clone(), labels[:even])
        if even == len(labels):
            return mixed, targets
        rest = mixup_target(labels[even:], self.num_classes, lam=1.0, smoothing=self.label_smoothing)
        return torch.cat([mixed, pixel_values[even:]]), torch.cat([targets, rest])


class ClassificationLoss(nn.Module):
    """Cross-entropy or BCE (the RSB recipes) on integer labels or soft targets.

    `logits (B, K)` and `targets` `(B,)` long or `(B, K)` probabilities -> scalar loss. Integer labels are smoothed
    with `label_smoothing` (timm's convention); soft targets come from `BatchMixing`, which has smoothed them already,
    and are used as they are. BCE treats every class as a binary task and averages over classes and samples (timm's
    `BinaryCrossEntropy`).
    """

    def __init__(self, kind: str = "cross_entropy", label_smoothing: float = 0.0):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"Unknown loss {kind!r}; use one of {', '.join(LOSSES)}.")
        self.kind = kind
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if targets.dim() == 1:
            targets = mixup_target(targets, logits.shape[-1], lam=1.0, smoothing=self.label_smoothing)
        targets = targets.to(logits.dtype)
        if self.kind == "cross_entropy":
            return F.cross_entropy(logits, targets)
        return F.binary_cross_entropy_with_logits(logits, targets)

    def describe(self) -> str:
        """One line for logs and results, e.g. `bce (label smoothing 0.0)`."""
        return f"{self.kind} (label smoothing {self.label_smoothing})"
