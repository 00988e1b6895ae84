"""The embedded default dataset: a balanced Fashion-MNIST subset shipped inside the package (MIT/Expat).

`train.parquet` holds 4,000 training images (400 per class), `test.parquet` 1,000 test images (100 per class), as
PNG bytes in a `datasets` `Image` column `image` with a `ClassLabel` column `label`.
`python -m modeling_a2mim.data.embedded` rebuilds both from the Debian package `dataset-fashion-mnist`.
"""

import io
from pathlib import Path

EMBEDDED_DATASET_DIR = Path(__file__).parent / "fashion_mnist_mini"
EMBEDDED_DATA_FILES = {
    "train": str(EMBEDDED_DATASET_DIR / "train.parquet"),
    "test": str(EMBEDDED_DATASET_DIR / "test.parquet"),
}
SPLIT_SIZES = {"train": 400, "test": 100}  # images per class


def build_embedded_dataset(output_dir: Path = EMBEDDED_DATASET_DIR, fashion_mnist_dir=None) -> None:
    """Write the balanced subset as parquet files with `datasets` features (seed 0)."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    from .fashion_mnist import CLASS_NAMES, balanced_indices, read_fashion_mnist

    features = Features({"image": Image(), "label": ClassLabel(names=CLASS_NAMES)})
    output_dir.mkdir(parents=True, exist_ok=True)
    for split, per_class in SPLIT_SIZES.items():
        images, labels = read_fashion_mnist(split, fashion_mnist_dir)
        rows = {"image": [], "label": []}
        for index in balanced_indices(labels, per_class, seed=0):
            buffer = io.BytesIO()
            PILImage.fromarray(images[index], mode="L").save(buffer, format="PNG", optimize=True)
            rows["image"].append({"bytes": buffer.getvalue(), "path": None})
            rows["label"].append(int(labels[index]))
        Dataset.from_dict(rows, features=features).to_parquet(str(output_dir / f"{split}.parquet"))


if __name__ == "__main__":
    build_embedded_dataset()
    print(f"wrote {', '.join(EMBEDDED_DATA_FILES.values())}")
