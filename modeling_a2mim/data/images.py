"""Decoding images defensively: unreadable or truncated files are skipped and counted, never fatal."""

import io
import logging
import multiprocessing

import PIL.Image
import torch

logger = logging.getLogger(__name__)

# What decoding an unreadable, truncated or non-image value raises.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, TypeError, AttributeError, PIL.Image.DecompressionBombError)


class SkippedImageCounter:
    """Counts skipped images across data loader worker processes (a shared integer created before they start)."""

    def __init__(self):
        self._count = multiprocessing.Value("q", 0)

    def add(self, n: int = 1) -> None:
        with self._count.get_lock():
            self._count.value += n

    @property
    def value(self) -> int:
        return self._count.value


def decode_image(value, mode: str = "RGB") -> PIL.Image.Image:
    """A fully loaded PIL image in `mode` from a PIL image, a `{"bytes", "path"}` dict, bytes or a path.

    Raises `OSError`/`ValueError` (from PIL) when the data cannot be decoded.
    """
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        value = io.BytesIO(value)
    image = value if isinstance(value, PIL.Image.Image) else PIL.Image.open(value)
    image.load()
    if image.mode == mode:
        return image
    if mode == "RGB" and image.mode in ("RGBA", "LA", "P"):
        # Flatten transparency onto white rather than black, as an image viewer shows it.
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    return image.convert(mode)


def decode_or_none(value, counter: SkippedImageCounter | None = None, mode: str = "RGB") -> PIL.Image.Image | None:
    """`decode_image`, or `None` (counted in `counter` and logged) when the image is unreadable."""
    try:
        return decode_image(value, mode)
    except UNREADABLE_IMAGE_ERRORS as error:
        if counter is not None:
            counter.add()
        where = value.get("path") if isinstance(value, dict) else None
        logger.warning("Skipping an unreadable image%s: %s", f" ({where})" if where else "", error)
        return None


def first_readable_images(dataset, image_column: str, transform, count: int, search_limit: int = 500) -> torch.Tensor:
    """The first `count` readable images among the first `search_limit` examples of `dataset`, each passed through
    `transform`: `(N, 3, H, W)` with `1 <= N <= count`. Raises `ValueError` when none of them is readable."""
    images, searched = [], 0
    for example in dataset:
        if len(images) == count or searched == search_limit:
            break
        searched += 1
        try:
            images.append(transform(decode_image(example[image_column])))
        except UNREADABLE_IMAGE_ERRORS:
            continue
    if not images:
        raise ValueError(f"No readable images in the first {searched} examples of {image_column!r}; check the data "
                         "source and --image_column_name.")
    return torch.stack(images)
