"""The picture of a detector at work: predicted (red) vs ground-truth (green) boxes on a few held images."""

import os

import PIL.Image
import PIL.ImageDraw
import torch
from transformers import TrainerCallback

from ..training.files import atomic_path
from ..training.reconstructions import _to_uint8
from .metrics import _absolute_xyxy, padded_size

PICTURE_NAME = "detections.png"


@torch.no_grad()
def detection_picture(model, image_processor, batch: dict, threshold: float = 0.5, cell_size: int = 192):
    """One panel per image of `batch` (a `collate_detection` batch): ground truth in green, predictions scoring at
    least `threshold` in red with their class and score."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        outputs = model(pixel_values=batch["pixel_values"].to(device), pixel_mask=batch["pixel_mask"].to(device))
    finally:
        model.train(was_training)
    size = padded_size(image_processor)
    results = image_processor.post_process_object_detection(outputs, threshold=threshold,
                                                           target_sizes=[size] * len(batch["labels"]))
    images = _to_uint8(batch["pixel_values"], image_processor.image_mean, image_processor.image_std)
    scale = cell_size / max(size)
    id2label = model.config.id2label
    picture = PIL.Image.new("RGB", (cell_size * len(images), cell_size + 14), "white")
    draw = PIL.ImageDraw.Draw(picture)
    draw.text((4, 2), "green: ground truth, red: predicted", fill="black")
    for column, (image, target, result) in enumerate(zip(images, batch["labels"], results)):
        left = column * cell_size
        cell = PIL.Image.fromarray(image.numpy()).resize((cell_size, cell_size), PIL.Image.BILINEAR)
        picture.paste(cell, (left, 14))
        for box in _absolute_xyxy(target["boxes"], size).tolist():
            draw.rectangle([left + box[0] * scale, 14 + box[1] * scale, left + box[2] * scale, 14 + box[3] * scale],
                           outline=(0, 200, 0), width=2)
        for box, label, score in zip(result["boxes"].tolist(), result["labels"].tolist(), result["scores"].tolist()):
            corner = (left + box[0] * scale, 14 + box[1] * scale)
            draw.rectangle([*corner, left + box[2] * scale, 14 + box[3] * scale], outline=(220, 0, 0), width=1)
            draw.text((corner[0] + 2, corner[1] + 1), f"{id2label.get(label, label)} {score:.2f}", fill=(220, 0, 0))
    return picture


def save_detection_picture(model, image_processor, batch: dict, *directories) -> None:
    """Write `detections.png` (atomically) into each of `directories`."""
    picture = detection_picture(model, image_processor, batch)
    for directory in directories:
        with atomic_path(os.path.join(directory, PICTURE_NAME)) as temporary:
            picture.save(temporary, format="PNG")


class DetectionPictureCallback(TrainerCallback):
    """At each checkpoint save, writes `detections.png` for the same held images into the checkpoint folder and the
    output folder (main process only)."""

    def __init__(self, image_processor, batch: dict):
        self.image_processor = image_processor
        self.batch = batch

    def on_save(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            save_detection_picture(model, self.image_processor, self.batch, checkpoint, args.output_dir)
