"""Loading image datasets for the scripts: Hub datasets, image folders, parquet/arrow files, or the embedded default.

Every source comes back as a `DatasetDict` (or `IterableDatasetDict` when streaming) whose image column is left
undecoded (`{"bytes", "path"}` dicts), so that the transforms decode each image themselves and can skip and count
unreadable files instead of crashing a long run (see `images.py`).
"""

import os
from pathlib import Path

from datasets import DatasetDict, Image, IterableDatasetDict, Value, load_dataset, load_from_disk

from .embedded import EMBEDDED_DATA_FILES
from .images import UNREADABLE_IMAGE_ERRORS, decode_image

# Examples of a column that is not a `datasets.Image` feature that are tried as images before accepting it.
IMAGE_CHECK_EXAMPLES = 8

_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def _builder_for(files) -> str:
    """The `datasets` builder for a list of files: parquet/arrow/csv/json by extension, else imagefolder."""
    suffixes = {Path(str(f)).suffix.lower() for f in files}
    builders = {_BUILDERS.get(suffix, "imagefolder") for suffix in suffixes}
    if len(builders) > 1:
        raise ValueError(f"--data_files mixes formats {sorted(suffixes)}; give files of one format.")
    return builders.pop()


def _as_split_files(data_files) -> dict[str, list[str]]:
    """Normalize `data_files` (path, list of paths, or {split: path(s)}) to {split: [paths]}."""
    if isinstance(data_files, (str, os.PathLike)):
        data_files = {"train": [data_files]}
    elif isinstance(data_files, (list, tuple)):
        data_files = {"train": list(data_files)}
    return {split: [str(f) for f in (files if isinstance(files, (list, tuple)) else [files])]
            for split, files in data_files.items()}


def is_saved_dataset(path: str) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    folder = Path(path)
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _load_saved_dataset(path: str, streaming: bool) -> DatasetDict | IterableDatasetDict:
    """A `save_to_disk` folder as a dict of splits; a single saved `Dataset` is the train split."""
    dataset = load_from_disk(path)
    splits = dict(dataset) if isinstance(dataset, DatasetDict) else {"train": dataset}
    if streaming:
        return IterableDatasetDict({name: split.to_iterable_dataset() for name, split in splits.items()})
    return DatasetDict(splits)


def _load_files(split_files: dict[str, list[str]], flag: str, **common) -> DatasetDict | IterableDatasetDict:
    """`{split: files}` through the builder their extension names; missing files are a `FileNotFoundError`."""
    missing = [f for files in split_files.values() for f in files if not any(c in f for c in "*?[") and
               not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"{flag} not found: {', '.join(missing)}.")
    builder = _builder_for([f for files in split_files.values() for f in files])
    return load_dataset(builder, data_files=split_files, **common)


def _image_folders(split_folders: dict[str, str], **common) -> DatasetDict | IterableDatasetDict:
    """`{split: folder}` through `imagefolder`, loaded together so that all splits share one label set."""
    for split, folder in split_folders.items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--{split}_dir {folder} is not a folder.")
    return load_dataset("imagefolder", data_files={split: os.path.join(folder, "**")
                                                   for split, folder in split_folders.items()}, **common)


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    data_files=None,
    validation_files=None,
    streaming: bool = False,
    cache_dir: str | None = None,
    token: str | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Load the data named by the script arguments; with none of them, the embedded Fashion-MNIST subset.

    One training source: `dataset_name` (Hub id, local dataset folder, or a folder written by
    `Dataset.save_to_disk` / `DatasetDict.save_to_disk`, read with `load_from_disk`), `train_dir` (an image
    folder), or `data_files` (parquet/arrow/csv/json/image files, a list or a `{split: files}` dict). At most one
    evaluation source, `validation_dir` (an image folder) or `validation_files`, becomes the `validation` split,
    next to the training source or alone (evaluation only: no train split then).
    """
    sources = [name for name, value in (("dataset_name", dataset_name), ("train_dir", train_dir),
                                        ("data_files", data_files)) if value]
    if len(sources) > 1:
        raise ValueError(f"Give one data source, not {' and '.join('--' + s for s in sources)}.")
    if validation_dir and validation_files:
        raise ValueError("Give one evaluation source, not --validation_dir and --validation_files.")
    common = {"streaming": streaming, "cache_dir": cache_dir}
    if train_dir:
        dataset = _image_folders({"train": train_dir, **({"validation": validation_dir} if validation_dir else {})},
                                 **common)
    elif dataset_name and is_saved_dataset(dataset_name):
        dataset = _load_saved_dataset(dataset_name, streaming)
    elif dataset_name:
        dataset = load_dataset(dataset_name, dataset_config_name, token=token, **common)
    elif data_files or not (validation_dir or validation_files):
        dataset = _load_files(_as_split_files(data_files or EMBEDDED_DATA_FILES), "--data_files", **common)
    else:
        dataset = (IterableDatasetDict if streaming else DatasetDict)()  # evaluation only
    if not isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        dataset = (IterableDatasetDict if streaming else DatasetDict)({"train": dataset})
    if validation_dir and not train_dir:
        dataset["validation"] = _image_folders({"validation": validation_dir}, **common)["validation"]
    if validation_files:
        files = {"validation": _as_split_files(validation_files)["train"]}
        dataset["validation"] = _load_files(files, "--validation_files", **common)["validation"]
    return dataset


def find_image_column(dataset, requested: str | None = None) -> str:
    """The image column: `requested` if it holds images, else the single `datasets.Image` column (or `{bytes, path}`
    struct column, which `without_image_decoding` then casts to `Image`).

    A requested column that is not a `datasets.Image` feature must be binary or string (image bytes or paths) and
    at least one of its first `IMAGE_CHECK_EXAMPLES` values must decode. Raises `ValueError` listing the columns and
    their types when the choice is missing, ambiguous or holds no images.
    """
    features = dataset.features
    if features is None:  # some streaming sources only know their columns after the first example
        features = dataset._resolve_features().features
    described = ", ".join(f"{name} ({type(feature).__name__})" for name, feature in features.items())
    if requested is not None:
        if requested not in features:
            raise ValueError(f"--image_column_name {requested!r} is not a column. Columns: {described}.")
        _check_holds_images(dataset, requested, features[requested], described)
        return requested
    image_columns = [name for name, feature in features.items() if isinstance(feature, Image) or
                     is_image_struct(feature)]
    if len(image_columns) == 1:
        return image_columns[0]
    if not image_columns:
        raise ValueError(f"No image column found. Columns: {described}. Name it with --image_column_name.")
    raise ValueError(f"Several image columns ({', '.join(image_columns)}); choose one with --image_column_name.")


def is_image_struct(feature) -> bool:
    """Whether `feature` is a `{"bytes", "path"}` struct: how `datasets` stores images, here without the metadata
    that marks it as an `Image` (e.g. a parquet file written by pyarrow or pandas)."""
    return isinstance(feature, dict) and set(feature) == {"bytes", "path"}


def _check_holds_images(dataset, column: str, feature, described: str) -> None:
    """`ValueError` unless `column` is an `Image` feature or holds decodable bytes/paths (or `{bytes, path}` structs)
    in its first examples."""
    if isinstance(feature, Image):
        return
    not_images = f"--image_column_name {column!r} does not hold images"
    struct = is_image_struct(feature)
    if not struct and not (isinstance(feature, Value) and
                           feature.dtype in ("binary", "large_binary", "string", "large_string")):
        raise ValueError(f"{not_images}: it is {feature!r}. Columns: {described}.")
    values = [example[column] for example in dataset.take(IMAGE_CHECK_EXAMPLES)]
    for value in values:
        try:
            decode_image(value)
            return
        except UNREADABLE_IMAGE_ERRORS:
            continue
    what = "{bytes, path} structs" if struct else "values"
    raise ValueError(f"{not_images}: none of its first {len(values)} {what} decodes as an image (bytes or a path). "
                     f"Columns: {described}.")


def without_image_decoding(dataset, image_column: str):
    """The same dataset with its image column as undecoded `{"bytes", "path"}` dicts."""
    return dataset.cast_column(image_column, Image(decode=False))
