"""Segmentation metrics for Trainer: mIoU, mean accuracy, overall accuracy and per-class IoU, with the formulas of
the `mean_iou` evaluate module shipped here (the offline copy of the Hub's `evaluate.load("mean_iou")`).

Trainer's evaluation keeps what `preprocess_logits_for_metrics` returns for every batch and gathers it over
processes. Full prediction maps would not fit (ADE20K: 2,000 maps of 512 x 512) and maps of different sizes cannot be
gathered, so each batch is reduced to its per-class pixel areas (intersection, union, predicted, true: `(B, 4, C)`)
right away, counted exactly as the module's `intersect_and_union` counts them; `compute_metrics` sums them and applies
the module's `areas_to_metrics`. `tests/test_segmentation.py` checks both paths against a hand computation.
"""

from pathlib import Path

import numpy as np
import torch

from .mean_iou.mean_iou import areas_to_metrics

LOCAL_MEAN_IOU = str(Path(__file__).parent / "mean_iou")


def pixel_areas(predictions: torch.Tensor, labels: torch.Tensor, num_labels: int, ignore_index: int) -> torch.Tensor:
    """Per sample `(area_intersect, area_union, area_pred_label, area_label)`: `(B, 4, num_labels)` int64.

    `predictions` and `labels` `(B, H, W)` class ids; pixels whose label is `ignore_index` are left out.
    """
    areas = []
    for prediction, label in zip(predictions, labels):
        keep = label != ignore_index
        prediction, label = prediction[keep].long(), label[keep].long()
        counts = [torch.bincount(values, minlength=num_labels)[:num_labels]
                  for values in (prediction[prediction == label], prediction, label)]
        intersect, predicted, true = counts
        areas.append(torch.stack([intersect, predicted + true - intersect, predicted, true]))
    return torch.stack(areas)


class SegmentationMetrics:
    """`preprocess_logits_for_metrics` (logits -> per-sample areas) and `compute_metrics` (areas -> metrics).

    Returns `mean_iou`, `mean_accuracy`, `overall_accuracy` and `iou_<class name>` per class (NaN for a class absent
    from both predictions and labels, left out of the means).
    """

    def __init__(self, id2label: dict[int, str], ignore_index: int = 255):
        self.id2label = {int(key): name for key, name in id2label.items()}
        self.ignore_index = ignore_index

    def preprocess_logits_for_metrics(self, logits, labels) -> torch.Tensor:
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = torch.nn.functional.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                                     align_corners=False)
        return pixel_areas(logits.argmax(dim=1), labels, len(self.id2label), self.ignore_index)

    def __call__(self, eval_prediction) -> dict[str, float]:
        totals = np.asarray(eval_prediction.predictions, dtype=np.float64).sum(axis=0)
        metrics = areas_to_metrics(*totals)
        result = {name: float(metrics[name]) for name in ("mean_iou", "mean_accuracy", "overall_accuracy")}
        result.update({f"iou_{self.id2label[index]}": float(value)
                       for index, value in enumerate(metrics["per_category_iou"])})
        return result
