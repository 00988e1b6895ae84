"""Deterministic Fashion-MNIST scenes for the dense tasks (semantic segmentation and object detection).

A scene is a square RGB canvas with a smooth random colour gradient and mild noise as background, on which 1-4
Fashion-MNIST garments are pasted, each resized to a random side (a quarter to half of the canvas), tinted with a
random colour and alpha-blended by its own grey level. Garments never overlap (their squares are placed without
intersection), so the segmentation mask and the boxes agree exactly:

- `annotation`: a single-channel mask, 0 = background, `garment class + 1` where a garment's grey level is at least
  `MASK_THRESHOLD` (the faint fringe below it blends into the background and stays background);
- `objects`: per garment, `bbox` = COCO `[x, y, w, h]` of its mask pixels, `category` = its class 0..9 and `area` =
  its mask pixel count.

Train scenes draw garments only from training images and test scenes only from held-out (test) images. Scene `i`
of a split depends only on `(seed, split, i)`: the same seed gives identical scenes, and a longer dataset starts
with the scenes of a shorter one.
"""

import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image as PILImage

from .fashion_mnist import CLASS_NAMES

GARMENT_ID2LABEL = dict(enumerate(CLASS_NAMES))
SCENE_ID2LABEL = {0: "background", **{index + 1: name for index, name in GARMENT_ID2LABEL.items()}}
MASK_THRESHOLD = 64  # grey level (0..255) from which a garment pixel belongs to its mask
MAX_GARMENTS = 4
PLACEMENT_ATTEMPTS = 50
_SPLIT_CODES = {"train": 0, "test": 1}


def _garment_sides(canvas_size: int) -> tuple[int, int]:
    """Smallest and largest garment side on a canvas: a quarter to a half of it, never below 12 pixels."""
    low = max(12, canvas_size // 4)
    high = max(low, canvas_size // 2)
    if low > canvas_size:
        raise ValueError(f"canvas_size={canvas_size} is too small for a scene; use at least 12 pixels.")
    return low, high


def _background(canvas_size: int, rng: np.random.Generator) -> np.ndarray:
    """A float `(H, W, 3)` image in [0, 255]: a linear gradient between two random colours plus Gaussian noise."""
    start, end = rng.uniform(0, 255, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    coords = np.linspace(0.0, 1.0, canvas_size)
    ramp = np.cos(angle) * coords[None, :] + np.sin(angle) * coords[:, None]
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    image = start + ramp[..., None] * (end - start)
    return np.clip(image + rng.normal(0, 8, size=image.shape), 0, 255)


def _place(side: int, canvas_size: int, taken: list[tuple[int, int, int]], rng) -> tuple[int, int] | None:
    """Top-left corner of a `side` square that intersects none of `taken` (x, y, side), or None after the attempts."""
    for _ in range(PLACEMENT_ATTEMPTS):
        x, y = (int(v) for v in rng.integers(0, canvas_size - side + 1, size=2))
        if all(x + side <= tx or tx + ts <= x or y + side <= ty or ty + ts <= y for tx, ty, ts in taken):
            return x, y
    return None


def build_scene(images: Sequence, labels: Sequence[int], canvas_size: int, rng: np.random.Generator) -> dict:
    """One scene from the garments `images` (28x28 grey arrays or PIL images) of classes `labels`.

    Every garment gets a random side, colour and position; one that finds no free place after
    `PLACEMENT_ATTEMPTS` tries is left out (of the image, the mask and the objects alike).

    Returns `dict(image=PIL RGB, annotation=PIL "L" mask, objects=dict(bbox, category, area))`.
    """
    if len(images) != len(labels):
        raise ValueError(f"build_scene got {len(images)} images but {len(labels)} labels.")
    low, high = _garment_sides(canvas_size)
    canvas = _background(canvas_size, rng)
    mask = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
    objects = {"bbox": [], "category": [], "area": []}
    taken = []
    for garment, label in zip(images, labels):
        label = int(label)
        if label not in GARMENT_ID2LABEL:
            raise ValueError(f"Garment class {label} is not one of the Fashion-MNIST classes 0..9.")
        side = int(rng.integers(low, high + 1))
        colour = rng.uniform(0, 255, size=3)
        corner = _place(side, canvas_size, taken, rng)
        if corner is None:
            continue
        grey = PILImage.fromarray(np.asarray(garment, dtype=np.uint8)).convert("L")
        grey = np.asarray(grey.resize((side, side), PILImage.Resampling.BILINEAR), dtype=np.float64)
        inside = grey >= MASK_THRESHOLD
        if not inside.any():
            continue
        taken.append((*corner, side))
        x, y = corner
        alpha = (grey / 255.0)[..., None]
        region = canvas[y:y + side, x:x + side]
        canvas[y:y + side, x:x + side] = region * (1 - alpha) + colour * alpha
        mask[y:y + side, x:x + side][inside] = label + 1
        rows, cols = np.nonzero(inside)
        objects["bbox"].append([float(x + cols.min()), float(y + rows.min()),
                                float(cols.max() - cols.min() + 1), float(rows.max() - rows.min() + 1)])
        objects["category"].append(label)
        objects["area"].append(int(inside.sum()))
    return {
        "image": PILImage.fromarray(np.round(canvas).astype(np.uint8), mode="RGB"),
        "annotation": PILImage.fromarray(mask, mode="L"),
        "objects": objects,
    }


def _garment_pool(split: str, source) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a split: the embedded subset, the full idx files in a folder, or given arrays."""
    if source is None:
        from datasets import load_dataset

        from .embedded import EMBEDDED_DATA_FILES

        table = load_dataset("parquet", data_files={split: EMBEDDED_DATA_FILES[split]}, split=split)
        images = np.stack([np.asarray(image.convert("L")) for image in table["image"]])
        return images, np.asarray(table["label"], dtype=np.int64)
    if isinstance(source, Mapping):
        if split not in source:
            raise ValueError(f"The scene source has no {split!r} split (it has {sorted(source)}).")
        images, labels = source[split]
        return np.asarray(images), np.asarray(labels, dtype=np.int64)
    if isinstance(source, (str, os.PathLike)):
        from .fashion_mnist import read_fashion_mnist

        return read_fashion_mnist(split, source)
    raise ValueError(f"Unknown scene source {source!r}: give None (embedded subset), the folder of the Fashion-MNIST "
                     "idx files, or a mapping split -> (images, labels).")


def scene_features():
    """The `datasets.Features` of a scene dataset (masks use `SCENE_ID2LABEL`, categories `GARMENT_ID2LABEL`)."""
    from datasets import ClassLabel, Features, Image, List, Value

    return Features({
        "image_id": Value("int64"),
        "image": Image(),
        "annotation": Image(),
        "objects": {
            "bbox": List(List(Value("float32"), length=4)),
            "category": List(ClassLabel(names=CLASS_NAMES)),
            "area": List(Value("int64")),
        },
    })


def scene_dataset(split: str, num_scenes: int, canvas_size: int, seed: int, source=None):
    """`num_scenes` scenes of `split` ("train" or "test") as a `datasets.Dataset` (see the module docstring).

    `source`: None for the embedded Fashion-MNIST subset (4,000 train / 1,000 test images), a folder with the four
    Fashion-MNIST idx gz files for the full dataset, or a mapping `{"train": (images, labels), "test": ...}`.
    """
    from datasets import Dataset

    if split not in _SPLIT_CODES:
        raise ValueError(f"split={split!r} must be 'train' or 'test'.")
    if num_scenes < 1:
        raise ValueError(f"num_scenes={num_scenes} must be at least 1.")
    _garment_sides(canvas_size)
    images, labels = _garment_pool(split, source)
    rows = {"image_id": [], "image": [], "annotation": [], "objects": []}
    for index in range(num_scenes):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        chosen = rng.choice(len(images), size=min(len(images), int(rng.integers(1, MAX_GARMENTS + 1))),
                            replace=False)
        scene = build_scene(images[chosen], labels[chosen], canvas_size, rng)
        rows["image_id"].append(index)
        for key in ("image", "annotation", "objects"):
            rows[key].append(scene[key])
    return Dataset.from_dict(rows, features=scene_features())
