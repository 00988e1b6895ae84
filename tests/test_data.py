import io

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Dataset, DatasetDict, Features, Image, Value

from modeling_a2mim.data import (
    SkippedImageCounter,
    decode_image,
    decode_or_none,
    find_image_column,
    first_readable_images,
    load_image_dataset,
)


def _png(mode, size=(8, 6)):
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.random.default_rng(0).integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode=mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_embedded_dataset_is_balanced_fashion_mnist():
    dataset = load_image_dataset()
    assert dataset["train"].num_rows == 4000 and dataset["test"].num_rows == 1000
    counts = np.bincount(dataset["train"]["label"], minlength=10)
    assert counts.tolist() == [400] * 10
    assert dataset["train"].features["label"].names[0] == "T-shirt/top"
    assert dataset["train"][0]["image"].size == (28, 28)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_decode_image_converts_every_mode_to_rgb(mode):
    image = decode_image({"bytes": _png(mode), "path": None})
    assert image.mode == "RGB" and image.size == (8, 6)


def test_transparent_pixels_flatten_to_white():
    buffer = io.BytesIO()
    PIL.Image.new("RGBA", (2, 2), (10, 20, 30, 0)).save(buffer, "PNG")
    assert decode_image(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_corrupt_and_truncated_images_are_skipped_and_counted():
    counter = SkippedImageCounter()
    truncated = _png("RGB", (64, 64))[:60]
    assert decode_or_none({"bytes": b"not an image", "path": "a.png"}, counter) is None
    assert decode_or_none({"bytes": truncated, "path": "b.png"}, counter) is None
    assert decode_or_none({"bytes": _png("L"), "path": "c.png"}, counter).mode == "RGB"
    assert counter.value == 2


def test_find_image_column_errors_name_the_columns():
    features = Features({"img": Image(), "caption": Value("string")})
    dataset = Dataset.from_dict({"img": [{"bytes": _png("L"), "path": None}], "caption": ["x"]}, features=features)
    assert find_image_column(dataset) == "img"
    with pytest.raises(ValueError, match=r"'picture' is not a column\. Columns: img \(Image\), caption \(Value\)"):
        find_image_column(dataset, "picture")
    text_only = Dataset.from_dict({"caption": ["x"]})
    with pytest.raises(ValueError, match="No image column found.*--image_column_name"):
        find_image_column(text_only)


def test_conflicting_or_missing_sources_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Give one data source"):
        load_image_dataset(dataset_name="x", train_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--data_files not found"):
        load_image_dataset(data_files=str(tmp_path / "missing.parquet"))


@pytest.mark.parametrize("streaming", [False, True])
def test_save_to_disk_folders_load_and_a_single_dataset_is_the_train_split(tmp_path, streaming):
    features = Features({"image": Image(), "id": Value("int64")})
    rows = {"image": [{"bytes": _png("RGB"), "path": None}] * 3, "id": [0, 1, 2]}
    single = Dataset.from_dict(rows, features=features)
    single.save_to_disk(str(tmp_path / "dataset"))
    DatasetDict({"train": single, "validation": single.select([0])}).save_to_disk(str(tmp_path / "dict"))

    dataset = load_image_dataset(dataset_name=str(tmp_path / "dataset"), streaming=streaming)
    assert list(dataset) == ["train"] and [row["id"] for row in dataset["train"]] == [0, 1, 2]
    dataset = load_image_dataset(dataset_name=str(tmp_path / "dict"), streaming=streaming)
    assert sorted(dataset) == ["train", "validation"] and [row["id"] for row in dataset["validation"]] == [0]


def test_a_requested_column_must_hold_decodable_images():
    rows = {"png": [_png("RGB")], "path": ["missing.png"], "label": [3]}
    dataset = Dataset.from_dict(rows, features=Features({"png": Value("binary"), "path": Value("string"),
                                                         "label": Value("int64")}))
    assert find_image_column(dataset, "png") == "png"
    with pytest.raises(ValueError, match=r"'path' does not hold images: none of its first 1 values decodes"):
        find_image_column(dataset, "path")
    with pytest.raises(ValueError, match=r"'label' does not hold images: it is Value\('int64'\)"):
        find_image_column(dataset, "label")


def test_held_out_image_search_is_bounded():
    rows = [{"image": b"broken"}] * 5 + [{"image": _png("RGB")}] * 3
    assert first_readable_images(rows, "image", lambda image: torch.zeros(3, 2, 2), count=2).shape == (2, 3, 2, 2)
    with pytest.raises(ValueError, match="^No readable images in the first 4 examples of 'image'"):
        first_readable_images(rows, "image", lambda image: torch.zeros(3, 2, 2), count=2, search_limit=4)


def test_evaluation_files_or_folder_become_the_validation_split(tmp_path):
    features = Features({"image": Image(), "id": Value("int64")})
    for name, ids in (("train", [0, 1, 2]), ("test", [7])):
        Dataset.from_dict({"image": [{"bytes": _png("RGB"), "path": None}] * len(ids), "id": ids},
                          features=features).to_parquet(str(tmp_path / f"{name}.parquet"))
    (tmp_path / "folder").mkdir()
    PIL.Image.open(io.BytesIO(_png("RGB"))).save(tmp_path / "folder" / "a.png")

    both = load_image_dataset(data_files=[str(tmp_path / "train.parquet")],
                              validation_files=[str(tmp_path / "test.parquet")])
    assert sorted(both) == ["train", "validation"] and both["validation"]["id"] == [7]
    embedded = load_image_dataset(validation_files=str(tmp_path / "test.parquet"))  # evaluation only: no train split
    assert list(embedded) == ["validation"]
    folder = load_image_dataset(validation_dir=str(tmp_path / "folder"), streaming=True)
    assert list(folder) == ["validation"] and len(list(folder["validation"])) == 1
    with pytest.raises(ValueError, match="Give one evaluation source, not --validation_dir and --validation_files"):
        load_image_dataset(validation_dir=str(tmp_path), validation_files=str(tmp_path / "test.parquet"))
    with pytest.raises(FileNotFoundError, match="--validation_files not found: .*missing.parquet"):
        load_image_dataset(validation_files=str(tmp_path / "missing.parquet"))
