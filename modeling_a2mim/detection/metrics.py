"""COCO mAP of a detector's predictions: torchmetrics' `MeanAveragePrecision` with the pycocotools backend."""

import inspect

import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_convert
from transformers.utils import ModelOutput

from .data import PADDING

SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")


def coco_metrics(predictions: list[dict], targets: list[dict], id2label: dict[int, str]) -> dict[str, float]:
    """COCO AP / AR of `predictions` (per image `boxes` xyxy pixels, `scores`, `labels`) against `targets` (per image
    `boxes` xyxy pixels, `labels`): `map` (AP@[.5:.95]), `map_50`, `map_75`, per-size AP, AR@1/10/100, and the AP of
    each class as `map_<name>` (-1 where the class has no ground truth, as COCO reports it)."""
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend="pycocotools")
    metric.update(predictions, targets)
    result = metric.compute()
    metrics = {key: round(float(result[key]), 4) for key in SUMMARY_KEYS}
    classes = result["classes"].reshape(-1).tolist()
    for class_id, value in zip(classes, result["map_per_class"].reshape(-1).tolist()):
        metrics[f"map_{id2label.get(int(class_id), class_id)}"] = round(float(value), 4)
    return metrics


def _absolute_xyxy(boxes: torch.Tensor, size) -> torch.Tensor:
    """Normalized `cxcywh` boxes -> `xyxy` pixels of an image of `size` (height, width)."""
    height, width = (int(v) for v in size)
    boxes = box_convert(boxes.float(), "cxcywh", "xyxy")
    return boxes * torch.tensor([width, height, width, height], dtype=boxes.dtype)


def padded_size(image_processor) -> tuple[int, int]:
    """`(height, width)` of the square the image processor pads to: the frame its normalized boxes refer to."""
    pad_size = image_processor.pad_size
    return int(pad_size["height"]), int(pad_size["width"])


class DetectionMetrics:
    """`compute_metrics` for `Trainer(eval_do_concat_batches=False, label_names=["targets"])` (`padded_targets`,
    which Trainer gathers over processes): post-processes each batch's `logits` and
    `pred_boxes` with the detector's image processor (every query kept, `threshold=0`, as COCO evaluation ranks them)
    and compares them with the targets, both in pixels of the padded input (the frame of the normalized boxes)."""

    def __init__(self, image_processor, id2label: dict[int, str]):
        self.image_processor = image_processor
        self.id2label = id2label
        self.size = padded_size(image_processor)
        post_process = image_processor.post_process_object_detection
        self.keeps_top_k = "top_k" in inspect.signature(post_process).parameters  # Conditional DETR ranks top k

    def __call__(self, evaluation) -> dict[str, float]:
        predictions, targets = [], []
        for batch, batch_targets in zip(evaluation.predictions, evaluation.label_ids):
            logits, pred_boxes = torch.as_tensor(batch[1]), torch.as_tensor(batch[2])
            sizes = [self.size] * len(logits)
            extra = {"top_k": logits.shape[1]} if self.keeps_top_k else {}
            outputs = ModelOutput(logits=logits, pred_boxes=pred_boxes)
            for result in self.image_processor.post_process_object_detection(outputs, threshold=0.0,
                                                                             target_sizes=sizes, **extra):
                predictions.append({key: result[key] for key in ("boxes", "scores", "labels")})
            for target in torch.as_tensor(batch_targets):
                target = target[target[:, 0] != PADDING]
                targets.append({"boxes": _absolute_xyxy(target[:, 1:], self.size), "labels": target[:, 0].long()})
        return coco_metrics(predictions, targets, self.id2label)
