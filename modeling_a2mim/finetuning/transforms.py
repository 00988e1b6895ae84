"""Fine-tuning image transforms: timm's training pipeline configured from the recipe, the saved image processor for
evaluation.

The recipes are timm recipes (RandAugment strings such as `rand-m9-mstd0.5-inc1`, per-pixel random erasing), so the
training transform is timm's own `create_transform`: torchvision's RandAugment has another magnitude scale (31 bins
instead of timm's 10 levels, no magnitude noise, no "increasing" op set). Evaluation runs the very image processor
saved with the model, so `pipeline("image-classification")` sees the same pixels as the script's evaluation.
"""

import torch
from timm.data import create_transform
from transformers import ConvNextImageProcessor, ViTImageProcessor

from ..data import SkippedImageCounter, decode_or_none


def build_train_transform(image_size: int, mean, std, recipe):
    """PIL image -> normalized `(3, image_size, image_size)` float tensor, timm's training pipeline for `recipe`.

    RandomResizedCrop (bicubic, area `recipe.min_crop_scale`..1) + horizontal flip, RandAugment `recipe.auto_augment`
    (a timm string, e.g. `rand-m9-mstd0.5-inc1`) when set, else color jitter `recipe.color_jitter`, and timm's
    RandomErasing with probability `recipe.random_erasing` in `recipe.random_erasing_mode` after normalization.
    """
    return create_transform(
        image_size,
        is_training=True,
        scale=(recipe.min_crop_scale, 1.0),
        interpolation="bicubic",
        auto_augment=recipe.auto_augment or None,
        color_jitter=recipe.color_jitter or None,
        re_prob=recipe.random_erasing,
        re_mode=recipe.random_erasing_mode,
        re_count=1,
        mean=tuple(mean),
        std=tuple(std),
    )


def build_eval_image_processor(image_size: int, mean, std, crop_ratio: float | None = None):
    """The image processor saved with the classifier and used for evaluation.

    With `crop_ratio`: resize the short side to `image_size / crop_ratio` and center crop `image_size` (the recipes'
    test protocol, as `ConvNextImageProcessor`); without: resize to `image_size` x `image_size`.
    """
    if crop_ratio is not None:
        if not 0 < crop_ratio <= 1:
            raise ValueError(f"--eval_crop_ratio={crop_ratio} must lie in (0, 1], e.g. 0.875.")
        return ConvNextImageProcessor(
            size={"shortest_edge": image_size}, crop_pct=crop_ratio, image_mean=list(mean), image_std=list(std)
        )
    return ViTImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=list(mean), image_std=list(std)
    )


def image_processor_size(image_processor) -> int | None:
    """The square input side an image processor produces, or `None` if it does not say."""
    size = image_processor.crop_size if getattr(image_processor, "do_center_crop", False) else image_processor.size
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)  # dict or SizeDict
        if value:
            return int(value)
    return None


class ClassificationBatchTransform:
    """`datasets` batch transform: decodes images, transforms them and attaches integer labels.

    Returns `{"pixel_values": [tensor (3, H, W) or None], "labels": [int]}` with one entry per row; unreadable images
    become `None` (counted in `counter`) and `collate_classification` drops them. `transform` is either a per-image
    callable (training) or an image processor applied to the batch (evaluation).
    """

    def __init__(self, image_column: str, label_column: str, transform, counter: SkippedImageCounter | None = None,
                 label_map: dict | None = None):
        self.image_column = image_column
        self.label_column = label_column
        self.transform = transform
        self.counter = counter
        self.label_map = label_map

    def __call__(self, batch: dict) -> dict:
        images = [decode_or_none(value, self.counter) for value in batch[self.image_column]]
        readable = [image for image in images if image is not None]
        if callable(getattr(self.transform, "preprocess", None)) and readable:
            transformed = iter(self.transform(readable, return_tensors="pt")["pixel_values"])
        else:
            transformed = (self.transform(image) for image in readable)
        pixel_values = [None if image is None else next(transformed) for image in images]
        raw_labels = batch[self.label_column]
        if self.label_map is not None:
            labels = [self.label_map[label] for label in raw_labels]
        else:
            labels = [int(label) for label in raw_labels]
        return {"pixel_values": pixel_values, "labels": labels}


def collate_classification(examples: list[dict]) -> dict:
    """Stack `{"pixel_values", "labels"}` examples, dropping those whose image could not be decoded.

    Returns `pixel_values` `(B, 3, H, W)` float and `labels` `(B,)` long.
    """
    examples = [example for example in examples if example["pixel_values"] is not None]
    if not examples:
        raise ValueError(
            "Every image of a batch failed to decode; the data holds no readable images here (see the warnings)."
        )
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.tensor([example["labels"] for example in examples], dtype=torch.long),
    }
