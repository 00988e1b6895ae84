"""Detection data: the transformers example's format (`image_id`, `image`, `objects` with COCO `xywh` `bbox`,
`category`, `area`), its sources, checks that stop bad annotations with one line naming the example, and the batch
transform (torchvision `transforms.v2` jointly on image and boxes, then the detector's image processor)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..data import SkippedImageCounter, decode_or_none, load_image_dataset
from ..data.scenes import scene_dataset
from ..training.arguments import DataArguments

COCO_ANNOTATIONS = "annotations.json"
BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image (rounding in annotation tools); clipped


@dataclass
class DetectionDataArguments(DataArguments):
    """`DataArguments` for detection: with no source, Fashion-MNIST scenes with one box per garment."""

    image_square_size: int = field(
        default=600, metadata={"help": "Longest image side after resizing; images are padded to a square of it."}
    )
    num_train_scenes: int = field(default=2000, metadata={"help": "Embedded default: training scenes."})
    num_eval_scenes: int = field(default=200, metadata={"help": "Embedded default: evaluation scenes."})
    scene_size: int = field(default=96, metadata={"help": "Embedded default: the scenes' side in pixels."})

    @property
    def source_description(self) -> str:
        if self.dataset_name or self.train_dir or self.data_files or self.validation_dir or self.validation_files:
            return super().source_description
        return (f"embedded Fashion-MNIST scenes ({self.num_train_scenes} train / {self.num_eval_scenes} eval, "
                f"{self.scene_size} px, one box per garment; modeling_a2mim/data/scenes.py)")


def coco_folder_dataset(folder: str) -> Dataset:
    """An image folder with a COCO `annotations.json` (`images`, `annotations`, `categories`) as a dataset of the
    example's format; categories become contiguous ids in the order of their COCO ids. Boxes are checked against the
    image sizes the file states."""
    path = Path(folder) / COCO_ANNOTATIONS
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        categories = sorted(coco["categories"], key=lambda category: category["id"])
        images, annotations = coco["images"], coco["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a COCO annotation file with images, annotations and categories: "
                         f"{error!r}") from None
    contiguous = {category["id"]: index for index, category in enumerate(categories)}
    rows = {image["id"]: {"image_id": image["id"], "image": str(Path(folder) / image["file_name"]),
                          "objects": {"bbox": [], "category": [], "area": []}} for image in images}
    sizes = {image["id"]: (image.get("width"), image.get("height")) for image in images}
    for annotation in annotations:
        image_id = annotation.get("image_id")
        if image_id not in rows:
            raise ValueError(f"{path}: annotation {annotation.get('id')} names image_id {image_id}, which is not in "
                             "its images.")
        if annotation.get("category_id") not in contiguous:
            raise ValueError(f"{path}: annotation {annotation.get('id')} (image_id {image_id}) has category_id "
                             f"{annotation.get('category_id')}, which is not in its categories.")
        objects = rows[image_id]["objects"]
        objects["bbox"].append([float(v) for v in annotation["bbox"]])
        objects["category"].append(contiguous[annotation["category_id"]])
        width, height = annotation["bbox"][2:]
        objects["area"].append(float(annotation.get("area", width * height)))
    for image_id, row in rows.items():
        width, height = sizes[image_id]
        if width and height:
            check_boxes_inside(row["objects"]["bbox"], width, height, image_id)
    features = Features({
        "image_id": Value("int64"), "image": Image(),
        "objects": {"bbox": List(List(Value("float32"), length=4)),
                    "category": List(ClassLabel(names=[c["name"] for c in categories])),
                    "area": List(Value("float32"))},
    })
    return Dataset.from_list(list(rows.values()), features=features)


def _coco_folder(folder: str | None) -> bool:
    return bool(folder) and (Path(folder) / COCO_ANNOTATIONS).is_file()


def load_detection_dataset(data_args: DetectionDataArguments, seed: int, cache_dir=None, token=None) -> DatasetDict:
    """The splits of the script arguments: COCO folders (`--train_dir` / `--validation_dir` with an
    `annotations.json`), any source `load_image_dataset` reads (an image folder with a `metadata.jsonl`, parquet,
    `save_to_disk` folders, Hub datasets), or with none the embedded scenes (train scenes from Fashion-MNIST training
    images, evaluation scenes from held-out ones, drawn with `seed`)."""
    if data_args.streaming:
        raise ValueError("run_object_detection.py reads map-style data (its annotations are checked before "
                         "training); drop --streaming.")
    if _coco_folder(data_args.train_dir) or _coco_folder(data_args.validation_dir):
        if data_args.dataset_name or data_args.data_files or data_args.validation_files:
            raise ValueError("COCO folders (--train_dir / --validation_dir with annotations.json) go without "
                             "--dataset_name, --data_files and --validation_files.")
        splits = {}
        for split, folder in (("train", data_args.train_dir), ("validation", data_args.validation_dir)):
            if folder:
                if not _coco_folder(folder):
                    raise FileNotFoundError(f"{folder} has no {COCO_ANNOTATIONS}; give both folders in COCO form.")
                splits[split] = coco_folder_dataset(folder)
        return DatasetDict(splits)
    if any((data_args.dataset_name, data_args.train_dir, data_args.data_files, data_args.validation_dir,
            data_args.validation_files)):
        return load_image_dataset(
            dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
            train_dir=data_args.train_dir, validation_dir=data_args.validation_dir, data_files=data_args.data_files,
            validation_files=data_args.validation_files, cache_dir=cache_dir, token=token)
    size = data_args.scene_size
    return DatasetDict({"train": scene_dataset("train", data_args.num_train_scenes, size, seed).remove_columns(
                            "annotation"),
                        "test": scene_dataset("test", data_args.num_eval_scenes, size, seed).remove_columns(
                            "annotation")})


def category_names(dataset) -> list[str]:
    """The class names: the `category` ClassLabel's names, else `"0"` .. the largest id (ids must be integers)."""
    if "objects" not in (dataset.features or {}):
        raise ValueError(_missing_objects(dataset))
    feature = dataset.features["objects"]
    category = feature.get("category") if isinstance(feature, dict) else None
    inner = getattr(category, "feature", None)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    if "category" not in (feature or {}):
        raise ValueError(f"The objects have no 'category' (they have {list(feature or {})}); detection needs "
                         "objects={bbox, category, area}.")
    largest = max((max(objects["category"], default=-1) for objects in dataset["objects"]), default=-1)
    return [str(index) for index in range(largest + 1)]


def _missing_objects(dataset) -> str:
    columns = ", ".join(dataset.column_names or [])
    return (f"The data has no 'objects' column (it has {columns}); detection needs objects={{bbox: [[x, y, w, h]] "
            "(COCO, pixels), category: [id], area: [...]}} per image, as in transformers' object-detection example.")


def check_boxes_inside(boxes, width: float, height: float, image_id) -> None:
    """`ValueError` naming `image_id` when a COCO `xywh` box is degenerate or leaves the `width` x `height` image by
    more than `BOX_TOLERANCE` pixels."""
    for box in boxes:
        x, y, w, h = box
        if w <= 0 or h <= 0 or x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > width + BOX_TOLERANCE or \
                y + h > height + BOX_TOLERANCE:
            raise ValueError(f"Example image_id={image_id}: box {list(box)} (COCO x, y, w, h) lies outside its "
                             f"{width}x{height} image or is empty; fix or drop that annotation.")


def check_annotations(dataset, num_labels: int, split: str) -> None:
    """Before training: every example has `objects` with one 4-number box and one category in `0..num_labels-1` per
    object. (Boxes are checked against their image when it is decoded.)"""
    if "objects" not in (dataset.column_names or []):
        raise ValueError(f"The {split} split: " + _missing_objects(dataset))
    image_ids = dataset["image_id"] if "image_id" in dataset.column_names else range(len(dataset))
    for image_id, objects in zip(image_ids, dataset["objects"]):
        boxes, categories = objects.get("bbox"), objects.get("category")
        where = f"The {split} split, example image_id={image_id}"
        if boxes is None or categories is None or len(boxes) != len(categories):
            raise ValueError(f"{where}: objects needs as many bbox as category entries (got {objects}).")
        for box, category in zip(boxes, categories):
            if len(box) != 4:
                raise ValueError(f"{where}: bbox {box} is not COCO [x, y, w, h].")
            if not 0 <= int(category) < num_labels:
                raise ValueError(f"{where}: category {category} is beyond the model's {num_labels} classes "
                                 f"(id2label 0..{num_labels - 1}).")


def with_image_ids(dataset):
    """The dataset with an `image_id` column (its row index when it has none)."""
    if "image_id" in dataset.column_names:
        return dataset
    return dataset.add_column("image_id", list(range(len(dataset))))


def train_augmentation() -> v2.Compose:
    """Joint image / box augmentation: horizontal flip (DETR's; its multi-scale crops are left out), then boxes
    clamped and empty ones dropped with their labels."""
    return v2.Compose([v2.RandomHorizontalFlip(), v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1)])


class DetectionBatchTransform:
    """`datasets` batch transform: decode each image (unreadable ones become `None`, counted, and the collator drops
    them), check its boxes against it, augment image and boxes jointly, then the detector's image processor
    (resize, pad, normalize, boxes to normalized `cxcywh` `labels`)."""

    def __init__(self, image_column: str, image_processor, counter: SkippedImageCounter | None = None,
                 augmentation: v2.Transform | None = None):
        self.image_column = image_column
        self.image_processor = image_processor
        self.counter = counter
        self.augmentation = augmentation

    def _example(self, image, objects: dict, image_id):
        width, height = image.size
        check_boxes_inside(objects["bbox"], width, height, image_id)
        boxes = torch.tensor(objects["bbox"], dtype=torch.float32).reshape(-1, 4)
        boxes[:, :2] = boxes[:, :2].clamp(min=0)
        boxes[:, 2] = torch.minimum(boxes[:, 2], width - boxes[:, 0])
        boxes[:, 3] = torch.minimum(boxes[:, 3], height - boxes[:, 1])
        categories = torch.tensor([int(c) for c in objects["category"]], dtype=torch.long)
        if self.augmentation is not None:
            image, target = self.augmentation(
                tv_tensors.Image(v2.functional.pil_to_tensor(image)),
                {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYWH", canvas_size=(height, width)),
                 "labels": categories})
            boxes, categories = target["boxes"].as_subclass(torch.Tensor), target["labels"]
        annotations = [{"bbox": box.tolist(), "category_id": int(category), "area": float(box[2] * box[3]),
                        "iscrowd": 0} for box, category in zip(boxes, categories)]
        return image, {"image_id": int(image_id), "annotations": annotations}

    def __call__(self, batch: dict) -> dict:
        count = len(batch[self.image_column])
        image_ids = batch.get("image_id", list(range(count)))
        decoded = [decode_or_none(value, self.counter) for value in batch[self.image_column]]
        readable = [index for index, image in enumerate(decoded) if image is not None]
        outputs = {"pixel_values": [None] * count, "pixel_mask": [None] * count, "labels": [None] * count}
        if not readable:
            return outputs
        pairs = [self._example(decoded[i], batch["objects"][i], image_ids[i]) for i in readable]
        processed = self.image_processor(images=[image for image, _ in pairs],
                                         annotations=[annotation for _, annotation in pairs], return_tensors="pt")
        for position, index in enumerate(readable):
            outputs["pixel_values"][index] = processed["pixel_values"][position]
            outputs["pixel_mask"][index] = processed["pixel_mask"][position]
            outputs["labels"][index] = dict(processed["labels"][position])
        return outputs


PADDING = -100  # class id of the padding rows of `targets` (the value Trainer pads with across processes)


def padded_targets(labels: list[dict]) -> torch.Tensor:
    """The boxes of a batch as one tensor `(B, max objects, 5)`: rows `[class, cx, cy, w, h]` (normalized), padded with
    `PADDING`. Unlike the per-image `labels` dicts (ragged), Trainer can gather it over processes for the metric."""
    targets = torch.full((len(labels), max(1, *(len(label["class_labels"]) for label in labels)), 5), PADDING,
                         dtype=torch.float32)
    for row, label in enumerate(labels):
        count = len(label["class_labels"])
        targets[row, :count, 0] = label["class_labels"].float()
        targets[row, :count, 1:] = label["boxes"].float()
    return targets


def collate_detection(examples: list[dict]) -> dict:
    """`pixel_values` `(B, 3, S, S)`, `pixel_mask` `(B, S, S)`, `labels` (one dict per image, for the loss) and
    `targets` (`padded_targets`, for the metric), dropping images that could not be decoded."""
    examples = [example for example in examples if example["pixel_values"] is not None]
    if not examples:
        raise ValueError("Every image of a batch failed to decode; the data holds no readable images here (see the "
                         "warnings).")
    labels = [example["labels"] for example in examples]
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "pixel_mask": torch.stack([example["pixel_mask"] for example in examples]),
        "labels": labels,
        "targets": padded_targets(labels),
    }

