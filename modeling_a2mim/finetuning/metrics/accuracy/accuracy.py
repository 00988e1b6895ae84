"""Accuracy as an `evaluate` module: the offline stand-in for the Hub's `evaluate.load("accuracy")`.

Same inputs and output as the Hub metric: integer `predictions` and `references` -> `{"accuracy": float}` (the
fraction of equal pairs, or their count with `normalize=False`; optional `sample_weight`).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy: the proportion of predictions equal to their reference."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground truth labels.
    normalize (`bool`, defaults to `True`): Return the fraction (True) or the number (False) of correct predictions.
    sample_weight (`list` of `float`, *optional*): Per-sample weights.
Returns:
    accuracy (`float`): Fraction (or number) of correct predictions.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        correct = (np.asarray(predictions) == np.asarray(references)).astype(np.float64)
        weights = np.ones_like(correct) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        total = float((correct * weights).sum())
        return {"accuracy": total / float(weights.sum()) if normalize else total}
