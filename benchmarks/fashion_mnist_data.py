"""Fashion-MNIST as local parquet files for the benchmark: written once from the idx files, then reused.

Every file has a `datasets` `Image` column `image` (28x28 grayscale PNG; the scripts convert to RGB and resize) and,
except the pretraining file, a `ClassLabel` column `label`. The pretraining file has no labels at all, so that
pretraining provably never sees them.
"""

import io
from pathlib import Path

import numpy as np

from modeling_a2mim.data.fashion_mnist import CLASS_NAMES, balanced_indices, read_fashion_mnist


def _to_parquet(path: Path, images: np.ndarray, labels: np.ndarray | None) -> None:
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    def png(array):
        buffer = io.BytesIO()
        PILImage.fromarray(array, mode="L").save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    columns = {"image": [png(a) for a in images]}
    features = {"image": Image()}
    if labels is not None:
        columns["label"] = labels.tolist()
        features["label"] = ClassLabel(names=CLASS_NAMES)
    temporary = path.with_suffix(".tmp")
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(temporary))
    temporary.rename(path)  # a crash mid-write never leaves a truncated file that looks complete


def export_fashion_mnist(cache_dir: Path, pretrain_images: int, test_per_class: int | None) -> dict[str, Path]:
    """Parquet files under `cache_dir` (existing ones are reused):

    - `pretrain`: a file with the first `pretrain_images` of a fixed permutation (seed 0) of the 60,000 training
      images, without labels;
    - `labelled`: a dataset folder (`load_dataset(folder)` finds its splits by file name) with `train.parquet`, the
      60,000 labelled training images (fine-tuning draws its label budgets from them), and `test.parquet`, the
      10,000 test images or a class-balanced subset of `test_per_class` per class (seed 0).

    Raises `FileNotFoundError` with install instructions when the Debian package `dataset-fashion-mnist` (or
    `FASHION_MNIST_DIR`) is missing.
    """
    labelled = cache_dir / ("labelled" if test_per_class is None else f"labelled_test_{test_per_class}_per_class")
    paths = {"pretrain": cache_dir / f"pretrain_unlabelled_{pretrain_images}.parquet", "labelled": labelled}
    files = [paths["pretrain"], labelled / "train.parquet", labelled / "test.parquet"]
    if all(path.is_file() for path in files):
        return paths
    labelled.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = read_fashion_mnist("train")
    if not 0 < pretrain_images <= len(train_images):
        raise ValueError(f"pretrain_images={pretrain_images} must lie in 1..{len(train_images)}.")
    if not paths["pretrain"].is_file():
        order = np.random.default_rng(0).permutation(len(train_images))[:pretrain_images]
        _to_parquet(paths["pretrain"], train_images[order], None)
    if not (labelled / "train.parquet").is_file():
        _to_parquet(labelled / "train.parquet", train_images, train_labels)
    if not (labelled / "test.parquet").is_file():
        test_images, test_labels = read_fashion_mnist("test")
        if test_per_class is not None:
            keep = balanced_indices(test_labels, test_per_class, seed=0)
            test_images, test_labels = test_images[keep], test_labels[keep]
        _to_parquet(labelled / "test.parquet", test_images, test_labels)
    return paths
