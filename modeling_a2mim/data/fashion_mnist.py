"""Reader for the Fashion-MNIST idx files (Debian package `dataset-fashion-mnist`, MIT/Expat licence)."""

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def find_fashion_mnist(directory: str | os.PathLike | None = None) -> Path:
    """The folder holding the idx gz files, or a `FileNotFoundError` that says how to get them."""
    directory = Path(directory or os.environ.get("FASHION_MNIST_DIR", DEFAULT_DIR))
    missing = [name for pair in _FILES.values() for name in pair if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)}). Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four idx gz files from "
            "github.com/zalandoresearch/fashion-mnist and set FASHION_MNIST_DIR to their folder."
        )
    return directory


def read_fashion_mnist(split: str, directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a split (`"train"`: 60k, `"test"`: 10k): uint8 `(N, 28, 28)` and int64 `(N,)`."""
    directory = find_fashion_mnist(directory)
    image_file, label_file = _FILES[split]
    with gzip.open(directory / image_file, "rb") as handle:
        images = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(directory / label_file, "rb") as handle:
        labels = np.frombuffer(handle.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return images, labels


def balanced_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` samples of every class, drawn without replacement with `seed`."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))
