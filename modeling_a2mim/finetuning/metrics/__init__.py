"""Top-1 / top-k accuracy through `evaluate`: the Hub's "accuracy" metric, or the shipped copy when offline."""

import logging
from pathlib import Path

import evaluate
import numpy as np

logger = logging.getLogger(__name__)

LOCAL_ACCURACY = str(Path(__file__).parent / "accuracy")


def load_accuracy_metric(prefer_hub: bool = True) -> evaluate.EvaluationModule:
    """`evaluate.load("accuracy")`, falling back to the local module (same numbers) when the Hub is unreachable."""
    if prefer_hub:
        try:
            return evaluate.load("accuracy")
        except Exception as error:  # offline, firewalled, or HF_HUB_OFFLINE: any failure means "use the copy"
            logger.info("evaluate.load('accuracy') failed (%s); using the local accuracy module.", error)
    return evaluate.load(LOCAL_ACCURACY)


def top_k_hits(logits: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """Per sample, the reference when it is among the `k` highest logits, else the top-1 prediction.

    Scoring these "predictions" with plain accuracy gives top-k accuracy. `logits (N, K)`, `references (N,)`.
    """
    k = min(k, logits.shape[-1])
    top_k = np.argsort(-logits, axis=-1)[:, :k]
    hit = (top_k == references[:, None]).any(axis=-1)
    return np.where(hit, references, top_k[:, 0])


class AccuracyMetrics:
    """`compute_metrics` for Trainer: `{"accuracy": top-1, "top5_accuracy": top-5}` from logits and labels."""

    def __init__(self, metric: evaluate.EvaluationModule | None = None, top_k: int = 5):
        self.metric = metric if metric is not None else load_accuracy_metric()
        self.top_k = top_k

    def __call__(self, eval_prediction) -> dict[str, float]:
        logits = np.asarray(eval_prediction.predictions)
        references = np.asarray(eval_prediction.label_ids)
        top_1 = self.metric.compute(predictions=logits.argmax(-1), references=references)["accuracy"]
        top_k = self.metric.compute(
            predictions=top_k_hits(logits, references, self.top_k), references=references
        )["accuracy"]
        return {"accuracy": top_1, f"top{self.top_k}_accuracy": top_k}
