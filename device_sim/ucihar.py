"""Loader of the UCI HAR dataset (Anguita et al., 2013) in its published layout.

    UCI HAR Dataset/activity_labels.txt
    UCI HAR Dataset/{train,test}/subject_{split}.txt
    UCI HAR Dataset/{train,test}/y_{split}.txt
    UCI HAR Dataset/{train,test}/Inertial Signals/{total_acc,body_gyro}_{x,y,z}_{split}.txt

The signals are already 128-sample windows at 50 Hz with 50% overlap. Total
acceleration is in g and converted to m/s^2; body gyroscope is in rad/s.
The dataset has no sessions: each subject's windows, in published order, are
cut into ten chronological blocks that stand in for executions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_sim.dataset import DataError, Dataset, DeviceData, find_root
from sdk.windowing import WindowSpec

STANDARD_GRAVITY = 9.80665
SPEC = WindowSpec(length=128, rate_hz=50.0)
SIGNALS = ("total_acc_x", "total_acc_y", "total_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z")
BLOCKS = 10


def data_root(path: str | Path) -> Path:
    """The 'UCI HAR Dataset' folder, given it or the folder that holds it."""
    return find_root(path, "activity_labels.txt", "UCI HAR Dataset",
                     "not a UCI HAR dataset (no activity_labels.txt here or in 'UCI HAR Dataset/'). Download "
                     "'UCI HAR Dataset.zip' from the UCI Machine Learning Repository (or use --download) and "
                     "pass its folder.")


def _read_matrix(path: Path, columns: int | None, dtype=float) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing")
    text = path.read_text()
    if not text.strip():
        raise DataError(f"{path}: empty file")
    try:
        data = np.loadtxt(text.splitlines(), dtype=dtype, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: malformed ({exc})") from exc
    if columns is not None and data.shape[1] != columns:
        raise DataError(f"{path}: expected {columns} values per row, found {data.shape[1]}")
    return data


def read_labels(root: Path) -> tuple[str, ...]:
    """Activity names in label order (1-based ids in the file)."""
    path = root / "activity_labels.txt"
    names: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}, line {line_no}: expected '<id> <NAME>'")
        names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise DataError(f"{path}: activity ids must be 1..n")
    return tuple(names[i] for i in sorted(names))


def _read_split(root: Path, split: str, num_labels: int):
    folder = root / split
    subjects = _read_matrix(folder / f"subject_{split}.txt", 1, int)[:, 0]
    labels = _read_matrix(folder / f"y_{split}.txt", 1, int)[:, 0]
    signals = [
        _read_matrix(folder / "Inertial Signals" / f"{name}_{split}.txt", SPEC.length)
        for name in SIGNALS
    ]
    counts = {len(subjects), len(labels), *(len(s) for s in signals)}
    if len(counts) != 1:
        raise DataError(f"{folder}: subject, label and signal files have different row counts")
    bad = np.flatnonzero((labels < 1) | (labels > num_labels))
    if bad.size:
        raise DataError(
            f"{folder / f'y_{split}.txt'}, line {bad[0] + 1}: unknown label {labels[bad[0]]}"
        )
    windows = np.stack(signals, axis=2)
    windows[:, :, :3] *= STANDARD_GRAVITY
    return subjects, labels - 1, windows.astype(np.float32)


def load(path: str | Path) -> Dataset:
    """All subjects of both published splits, one device each."""
    root = data_root(path)
    label_names = read_labels(root)
    parts = [_read_split(root, split, len(label_names)) for split in ("train", "test")]
    subjects = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    windows = np.concatenate([p[2] for p in parts])
    devices = []
    for subject in sorted(set(subjects.tolist())):
        idx = np.flatnonzero(subjects == subject)
        block = (np.arange(idx.size) * BLOCKS) // idx.size
        name = f"subject{subject:02d}"
        devices.append(
            DeviceData(f"{name}-waist", name, "waist", windows[idx], labels[idx], block, {})
        )
    return Dataset("uci-har", label_names, SPEC, devices)
