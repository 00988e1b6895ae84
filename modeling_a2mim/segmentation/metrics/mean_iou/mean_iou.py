"""Mean IoU as an `evaluate` module: the offline stand-in for the Hub's `evaluate.load("mean_iou")`.

Same inputs, options and outputs as the Hub metric: `predictions` and `references` are lists of 2-D integer maps,
`num_labels` and `ignore_index` are required, `nan_to_num`, `label_map` and `reduce_labels` optional. Returns
`mean_iou`, `mean_accuracy`, `overall_accuracy`, `per_category_iou` and `per_category_accuracy`. Self-contained (no
imports from its package): `evaluate.load` copies this file alone.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Mean Intersection-over-Union: per class, the overlap of predicted and true pixels over their union."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 2-D `ndarray`): Predicted segmentation maps of class ids.
    references (`list` of 2-D `ndarray`): Ground-truth segmentation maps.
    num_labels (`int`): Number of classes.
    ignore_index (`int`): Reference value that is left out of every count (e.g. 255).
    nan_to_num (`int`, *optional*): Replace NaN (classes absent from predictions and references) by this value.
    label_map (`dict`, *optional*): Old reference id -> new id, applied first.
    reduce_labels (`bool`, defaults to `False`): Reference 0 becomes `ignore_index` (255) and the others drop by 1.
Returns:
    mean_iou, mean_accuracy, overall_accuracy (`float`), per_category_iou, per_category_accuracy (`ndarray`).
"""


def intersect_and_union(pred_label, label, num_labels, ignore_index, label_map=None, reduce_labels=False):
    """`(area_intersect, area_union, area_pred_label, area_label)`, each `(num_labels,)`, of one map pair."""
    label = np.array(label)
    if label_map is not None:
        remapped = label.copy()
        for old_id, new_id in label_map.items():
            remapped[label == old_id] = new_id
        label = remapped
    pred_label = np.array(pred_label)
    if reduce_labels:
        label = label.astype(np.int64)
        label[label == 0] = 255
        label = label - 1
        label[label == 254] = 255
    keep = np.not_equal(label, ignore_index)
    pred_label, label = pred_label[keep], label[keep]
    intersect = pred_label[pred_label == label]
    bins = {"bins": num_labels, "range": (0, num_labels - 1)}
    area_intersect = np.histogram(intersect, **bins)[0]
    area_pred_label = np.histogram(pred_label, **bins)[0]
    area_label = np.histogram(label, **bins)[0]
    return area_intersect, area_pred_label + area_label - area_intersect, area_pred_label, area_label


def areas_to_metrics(area_intersect, area_union, area_pred_label, area_label, nan_to_num=None) -> dict:
    """The metrics of summed per-class areas (`(num_labels,)` each): IoU and accuracy per class, their NaN-skipping
    means, and the overall pixel accuracy. A class absent from predictions and references has NaN IoU/accuracy."""
    area_intersect, area_union = np.asarray(area_intersect, np.float64), np.asarray(area_union, np.float64)
    area_label = np.asarray(area_label, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = area_intersect / area_union
        accuracy = area_intersect / area_label
        metrics = {
            "mean_iou": np.nanmean(iou) if not np.isnan(iou).all() else np.nan,
            "mean_accuracy": np.nanmean(accuracy) if not np.isnan(accuracy).all() else np.nan,
            "overall_accuracy": area_intersect.sum() / area_label.sum(),
            "per_category_iou": iou,
            "per_category_accuracy": accuracy,
        }
    if nan_to_num is not None:
        metrics = {name: np.nan_to_num(value, nan=nan_to_num) for name, value in metrics.items()}
    return metrics


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanIoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("uint16"))),
                "references": datasets.Sequence(datasets.Sequence(datasets.Value("uint16"))),
            }),
        )

    def _compute(self, predictions, references, num_labels, ignore_index, nan_to_num=None, label_map=None,
                 reduce_labels=False):
        totals = np.zeros((4, num_labels), dtype=np.float64)
        for prediction, reference in zip(predictions, references):
            totals += np.stack(intersect_and_union(prediction, reference, num_labels, ignore_index, label_map,
                                                   reduce_labels))
        return areas_to_metrics(*totals, nan_to_num=nan_to_num)
