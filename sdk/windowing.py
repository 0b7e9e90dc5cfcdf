"""Raw IMU samples to fixed-rate windows, in batch or as a stream.

A stream of (timestamp, 6 channels, optional label) samples is cleaned
(samples that share a timestamp are averaged), split where consecutive
samples are further apart than ``max_gap_s``, resampled onto a regular grid
by linear interpolation, and cut into windows with 50% overlap whose label
is the majority label of their samples (``label_share`` keeps the share of
the window's labelled samples that carry it).

Batch use is one ``push`` followed by ``flush``; feeding the same samples in
any number of chunks gives identical windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
NO_LABEL = -1


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut: length in samples, sampling rate, overlap, gap."""

    length: int = 50
    rate_hz: float = 50.0
    overlap: float = 0.5
    max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"window length must be at least 2 samples, got {self.length}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.max_gap_s <= 0:
            raise ValueError(f"max_gap_s must be positive, got {self.max_gap_s}")

    @property
    def hop(self) -> int:
        """Samples between the starts of consecutive windows."""
        return max(1, int(round(self.length * (1 - self.overlap))))


@dataclass
class Windows:
    """Windows of shape (n, length, 6), labels (n,), start times (n,) and label shares (n,).

    ``label_share`` is the share of a window's labelled samples that carry its
    label (1.0 for a window of one activity; NaN when it has no label).
    """

    data: np.ndarray
    labels: np.ndarray
    start_s: np.ndarray
    label_share: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def empty(spec: WindowSpec) -> "Windows":
        return Windows(
            np.zeros((0, spec.length, len(CHANNELS)), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
        )

    @staticmethod
    def concat(parts: list["Windows"], spec: WindowSpec) -> "Windows":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Windows.empty(spec)
        return Windows(
            np.concatenate([p.data for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.start_s for p in parts]),
            np.concatenate([p.label_share for p in parts]),
        )


def majority_label(labels: np.ndarray) -> tuple[int, float]:
    """Most frequent label (the smallest on a tie) and its share of the known labels.

    (NO_LABEL, NaN) when no label is known.
    """
    known = labels[labels != NO_LABEL]
    if known.size == 0:
        return NO_LABEL, float("nan")
    counts = np.bincount(known)
    label = int(np.argmax(counts))
    return label, float(counts[label] / known.size)


class StreamWindower:
    """Turns samples into windows as they arrive.

    ``push`` takes timestamps in seconds (non-decreasing), values of shape
    (n, 6) and optional integer labels, and returns the windows completed so
    far; ``flush`` ends the stream and drops an incomplete last window.
    """

    def __init__(self, spec: WindowSpec | None = None) -> None:
        self.spec = spec or WindowSpec()
        self._reset()

    def _reset(self) -> None:
        self._last_t: float | None = None
        # A timestamp group still open: it may continue in the next chunk.
        self._pending: tuple[float, np.ndarray, int, int] | None = None
        # The last committed sample of the open segment: (t, values, label).
        self._anchor: tuple[float, np.ndarray, int] | None = None
        self._t0 = 0.0
        self._next_k = 0
        self._rows: list[np.ndarray] = []
        self._row_labels: list[int] = []
        self._row_start_k = 0

    def push(self, timestamps, values, labels=None) -> Windows:
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != len(CHANNELS):
            raise ValueError(f"values must have shape (n, {len(CHANNELS)}), got {v.shape}")
        if v.shape[0] != t.shape[0]:
            raise ValueError(f"{t.shape[0]} timestamps but {v.shape[0]} rows of values")
        lab = (
            np.full(t.shape[0], NO_LABEL, np.int64)
            if labels is None
            else np.asarray(labels, dtype=np.int64).reshape(-1)
        )
        if lab.shape[0] != t.shape[0]:
            raise ValueError(f"{t.shape[0]} timestamps but {lab.shape[0]} labels")
        if t.size == 0:
            return Windows.empty(self.spec)
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise ValueError("timestamps and values must be finite numbers")
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(f"timestamp goes backwards at sample {i}: {t[i]} after {t[i - 1]}")
        if self._last_t is not None and t[0] < self._last_t:
            raise ValueError(f"timestamp goes backwards: {t[0]} after {self._last_t}")
        self._last_t = float(t[-1])

        gt, gv, gcount, glab = self._group_repeats(t, v, lab)
        # The last group stays open; everything before it is committed.
        self._pending = (gt[-1], gv[-1] * gcount[-1], int(gcount[-1]), int(glab[-1]))
        return self._commit(gt[:-1], gv[:-1], glab[:-1])

    def flush(self) -> Windows:
        """Ends the stream: commits the last samples and resets the state."""
        out = Windows.empty(self.spec)
        if self._pending is not None:
            t, vsum, count, label = self._pending
            self._pending = None
            out = self._commit(np.array([t]), (vsum / count)[None, :], np.array([label]))
        self._reset()
        return out

    def _group_repeats(self, t, v, lab):
        if self._pending is not None:
            pt, pvsum, pcount, plab = self._pending
            t = np.concatenate([[pt], t])
            v = np.concatenate([pvsum[None, :] / pcount, v])
            weights = np.concatenate([[pcount], np.ones(len(lab), np.int64)])
            lab = np.concatenate([[plab], lab])
        else:
            weights = np.ones(t.shape[0], np.int64)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(t) > 0) + 1])
        count = np.add.reduceat(weights, starts)
        vsum = np.add.reduceat(v * weights[:, None], starts, axis=0)
        return t[starts], vsum / count[:, None], count, lab[starts]

    def _commit(self, t, v, lab) -> Windows:
        spec = self.spec
        parts: list[Windows] = []
        start = 0
        if self._anchor is not None and t.size:
            if t[0] - self._anchor[0] > spec.max_gap_s:
                parts.append(self._end_segment())
        gaps = np.flatnonzero(np.diff(t) > spec.max_gap_s) + 1
        for stop in list(gaps) + [t.size]:
            if start < stop:
                parts.append(self._extend_segment(t[start:stop], v[start:stop], lab[start:stop]))
            if stop < t.size:
                parts.append(self._end_segment())
            start = stop
        return Windows.concat(parts, spec)

    def _end_segment(self) -> Windows:
        self._anchor = None
        self._rows, self._row_labels = [], []
        return Windows.empty(self.spec)

    def _extend_segment(self, t, v, lab) -> Windows:
        spec = self.spec
        if self._anchor is None:
            self._t0 = float(t[0])
            self._next_k = 0
            self._row_start_k = 0
        else:
            at, av, al = self._anchor
            t = np.concatenate([[at], t])
            v = np.concatenate([av[None, :], v])
            lab = np.concatenate([[al], lab])
        self._anchor = (float(t[-1]), v[-1].copy(), int(lab[-1]))
        step = 1.0 / spec.rate_hz
        last_k = int(np.floor((t[-1] - self._t0) / step))
        while self._t0 + last_k * step > t[-1]:
            last_k -= 1
        if last_k < self._next_k:
            return Windows.empty(spec)
        k = np.arange(self._next_k, last_k + 1)
        grid = self._t0 + k * step
        self._next_k = last_k + 1
        left = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
        right = np.minimum(left + 1, t.size - 1)
        span = t[right] - t[left]
        frac = np.where(span > 0, (grid - t[left]) / np.where(span > 0, span, 1.0), 0.0)
        rows = v[left] + (v[right] - v[left]) * frac[:, None]
        self._rows.extend(rows)
        self._row_labels.extend(lab[left].tolist())
        return self._emit()

    def _emit(self) -> Windows:
        spec = self.spec
        n = (len(self._rows) - spec.length) // spec.hop + 1 if len(self._rows) >= spec.length else 0
        if n <= 0:
            return Windows.empty(spec)
        rows = np.asarray(self._rows, dtype=np.float64)
        labels = np.asarray(self._row_labels, dtype=np.int64)
        starts = np.arange(n) * spec.hop
        data = np.stack([rows[s : s + spec.length] for s in starts]).astype(np.float32)
        majorities = [majority_label(labels[s : s + spec.length]) for s in starts]
        win_labels = np.array([label for label, _ in majorities], np.int64)
        shares = np.array([share for _, share in majorities])
        start_s = self._t0 + (self._row_start_k + starts) / spec.rate_hz
        consumed = n * spec.hop
        self._rows = self._rows[consumed:]
        self._row_labels = self._row_labels[consumed:]
        self._row_start_k += consumed
        return Windows(data, win_labels, start_s, shares)


def make_windows(timestamps, values, labels=None, spec: WindowSpec | None = None) -> Windows:
    """Windows of a whole recording (timestamps in seconds)."""
    windower = StreamWindower(spec)
    first = windower.push(timestamps, values, labels)
    return Windows.concat([first, windower.flush()], windower.spec)
