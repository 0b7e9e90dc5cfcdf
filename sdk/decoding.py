"""Activity-sequence decoding: a causal transition model over the bundle's labels.

Consecutive windows of a recording rarely change activity, and when they do,
only in some ways (a Timed-Up-and-Go goes seated, standing up, walking,
turning, ...). A transition model (how often label j follows label i, and
how sequences start) is estimated from labelled sequences; on the device it
filters the per-window class probabilities forward in time (an HMM forward
pass): each window's decision uses that window and the ones before it only,
so it runs on a stream.

Counts add up: the federation sums every device's counts (``transition_counts``)
and ships their total; no device's own counts need to leave it in clear
(docs/bundle.md, "Transition model").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def table_values(num_classes: int) -> int:
    """Values in a table of transition counts: (num_classes + 1) x num_classes."""
    return (num_classes + 1) * num_classes


def transition_counts(labels, sequence, num_classes: int) -> np.ndarray:
    """Counts of one device's labelled windows, (num_classes + 1, num_classes): row 0 counts the first
    label of each sequence, row 1 + i counts the labels that follow label i. ``sequence`` gives each
    window's recording (windows of one recording consecutive and in time order)."""
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    seq = np.asarray(sequence).reshape(-1)
    if y.shape != seq.shape:
        raise ValueError(f"{y.size} labels but {seq.size} sequence ids")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be integers in [0, {num_classes - 1}]")
    counts = np.zeros((num_classes + 1, num_classes))
    starts = np.ones(y.size, bool)
    starts[1:] = seq[1:] != seq[:-1]
    np.add.at(counts[0], y[starts], 1)
    follows = ~starts[1:]
    np.add.at(counts, (1 + y[:-1][follows], y[1:][follows]), 1)
    return counts


@dataclass(frozen=True)
class TransitionModel:
    """Start probabilities (classes,) and transition probabilities (classes, classes), rows summing to 1."""

    start: np.ndarray
    transitions: np.ndarray

    @classmethod
    def from_counts(cls, counts, smoothing: float = 1.0) -> "TransitionModel":
        """From summed ``transition_counts`` (add-``smoothing`` to every cell, so nothing is impossible)."""
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] != c.shape[1] + 1 or not np.all(np.isfinite(c)) or c.min() < 0:
            raise ValueError(f"counts must be non-negative, of shape (classes + 1, classes), got {c.shape}")
        c = c + smoothing
        probabilities = c / c.sum(axis=1, keepdims=True)
        return cls(probabilities[0], probabilities[1:])


class ForwardFilter:
    """Streaming decoder: ``update(probs)`` takes one window's class probabilities and returns the filtered
    ones given every window since ``reset()``."""

    def __init__(self, model: TransitionModel) -> None:
        self.model = model
        self._belief: np.ndarray | None = None

    def reset(self) -> None:
        """A new recording starts."""
        self._belief = None

    def update(self, probs) -> np.ndarray:
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, None)
        prior = self.model.start if self._belief is None else self._belief @ self.model.transitions
        belief = prior * p
        self._belief = belief / belief.sum()
        return self._belief


def decode(probs, sequence, model: TransitionModel) -> np.ndarray:
    """Filtered class probabilities of windows (n, classes), each recording (``sequence`` id) filtered from its
    first window on; the same as feeding them one by one to a ForwardFilter."""
    p = np.asarray(probs, dtype=np.float64)
    seq = np.asarray(sequence).reshape(-1)
    if p.ndim != 2 or p.shape[0] != seq.size or p.shape[1] != model.start.size:
        raise ValueError(f"probabilities must be (windows, {model.start.size}) with one sequence id per window")
    stream, out = ForwardFilter(model), np.empty_like(p)
    for i in range(len(p)):
        if i == 0 or seq[i] != seq[i - 1]:
            stream.reset()
        out[i] = stream.update(p[i])
    return out
