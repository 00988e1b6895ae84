"""Segmentation data: an image column and a mask column, from the Hub, local files or folders, or the embedded
Fashion-MNIST scenes; the label names; and the up-front mask checks.

Masks are single-channel maps of class ids (PNG "L", "P" palette indices or 16-bit "I;16", or a 2-D array column:
`Array2D` or a list of lists of ints or of a `ClassLabel`), the size of their image; 255 is the ignore index (-1 too in
an array column). `--do_reduce_labels` maps 0 (ADE20K's "other") to 255 and every other id k to k - 1.
"""

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import PIL.Image
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Image, LargeList, List, Value

from ..data import SkippedImageCounter
from ..data.images import UNREADABLE_IMAGE_ERRORS
from ..data.loading import load_image_dataset
from ..data.scenes import SCENE_ID2LABEL, scene_dataset
from ..training.arguments import EMPTY_MESSAGE, select_splits

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255
IMAGE_COLUMNS = ("image", "pixel_values", "img")
MASK_COLUMNS = ("label", "annotation", "mask", "semantic_segmentation", "segmentation", "labels", "gtFine")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_MODES = ("L", "P", "I;16", "I", "1")
SCENE_SEED = 0  # the embedded scenes are the same whatever --seed, so that runs of different seeds share their data


def _stems(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}


def paired_folder_dataset(folder: str, flag: str) -> Dataset:
    """`folder/images/*` and `folder/masks/*` paired by file stem, as `image` / `annotation` path columns.

    Raises `FileNotFoundError` for a missing subfolder and `ValueError` naming images without masks (or masks without
    images), so that no example silently goes missing.
    """
    root = Path(folder)
    images_dir, masks_dir = root / "images", root / "masks"
    for sub in (images_dir, masks_dir):
        if not sub.is_dir():
            raise FileNotFoundError(f"{flag} {folder} needs the subfolders images/ and masks/ (same file stems); "
                                    f"{sub} is missing.")
    images, masks = _stems(images_dir), _stems(masks_dir)
    for missing, where in ((sorted(set(images) - set(masks)), "masks/"), (sorted(set(masks) - set(images)), "images/")):
        if missing:
            raise ValueError(f"{flag} {folder}: {len(missing)} file(s) have no counterpart in {where} (e.g. "
                             f"{', '.join(missing[:3])}); give every image a mask of the same stem.")
    if not images:
        raise ValueError(f"{EMPTY_MESSAGE} ({flag} {folder}/images/ holds no image files).")
    rows = {"image": [{"bytes": None, "path": str(images[s])} for s in images],
            "annotation": [{"bytes": None, "path": str(masks[s])} for s in images]}
    return Dataset.from_dict(rows, features=Features({"image": Image(decode=False), "annotation": Image(decode=False)}))


def parse_id2label(value: str) -> dict[int, str]:
    """`--id2label`: a JSON file or inline JSON `{"0": "wall", ...}` -> `{0: "wall", ...}` (ids 0..N-1)."""
    text = Path(value).read_text(encoding="utf-8") if not value.lstrip().startswith("{") else value
    try:
        mapping = {int(key): str(name) for key, name in json.loads(text).items()}
    except (ValueError, AttributeError) as error:
        raise ValueError(f"--id2label must be a JSON object of class id -> name (a file or inline), e.g. "
                         f"'{{\"0\": \"background\", \"1\": \"cat\"}}': {error}") from error
    if sorted(mapping) != list(range(len(mapping))) or not mapping:
        raise ValueError(f"--id2label must number its classes 0..N-1 without gaps; it has ids {sorted(mapping)}.")
    return mapping


def _id2label_next_to(paths) -> dict[int, str] | None:
    for path in filter(None, paths):
        candidate = Path(path) / "id2label.json"
        if candidate.is_file():
            logger.info("Class names from %s.", candidate)
            return parse_id2label(str(candidate))
    return None


def _id2label_from_hub(dataset_name: str, **hub_kwargs) -> dict[int, str] | None:
    """The Hub dataset repository's `id2label.json` (as transformers' example reads it), or `None`."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(dataset_name, "id2label.json", repo_type="dataset", token=hub_kwargs.get("token"),
                               cache_dir=hub_kwargs.get("cache_dir"))
    except Exception:  # offline, no such file, no such repo: the caller asks for --id2label
        return None
    return parse_id2label(path)


def _array_element(feature):
    """The element feature of a 2-D array column (`Array2D`, or a list of lists), else `None`."""
    if isinstance(feature, Array2D):
        return Value(feature.dtype)
    for _ in range(2):
        if not isinstance(feature, (List, LargeList)):
            return None
        feature = feature.feature
    return feature


def _id2label_from_features(mask_feature) -> dict[int, str] | None:
    """The names of a `ClassLabel` mask column (a 2-D array of class ids), or `None`."""
    element = _array_element(mask_feature)
    if not isinstance(element, ClassLabel):
        return None
    logger.info("Class names from the mask column's ClassLabel feature: %s.", element.names)
    return dict(enumerate(element.names))


def resolve_id2label(data_args, mask_feature=None, **hub_kwargs) -> dict[int, str]:
    """Class names: `--id2label`, else the dataset's features (a mask column of `ClassLabel` ids, `mask_feature`),
    else an `id2label.json` next to the data (the dataset folder, `--train_dir`, or the Hub dataset repository),
    else the embedded scenes' names for the default data."""
    if data_args.id2label:
        return parse_id2label(data_args.id2label)
    found = _id2label_from_features(mask_feature) or _id2label_next_to(
        [data_args.dataset_name, data_args.train_dir, data_args.validation_dir,
         *(os.path.dirname(f) for f in data_args.data_files or [])])
    if found is None and data_args.dataset_name and not Path(data_args.dataset_name).exists():
        found = _id2label_from_hub(data_args.dataset_name, **hub_kwargs)
    if found is None and data_args.uses_embedded_scenes:
        found = dict(SCENE_ID2LABEL)
    if found is None:
        raise ValueError(f"No class names for {data_args.source_description}: pass --id2label (a JSON file or "
                         "inline JSON of class id -> name), put an id2label.json next to the data, or give the mask "
                         "column a ClassLabel feature.")
    return found


def _pick_column(features, requested: str | None, candidates, flag: str, exclude: str | None = None) -> str:
    described = ", ".join(f"{name} ({type(feature).__name__})" for name, feature in features.items())
    if requested is not None:
        if requested not in features:
            raise ValueError(f"{flag} {requested!r} is not a column. Columns: {described}.")
        return requested
    for name in candidates:
        if name in features and name != exclude:
            return name
    raise ValueError(f"Cannot tell which column holds the {'images' if 'image' in flag else 'masks'}. Columns: "
                     f"{described}. Name it with {flag}.")


def _is_id_array(feature) -> bool:
    element = _array_element(feature)
    return isinstance(element, ClassLabel) or (isinstance(element, Value) and element.dtype.startswith(("int", "uint")))


def _undecoded(dataset, column: str, masks: bool = False):
    """`dataset` with `column` undecoded; a mask column (`masks`) may also be a 2-D array of class ids."""
    feature = dataset.features[column]
    if isinstance(feature, Image):
        return dataset.cast_column(column, Image(decode=False))
    if isinstance(feature, Value) and feature.dtype in ("binary", "large_binary", "string", "large_string"):
        return dataset
    if masks and _is_id_array(feature):
        return dataset
    expected = "masks (a datasets.Image, bytes, paths or a 2-D array of class ids)" if masks else (
        "images (a datasets.Image, bytes or paths)")
    raise ValueError(f"Column {column!r} is {feature!r}, not {expected}.")


def load_segmentation_splits(data_args, seed: int, need_train: bool = True, **hub_kwargs):
    """`(train or None, eval or None, image column, mask column)`, both columns undecoded (`{"bytes", "path"}`).

    Sources: `--train_dir` / `--validation_dir` (folders with `images/` and `masks/`), `--dataset_name` (a Hub id, a
    local dataset folder or a `save_to_disk` folder), `--data_files` / `--validation_files` (parquet or arrow with an
    image and a mask column), or none of them: the embedded Fashion-MNIST scenes (train scenes from training images,
    the validation scenes from held-out test images).
    """
    if data_args.streaming:
        raise ValueError("run_semantic_segmentation.py checks every mask before training and cannot stream; drop "
                         "--streaming (datasets caches the data on disk instead).")
    if data_args.uses_embedded_scenes:
        size = data_args.scene_size
        dataset = DatasetDict({
            "train": scene_dataset("train", data_args.num_train_scenes, size, SCENE_SEED),
            "validation": scene_dataset("test", data_args.num_eval_scenes, size, SCENE_SEED),
        })
    else:
        folders = {"train": data_args.train_dir, "validation": data_args.validation_dir}
        dataset = {}
        if data_args.dataset_name or data_args.data_files or data_args.validation_files:
            if data_args.train_dir and (data_args.dataset_name or data_args.data_files):
                raise ValueError("Give one training source: --train_dir, --dataset_name or --data_files.")
            if data_args.validation_dir and data_args.validation_files:
                raise ValueError("Give one evaluation source, not --validation_dir and --validation_files.")
            dataset = dict(load_image_dataset(
                dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
                data_files=data_args.data_files, validation_files=data_args.validation_files,
                cache_dir=hub_kwargs.get("cache_dir"), token=hub_kwargs.get("token"),
            ))
        for split, folder in folders.items():
            if folder:
                dataset[split] = paired_folder_dataset(folder, f"--{split}_dir")
    train, eval_dataset = select_splits(dataset, data_args, seed, need_train)
    reference = train if train is not None else eval_dataset
    image_column = _pick_column(reference.features, data_args.image_column_name, IMAGE_COLUMNS,
                                "--image_column_name")
    mask_column = _pick_column(reference.features, data_args.label_column_name, MASK_COLUMNS, "--label_column_name",
                               exclude=image_column)
    splits = []
    for split in (train, eval_dataset):
        if split is not None:
            split = _undecoded(_undecoded(split, image_column), mask_column, masks=True)
        splits.append(split)
    return splits[0], splits[1], image_column, mask_column


def _open(value) -> PIL.Image.Image:
    """A lazily opened PIL image from a `{"bytes", "path"}` dict, bytes or a path; a 2-D array of class ids (a mask
    column of lists or `Array2D`) as an "L" image (an "I" image for ids beyond 0..255), -1 (`ClassLabel`'s "no label",
    as a `ClassLabel` cannot hold 255) becoming the ignore index."""
    if isinstance(value, (list, np.ndarray)):
        array = np.asarray(value, dtype=np.int64)
        array[array == -1] = IGNORE_INDEX
        small = array.size == 0 or (array.min() >= 0 and array.max() <= 255)
        return PIL.Image.fromarray(array.astype(np.uint8 if small else np.int32))
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        value = io.BytesIO(value)
    return value if isinstance(value, PIL.Image.Image) else PIL.Image.open(value)


def _where(value, split: str, index: int) -> str:
    path = value.get("path") if isinstance(value, dict) else (value if isinstance(value, str) else None)
    return f"{path} (row {index} of the {split} split)" if path else f"row {index} of the {split} split"


def mask_array(value, reduce_labels: bool = False) -> np.ndarray:
    """The class-id map `(H, W)` int64 of a mask (with `--do_reduce_labels`: 0 -> 255, k -> k - 1)."""
    mask = np.asarray(_open(value), dtype=np.int64)
    if reduce_labels:
        mask = np.where(mask == 0, IGNORE_INDEX, mask - 1)
        mask[mask == IGNORE_INDEX - 1] = IGNORE_INDEX
    return mask


def check_masks(dataset, image_column: str, mask_column: str, num_labels: int, reduce_labels: bool, split: str,
                counter: SkippedImageCounter | None = None):
    """Check every mask before training; returns the dataset without the examples whose image or mask cannot be
    read (each logged and counted in `counter`).

    A mask in RGB (or any multi-channel mode), a mask whose size differs from its image, or a class id at or beyond
    `num_labels` other than the ignore index 255 raises `ValueError` naming the file.
    """
    keep = []
    for index, example in enumerate(dataset):
        image_value, mask_value = example[image_column], example[mask_column]
        try:
            image_size = _open(image_value).size
            mask_image = _open(mask_value)
            mask_image.load()
        except UNREADABLE_IMAGE_ERRORS as error:
            if counter is not None:
                counter.add()
            logger.warning("Skipping %s: unreadable image or mask (%s).", _where(image_value, split, index), error)
            continue
        where = _where(mask_value, split, index)
        if mask_image.mode not in MASK_MODES:
            raise ValueError(f"Mask {where} is {mask_image.mode}; masks must be single-channel maps of class ids "
                             "(PNG mode L, P or I;16), not colour images.")
        if mask_image.size != image_size:
            raise ValueError(f"Mask {where} is {mask_image.size[0]}x{mask_image.size[1]} but its image is "
                             f"{image_size[0]}x{image_size[1]}; give masks the size of their images.")
        mask = mask_array(mask_image, reduce_labels)
        beyond = np.unique(mask[(mask != IGNORE_INDEX) & ((mask >= num_labels) | (mask < 0))])
        if beyond.size:
            shown = beyond + 1 if reduce_labels else beyond
            raise ValueError(
                f"Mask {where} has class id(s) {shown.tolist()[:5]} beyond the {num_labels} classes of id2label "
                f"(ids 0..{num_labels - 1}{', after --do_reduce_labels' if reduce_labels else ''}; 255 = ignore); "
                "fix the mask or --id2label."
            )
        keep.append(index)
    if len(keep) < len(dataset):
        logger.warning("The %s split keeps %d of %d examples (see the warnings above).", split, len(keep),
                       len(dataset))
        dataset = dataset.select(keep)
    if len(dataset) == 0:
        raise ValueError(f"The {split} split has no readable image/mask pair.")
    return dataset
