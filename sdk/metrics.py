"""Classification metrics in plain numpy."""

from __future__ import annotations

import numpy as np


def accuracy(truth, predicted) -> float:
    """Fraction of predictions equal to the truth (nan when empty)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float(np.mean(truth == predicted)) if truth.size else float("nan")


def confusion(truth, predicted, num_classes: int) -> np.ndarray:
    """Counts[t, p] of true class t predicted as p."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(truth), np.asarray(predicted)), 1)
    return counts


def scores(truth, predicted, num_classes: int) -> dict:
    """Accuracy and macro-F1 together."""
    return {"accuracy": accuracy(truth, predicted), "macro_f1": macro_f1(truth, predicted, num_classes)}


def macro_f1(truth, predicted, num_classes: int) -> float:
    """Unweighted mean F1 over the classes present in truth or predictions."""
    counts = confusion(truth, predicted, num_classes)
    tp = np.diag(counts).astype(float)
    support = counts.sum(axis=1) + counts.sum(axis=0)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(2 * tp[present] / support[present]))
