"""Joint image/mask transforms (torchvision `transforms.v2` with `tv_tensors.Mask`) and the batch transform/collator.

Training follows mmseg's ADE20K pipeline: random resize (the short side to `ratio x crop`, ratio uniform in
0.5-2.0), random crop of `crop x crop` (padding the mask with the ignore index 255 and the image with 0), horizontal
flip, photometric distortion (brightness, contrast, saturation, hue, each applied with probability 0.5, in mmseg's
ranges: brightness +-32/255, contrast and saturation 0.5-1.5, hue +-18 of OpenCV's 180 hue units), normalization. Masks are resized
with nearest-neighbour interpolation (torchvision does so for `tv_tensors.Mask`). mmseg's crop also re-draws a crop
where one class covers more than 75 % (`cat_max_ratio`); this one does not.

Evaluation runs the very image processor saved with the model (a stock `SegformerImageProcessor`: resize to a square,
normalize), with the mask resized alongside by nearest neighbour, so `pipeline("image-segmentation")` sees the same
pixels as the script's evaluation.
"""

import logging

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from transformers import SegformerImageProcessor

from ..data import SkippedImageCounter, decode_or_none
from .data import IGNORE_INDEX, mask_array

logger = logging.getLogger(__name__)


def build_train_transform(crop_size: int, mean, std, recipe) -> v2.Compose:
    """`(tv_tensors.Image uint8, tv_tensors.Mask)` -> `(normalized float (3, crop, crop), mask (crop, crop))`."""
    photometric = []
    if recipe.photometric_distortion:
        photometric = [v2.RandomApply([v2.ColorJitter(**{name: value})], p=0.5) for name, value in
                       (("brightness", 32 / 255 * 2), ("contrast", 0.5), ("saturation", 0.5), ("hue", 18 / 180))]
    return v2.Compose([
        v2.RandomResize(max(1, round(recipe.min_resize_ratio * crop_size)),
                        max(2, round(recipe.max_resize_ratio * crop_size)) + 1, antialias=True),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
        v2.RandomHorizontalFlip(0.5),
        *photometric,
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])


def build_eval_image_processor(image_size: int, mean, std) -> SegformerImageProcessor:
    """The image processor saved with the model and used for evaluation: resize to `image_size` x `image_size`,
    normalize with the encoder's statistics; labels stay as given (reduction happens before it)."""
    return SegformerImageProcessor(size={"height": image_size, "width": image_size}, image_mean=list(mean),
                                   image_std=list(std), do_reduce_labels=False)


class SegmentationBatchTransform:
    """`datasets` batch transform: decodes images and masks, transforms them jointly.

    Returns `{"pixel_values": [tensor (3, H, W) or None], "labels": [tensor (H, W) or None]}`; an unreadable image or
    mask becomes `None` (counted in `counter`) and `collate_segmentation` drops it. `transform` is a joint v2
    transform (training) or an image processor (evaluation).
    """

    def __init__(self, image_column: str, mask_column: str, transform, counter: SkippedImageCounter | None = None,
                 reduce_labels: bool = False):
        self.image_column, self.mask_column = image_column, mask_column
        self.transform = transform
        self.counter = counter
        self.reduce_labels = reduce_labels

    def _mask(self, value):
        try:
            return mask_array(value, self.reduce_labels)
        except (OSError, ValueError, SyntaxError, TypeError) as error:
            if self.counter is not None:
                self.counter.add()
            where = value.get("path") if isinstance(value, dict) else None
            logger.warning("Skipping an unreadable mask%s: %s", f" ({where})" if where else "", error)
            return None

    def __call__(self, batch: dict) -> dict:
        pairs = []
        for image_value, mask_value in zip(batch[self.image_column], batch[self.mask_column]):
            image = decode_or_none(image_value, self.counter)
            mask = self._mask(mask_value) if image is not None else None
            pairs.append((image, mask) if image is not None and mask is not None else None)
        readable = [pair for pair in pairs if pair is not None]
        if isinstance(self.transform, SegformerImageProcessor):
            if readable:
                processed = self.transform([image for image, _ in readable],
                                           segmentation_maps=[mask.astype(np.uint8) for _, mask in readable],
                                           return_tensors="pt")
                outputs = iter(zip(processed["pixel_values"], processed["labels"].long()))
        else:
            outputs = iter(self.transform(tv_tensors.Image(v2.functional.pil_to_tensor(image)),
                                          tv_tensors.Mask(torch.from_numpy(mask)))
                           for image, mask in readable)
        results = [None if pair is None else next(outputs) for pair in pairs]
        return {"pixel_values": [None if r is None else r[0].as_subclass(torch.Tensor) for r in results],
                "labels": [None if r is None else r[1].as_subclass(torch.Tensor).long() for r in results]}


def collate_segmentation(examples: list[dict]) -> dict:
    """Stack `{"pixel_values", "labels"}` examples, dropping those that could not be decoded: `pixel_values`
    `(B, 3, H, W)` float, `labels` `(B, H, W)` long."""
    examples = [example for example in examples if example["pixel_values"] is not None]
    if not examples:
        raise ValueError("Every image of a batch failed to decode; the data holds no readable images here (see the "
                         "warnings).")
    return {"pixel_values": torch.stack([example["pixel_values"] for example in examples]),
            "labels": torch.stack([example["labels"] for example in examples])}
