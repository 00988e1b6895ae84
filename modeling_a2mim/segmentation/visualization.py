"""`segmentations.png`: image / ground truth / prediction for a few held images, one fixed colour per class."""

import os

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from transformers import TrainerCallback

from ..training.files import atomic_path
from .data import IGNORE_INDEX
from .inference import predict_logits

COLUMNS = ("image", "ground truth", "prediction")
IGNORE_COLOUR = (255, 255, 255)


def palette(id2label: dict[int, str]) -> np.ndarray:
    """`(num_labels, 3)` uint8 colours, the same for a class in every picture (seed 0); "background" is black."""
    colours = np.random.default_rng(0).integers(40, 256, size=(len(id2label), 3)).astype(np.uint8)
    for index, name in id2label.items():
        if str(name).lower() == "background":
            colours[int(index)] = 0
    return colours


def colourize(mask: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """`(H, W)` class ids -> `(H, W, 3)` uint8; the ignore index is white."""
    image = np.full((*mask.shape, 3), IGNORE_COLOUR, dtype=np.uint8)
    known = mask != IGNORE_INDEX
    image[known] = colours[np.clip(mask[known], 0, len(colours) - 1)]
    return image


@torch.no_grad()
def segmentation_grid(model, pixel_values: torch.Tensor, labels: torch.Tensor, mean, std, id2label,
                      eval_mode: str = "whole", crop: int | None = None, stride: int | None = None,
                      cell_size: int = 128) -> PIL.Image.Image:
    """One row per image, the columns `COLUMNS`. `pixel_values` `(N, 3, H, W)` normalized with `mean` / `std`,
    `labels` `(N, H, W)`."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits = predict_logits(model, pixel_values.to(device), eval_mode, crop, stride)
    finally:
        model.train(was_training)
    predictions = logits.argmax(dim=1).cpu().numpy()
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    images = ((pixel_values.float().cpu() * std + mean).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    colours = palette(id2label)
    header = 14
    grid = PIL.Image.new("RGB", (cell_size * len(COLUMNS), header + cell_size * len(images)), "white")
    draw = PIL.ImageDraw.Draw(grid)
    for col, title in enumerate(COLUMNS):
        draw.text((col * cell_size + 4, 2), title, fill="black")
    for row, (image, label, prediction) in enumerate(zip(images, labels.numpy(), predictions)):
        for col, cell in enumerate((image, colourize(label, colours), colourize(prediction, colours))):
            cell = PIL.Image.fromarray(cell).resize((cell_size, cell_size), PIL.Image.NEAREST)
            grid.paste(cell, (col * cell_size, header + row * cell_size))
    return grid


class SegmentationPictureCallback(TrainerCallback):
    """Writes `segmentations.png` into every checkpoint folder and the output folder at each save (main process
    only), and on demand (`save`). The images are fixed, so successive pictures are comparable."""

    def __init__(self, pixel_values: torch.Tensor, labels: torch.Tensor, mean, std, id2label, eval_mode: str,
                 crop: int, stride: int):
        self.pixel_values, self.labels = pixel_values, labels
        self.mean, self.std, self.id2label = mean, std, id2label
        self.eval_mode, self.crop, self.stride = eval_mode, crop, stride

    def save(self, model, *directories) -> None:
        grid = segmentation_grid(model, self.pixel_values, self.labels, self.mean, self.std, self.id2label,
                                 self.eval_mode, self.crop, self.stride)
        for directory in directories:
            with atomic_path(os.path.join(directory, "segmentations.png")) as temporary:
                grid.save(temporary, format="PNG")

    def on_save(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            self.save(model, os.path.join(args.output_dir, f"checkpoint-{state.global_step}"), args.output_dir)
