"""MixUp / CutMix on training batches (torchvision v2) and the soft-target losses they need."""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2


class BatchMixing(nn.Module):
    """One of MixUp (`mixup_alpha`) or CutMix (`cutmix_alpha`), chosen with equal odds per batch.

    `(pixel_values (B, C, H, W), labels (B,) long) -> (mixed pixel_values, targets (B, num_classes))`; each target
    row is a probability vector (it sums to 1). An alpha of 0 disables that method.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
        super().__init__()
        methods = []
        if mixup_alpha > 0:
            methods.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            methods.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        if not methods:
            raise ValueError("BatchMixing needs mixup_alpha > 0 or cutmix_alpha > 0.")
        self.mix = methods[0] if len(methods) == 1 else v2.RandomChoice(methods)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mix(pixel_values, labels)


class ClassificationLoss(nn.Module):
    """Cross-entropy or BCE (the RSB recipes) on integer labels or soft targets, with label smoothing.

    `logits (B, K)` and `targets` `(B,)` long or `(B, K)` probabilities -> scalar loss. BCE treats every class as a
    binary task on the (smoothed, mixed) target probabilities and averages over classes and samples.
    """

    def __init__(self, kind: str = "cross_entropy", label_smoothing: float = 0.0):
        super().__init__()
        if kind not in ("cross_entropy", "bce"):
            raise ValueError(f"Unknown loss {kind!r}; use 'cross_entropy' or 'bce'.")
        self.kind = kind
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        num_classes = logits.shape[-1]
        if targets.dim() == 1:
            targets = F.one_hot(targets, num_classes).to(logits.dtype)
        targets = targets.to(logits.dtype)
        if self.kind == "cross_entropy":
            return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        return F.binary_cross_entropy_with_logits(logits, targets)
