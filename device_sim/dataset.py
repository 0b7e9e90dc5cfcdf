"""Windowed datasets: one DeviceData per simulated device."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sdk.model_spec import InputSpec
from sdk.windowing import CHANNELS, Windows, WindowSpec


NEAR_TIE_SHARE = 0.6  # below this share of a window's samples, its majority label is a near tie


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names it."""


@dataclass
class DeviceData:
    """The labelled windows of one device (one subject wearing one sensor).

    ``execution`` gives, per window, the chronological index of the recording
    session it came from; within-subject splits cut along it. ``label_share``
    gives, per window, the share of its samples that carry its label (None
    for datasets published already windowed).
    """

    device_id: str
    subject: str
    device: str
    windows: np.ndarray
    labels: np.ndarray
    execution: np.ndarray
    metadata: dict = field(default_factory=dict)
    label_share: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, mask: np.ndarray) -> "DeviceData":
        return DeviceData(
            self.device_id,
            self.subject,
            self.device,
            self.windows[mask],
            self.labels[mask],
            self.execution[mask],
            self.metadata,
            None if self.label_share is None else self.label_share[mask],
        )

    @property
    def executions(self) -> list[int]:
        return sorted(int(e) for e in np.unique(self.execution))

    def at_label_change(self) -> np.ndarray:
        """Mask of windows whose label differs from the previous or next window of the same execution."""
        same_execution = self.execution[1:] == self.execution[:-1]
        change = same_execution & (self.labels[1:] != self.labels[:-1])
        mask = np.zeros(len(self), bool)
        mask[1:] |= change
        mask[:-1] |= change
        return mask

    def near_tie(self) -> np.ndarray | None:
        """Mask of windows whose label covers less than NEAR_TIE_SHARE of their samples (None if unknown)."""
        return None if self.label_share is None else self.label_share < NEAR_TIE_SHARE


class LazyDevices(Sequence):
    """Devices made on demand by ``make(index)`` (deterministic): memory holds only the last ``cache`` made.

    Their ids and subjects are known without making them.
    """

    def __init__(self, ids: list[str], subjects: list[str], make: Callable[[int], DeviceData], cache: int = 16):
        if len(ids) != len(subjects):
            raise ValueError("one subject per device id")
        self.ids, self.subjects, self._make, self._size = list(ids), list(subjects), make, cache
        self._cache: OrderedDict[int, DeviceData] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"device index {index} out of range for {len(self)} devices")
        index %= len(self)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        device = self._cache[index] = self._make(index)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return device


@dataclass
class Dataset:
    """Devices sharing one label set (a list, or LazyDevices made on demand): windows cut from recordings by
    ``spec``, or (``spec`` None) records in no order, such as feature vectors, that ``input`` describes."""

    name: str
    label_names: tuple[str, ...]
    spec: WindowSpec | None
    devices: Sequence[DeviceData]
    input: InputSpec | None = None

    def input_spec(self) -> InputSpec:
        """What a model of this data takes: windows of the spec's length and the IMU channels, or ``input``."""
        if self.spec is None:
            return self.input
        return InputSpec("window", (self.spec.length, len(CHANNELS)), self.spec.rate_hz, CHANNELS)

    @property
    def lazy(self) -> bool:
        return isinstance(self.devices, LazyDevices)

    @property
    def catalogue(self) -> list[tuple[str, str]]:
        """(device id, subject) of every device, in order, without making lazy ones."""
        if isinstance(self.devices, LazyDevices):
            return list(zip(self.devices.ids, self.devices.subjects))
        return [(d.device_id, d.subject) for d in self.devices]

    @property
    def subjects(self) -> list[str]:
        return sorted({subject for _, subject in self.catalogue})

    def by_subject(self, subjects) -> list[DeviceData]:
        wanted = set(subjects)
        return [d for d in self.devices if d.subject in wanted]


def device_from_executions(
    device_id: str,
    subject: str,
    device: str,
    executions: list[Windows],
    metadata: dict | None = None,
) -> DeviceData:
    """Stacks the windows of a device's executions, in chronological order."""
    parts = [w for w in executions if len(w)]
    if not parts:
        raise DataError(f"{device_id}: no complete window in any execution")
    return DeviceData(
        device_id,
        subject,
        device,
        np.concatenate([w.data for w in parts]),
        np.concatenate([w.labels for w in parts]),
        np.concatenate([np.full(len(w), i) for i, w in enumerate(parts)]),
        metadata or {},
        np.concatenate([w.label_share for w in parts]),
    )


def device_from_records(device_id: str, inputs: np.ndarray, labels: np.ndarray, seed: int = 0,
                        parts: int = 5, metadata: dict | None = None) -> DeviceData:
    """A device (or silo) of records in no particular order: shuffled by ``seed`` into ``parts`` equal
    parts, its "executions", so that the within-subject split trains on the first 60% of them."""
    order = np.random.default_rng(seed).permutation(len(labels))
    if len(order) < parts:
        raise DataError(f"{device_id}: {len(order)} records; at least {parts} are needed to split them")
    execution = np.arange(len(order)) * parts // len(order)
    return DeviceData(device_id, device_id, "silo", np.asarray(inputs, np.float32)[order], np.asarray(labels)[order],
                      execution, metadata or {})


def pooled(devices: list[DeviceData]) -> tuple[np.ndarray, np.ndarray]:
    """All windows and labels of several devices."""
    if not devices:
        raise ValueError("no devices to pool")
    return (
        np.concatenate([d.windows for d in devices]),
        np.concatenate([d.labels for d in devices]),
    )


def normalisation(windows: np.ndarray | Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (per-feature) mean and standard deviation of windows (feature vectors): one array, or many
    taken one at a time."""
    count, mean, m2 = 0, 0.0, 0.0
    for part in [windows] if isinstance(windows, np.ndarray) else windows:
        flat = part.reshape(-1, part.shape[-1]).astype(np.float64)
        n = len(flat)
        if not n:
            continue
        part_mean = flat.mean(axis=0)
        delta = part_mean - mean  # Chan et al.'s pairwise update of the mean and squared deviations
        m2 = m2 + ((flat - part_mean) ** 2).sum(axis=0) + delta**2 * count * n / (count + n)
        mean, count = mean + delta * n / (count + n), count + n
    if not count:
        raise ValueError("no windows to normalise")
    return mean, np.maximum(np.sqrt(m2 / count), 1e-6)


def find_root(path: str | Path, marker: str, subfolder: str, how_to_get: str) -> Path:
    """`path` or `path/subfolder`, whichever holds the file `marker`; DataError otherwise."""
    path = Path(path)
    for candidate in (path, path / subfolder):
        if (candidate / marker).is_file():
            return candidate
    raise DataError(f"{path}: {how_to_get}")
