"""The picture people judge MIM by: original / masked input / reconstruction for a few fixed images."""

import os

import PIL.Image
import PIL.ImageDraw
import torch
from transformers import TrainerCallback

from ..masking import mean_fill, upsample_mask
from .files import atomic_path

COLUMNS = ("original", "masked", "reconstruction", "recon+visible")


def _to_uint8(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalized `(N, 3, H, W)` -> `(N, H, W, 3)` uint8."""
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    return ((images.float().cpu() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def reconstruction_grid(model, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor, mean, std,
                        cell_size: int = 96) -> PIL.Image.Image:
    """A grid image, one row per image and the columns `COLUMNS`: masked blocks shown mean-filled as the encoder sees
    them, the raw prediction (the loss only covers masked blocks), and the prediction pasted into the masked blocks. `pixel_values` `(N, 3, H, W)` normalized with `mean`/`std`, `bool_masked_pos` `(N, g, g)`."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        outputs = model(pixel_values=pixel_values.to(device), bool_masked_pos=bool_masked_pos.to(device))
    finally:
        model.train(was_training)
    size = pixel_values.shape[-1]
    pixel_mask = upsample_mask(bool_masked_pos, bool_masked_pos.shape[-1], size, pixel_values.dtype)
    reconstruction = outputs.reconstruction.float().cpu()
    pasted = pixel_values * (1 - pixel_mask) + reconstruction * pixel_mask
    columns = [pixel_values, mean_fill(pixel_values, pixel_mask), reconstruction, pasted]
    columns = [_to_uint8(images, mean, std) for images in columns]
    header = 14
    grid = PIL.Image.new("RGB", (cell_size * len(columns), header + cell_size * len(pixel_values)), "white")
    draw = PIL.ImageDraw.Draw(grid)
    for col, title in enumerate(COLUMNS):
        draw.text((col * cell_size + 4, 2), title, fill="black")
        for row in range(len(pixel_values)):
            cell = PIL.Image.fromarray(columns[col][row].numpy()).resize((cell_size, cell_size), PIL.Image.NEAREST)
            grid.paste(cell, (col * cell_size, header + row * cell_size))
    return grid


def save_reconstructions(model, pixel_values, bool_masked_pos, mean, std, *directories) -> None:
    """Write `reconstructions.png` (atomically) into each of `directories`."""
    grid = reconstruction_grid(model, pixel_values, bool_masked_pos, mean, std)
    for directory in directories:
        with atomic_path(os.path.join(directory, "reconstructions.png")) as temporary:
            grid.save(temporary, format="PNG")


class ReconstructionCallback(TrainerCallback):
    """At each checkpoint save, writes `reconstructions.png` into the checkpoint folder and the output folder
    (main process only). The images and masks are fixed, so successive pictures are comparable."""

    def __init__(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor, mean, std):
        self.pixel_values = pixel_values
        self.bool_masked_pos = bool_masked_pos
        self.mean, self.std = mean, std

    def on_save(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            save_reconstructions(model, self.pixel_values, self.bool_masked_pos, self.mean, self.std,
                                 checkpoint, args.output_dir)
