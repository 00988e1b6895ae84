"""Data helpers shared by `run_pretraining.py` and `run_finetuning.py`."""

from .embedded import EMBEDDED_DATA_FILES, EMBEDDED_DATASET_DIR
from .images import SkippedImageCounter, decode_image, decode_or_none, first_readable_images
from .loading import find_image_column, load_image_dataset, without_image_decoding

__all__ = [
    "EMBEDDED_DATA_FILES",
    "EMBEDDED_DATASET_DIR",
    "SkippedImageCounter",
    "decode_image",
    "decode_or_none",
    "find_image_column",
    "first_readable_images",
    "load_image_dataset",
    "without_image_decoding",
]
