"""Block masks for A2MIM and the pixel-space operations on them."""

import math

import torch


class BlockMaskGenerator:
    """Draws block masks of shape `(batch_size, grid, grid)` with `grid = image_size // mask_patch_size`.

    Every image gets exactly `ceil(grid * grid * mask_ratio)` masked blocks, chosen uniformly at random with the
    given `torch.Generator` (so a data loader worker can own a seeded one).
    """

    def __init__(self, image_size: int = 224, mask_patch_size: int = 32, mask_ratio: float = 0.6):
        if image_size % mask_patch_size:
            raise ValueError(
                f"image_size={image_size} must be a multiple of mask_patch_size={mask_patch_size}."
            )
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio={mask_ratio} must lie strictly between 0 and 1.")
        self.grid_size = image_size // mask_patch_size
        self.num_blocks = self.grid_size**2
        self.num_masked = math.ceil(self.num_blocks * mask_ratio)

    @classmethod
    def from_config(cls, config) -> "BlockMaskGenerator":
        return cls(config.image_size, config.mask_patch_size, config.mask_ratio)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.BoolTensor:
        """Returns a `(batch_size, grid, grid)` bool tensor, True where a block is masked."""
        scores = torch.rand(batch_size, self.num_blocks, generator=generator)
        chosen = scores.argsort(dim=1)[:, : self.num_masked]
        mask = torch.zeros(batch_size, self.num_blocks, dtype=torch.bool)
        mask.scatter_(1, chosen, True)
        return mask.view(batch_size, self.grid_size, self.grid_size).to(device)


def upsample_mask(bool_masked_pos: torch.Tensor, grid_size: int, size: int, dtype: torch.dtype) -> torch.Tensor:
    """`(B, grid, grid)` or `(B, grid * grid)` block mask -> `(B, 1, size, size)` float mask (nearest upsampling)."""
    if bool_masked_pos.dim() == 2:
        bool_masked_pos = bool_masked_pos.view(-1, grid_size, grid_size)
    mask = bool_masked_pos.unsqueeze(1).to(dtype)
    scale = size // grid_size
    return mask.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3) if scale > 1 else mask


def mean_fill(pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Replace masked pixels by each image's per-channel mean (over the whole image).

    `pixel_values` `(B, C, H, W)`, `pixel_mask` `(B, 1, H, W)` with 1 on masked pixels.
    """
    channel_mean = pixel_values.mean(dim=(2, 3), keepdim=True)
    return pixel_values * (1 - pixel_mask) + channel_mean * pixel_mask


__all__ = ["BlockMaskGenerator", "upsample_mask", "mean_fill"]
