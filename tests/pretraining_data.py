"""Small on-disk datasets for the end-to-end pretraining tests."""

import io

import datasets
import numpy as np
import PIL.Image


def textured_image(index: int, size: int, mode: str = "RGB") -> PIL.Image.Image:
    """A deterministic image with structure (stripes of an index-dependent colour), in `mode`."""
    rng = np.random.default_rng(index)
    base = rng.integers(0, 256, size=3)
    y, x = np.mgrid[0:size, 0:size]
    stripes = ((x + index * y) // 4) % 2
    array = (stripes[..., None] * base + (1 - stripes[..., None]) * (255 - base)).astype(np.uint8)
    return PIL.Image.fromarray(array, "RGB").convert(mode)


def write_image_folder(folder, count: int, size: int, modes=("RGB", "L", "RGBA"), corrupted: int = 0):
    """`count` PNGs cycling through `modes` plus `corrupted` truncated files, all with a .png extension."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        textured_image(i, size, modes[i % len(modes)]).save(folder / f"img_{i:03d}.png")
    for i in range(corrupted):
        good = (folder / "img_000.png").read_bytes()
        (folder / f"broken_{i}.png").write_bytes(good[: len(good) // 3])
    return folder


def write_parquet(path, count: int, size: int):
    """A parquet file with an `id` column (0..count-1) and PNG images in an `image` column."""
    rows = {"id": [], "image": []}
    for i in range(count):
        buffer = io.BytesIO()
        textured_image(i, size).save(buffer, format="PNG")
        rows["id"].append(i)
        rows["image"].append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"id": datasets.Value("int64"), "image": datasets.Image()})
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path
