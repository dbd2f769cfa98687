"""Classification metrics and convergence figures, from predicted probabilities and labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, n_classes: int
) -> dict[str, object]:
    """Accuracy, macro-F1, log-loss, per-class accuracy and the confusion matrix (rows: truth)."""
    pred = probs.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    tp = np.diag(confusion).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    eps = 1e-7
    picked = np.clip(probs[np.arange(len(labels)), labels], eps, 1.0)
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "log_loss": float(-np.log(picked).mean()) if len(labels) else float("nan"),
        "per_class_accuracy": [
            float(r) if s else float("nan") for r, s in zip(recall, support, strict=True)
        ],
        "confusion": confusion.tolist(),
    }


def epochs_to_fraction(curve: Sequence[float], fraction: float = 0.9) -> int | None:
    """First epoch (1-based) whose value reaches ``fraction`` of the curve's best value."""
    if not curve:
        return None
    target = fraction * max(curve)
    return next(i + 1 for i, v in enumerate(curve) if v >= target)


def curve_area(curve: Sequence[float]) -> float | None:
    """Area under a per-epoch curve, normalised by its length (the mean): higher is faster."""
    return float(np.mean(curve)) if curve else None
