"""A2MIM reconstruction losses: the spatial loss on masked pixels and the focal frequency loss.

Both take `prediction` and `target` of shape `(B, C, H, W)` and `pixel_mask` of shape `(B, 1, H, W)` (1 = masked),
have no parameters, and return a scalar.
"""

import torch
from torch import nn


class SpatialReconstructionLoss(nn.Module):
    """`sum(W * l(prediction - target)) / (sum_{b,h,w} W + 1e-5) / C` with `W = M + (1 - M) * unmask_weight`.

    `l` is `|d|` (`"l1"`) or the focal L1 `|d| * (2 * sigmoid(alpha * |d|) - 1) ** gamma` (`"focal_l1"`).
    """

    def __init__(self, kind: str = "l1", unmask_weight: float = 0.0, alpha: float = 0.2, gamma: float = 1.0):
        super().__init__()
        if kind not in ("l1", "focal_l1"):
            raise ValueError(f"kind={kind!r}: use 'l1' or 'focal_l1'.")
        self.kind = kind
        self.unmask_weight = unmask_weight
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        distance = (prediction - target).abs()
        if self.kind == "focal_l1":
            distance = distance * (2 * torch.sigmoid(self.alpha * distance) - 1) ** self.gamma
        weight = pixel_mask + (1 - pixel_mask) * self.unmask_weight
        return (distance * weight).sum() / (weight.sum() + 1e-5) / prediction.shape[1]


class FocalFrequencyLoss(nn.Module):
    """Focal frequency loss on batch-averaged spectra, computed in float32 whatever the autocast dtype.

    The prediction is first blended into the target where it is not asked for:
    `x_tilde = prediction * M_f + x_mix * (1 - M_f)` with `x_mix = 0.5 * stopgrad(prediction) + 0.5 * target` and
    `M_f = M + (1 - M) * unmask_weight`. Then, with `F` the orthonormal 2-D FFT per channel averaged over the batch,
    `D = F(x_tilde) - F(target)`, the detached weight `w = log(1 + |D|) / max_{c,h,w} log(1 + |D|)` (one maximum over
    every channel and frequency, as the reference's `batch_matrix=True`; clamped to [0, 1], NaN -> 0) and the loss
    `mean(w * |D| ** 2)`.
    """

    def __init__(self, unmask_weight: float = 0.0):
        super().__init__()
        self.unmask_weight = unmask_weight

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            prediction, target, pixel_mask = prediction.float(), target.float(), pixel_mask.float()
            mix = 0.5 * prediction.detach() + 0.5 * target
            keep = pixel_mask + (1 - pixel_mask) * self.unmask_weight
            blended = prediction * keep + mix * (1 - keep)
            # The FFT is linear, so mean_b F(blended) - mean_b F(target) = F(mean_b(blended - target)): one
            # (C, H, W) transform instead of two (B, C, H, W) ones, the same loss and gradient.
            difference = torch.fft.fft2((blended - target).mean(dim=0), norm="ortho")
            squared_distance = difference.real**2 + difference.imag**2
            with torch.no_grad():
                log_distance = torch.log1p(squared_distance.sqrt())
                weight = log_distance / log_distance.amax()
                weight = torch.nan_to_num(weight, nan=0.0).clamp(0.0, 1.0)
            return (weight * squared_distance).mean()


__all__ = ["SpatialReconstructionLoss", "FocalFrequencyLoss"]
