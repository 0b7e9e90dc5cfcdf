"""Activity-transition counts carried in encrypted uploads (docs/encrypted-updates.md, "Transition counts").

A job with ``transition_counts`` on takes uploads of ``shared_values + (K + 1) K``
values: after the shared-layer update, the device's transition counts
(``sdk.decoding.transition_counts``, row-major) divided by its number of
windows. The weighted mean the key service returns, times the round's total
weight, is the round's summed table (each device's counts scaled to its upload
weight, which is its number of windows up to ``max_weight``); each published
model version carries the mean of the rounds' tables so far. No device's
counts are ever seen on their own.
"""

from __future__ import annotations

import numpy as np

from cloud.db import Job
from sdk.decoding import table_values


def upload_values(job: Job) -> int:
    """Values in one of the job's uploads: the shared weights, then the transition counts if it carries them."""
    return job.shared_values + (table_values(job.transition_classes) if job.transition_classes else 0)


def published_counts(previous: np.ndarray | None, rounds_before: int, tail_mean: np.ndarray, total_weight: int,
                     classes: int) -> np.ndarray:
    """The table a new model version carries: the mean, over the rounds published so far, of each round's summed
    counts (this round's: the tail's weighted mean times the total weight), so it stays one round's worth of
    counts. A device may lie in its counts as in its update, by at most its clip times its weight per cell; a
    table below zero is clamped to zero."""
    added = np.asarray(tail_mean, np.float64).reshape(classes + 1, classes) * total_weight
    before = np.zeros_like(added) if previous is None else previous * rounds_before
    return np.maximum((before + added) / (rounds_before + 1), 0.0)
