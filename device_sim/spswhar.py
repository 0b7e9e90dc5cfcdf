"""Loader of the sp-sw-har dataset (Matey-Sanz, Casteleyn and Granell, 2023).

Published layout::

    DATA/subjects_info.csv
    DATA/executions_info.csv
    DATA/sXX/sXX_YY_sw.csv   (smartwatch)
    DATA/sXX/sXX_YY_sp.csv   (smartphone)

Each execution CSV: x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label,
accelerometer in m/s^2, gyroscope in rad/s, timestamp in Unix milliseconds.
Licence: CC BY 4.0, doi:10.5281/zenodo.8398688.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from device_sim.dataset import DataError, Dataset, DeviceData, device_from_executions, find_root
from sdk.windowing import WindowSpec, make_windows

LABELS = ("SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN")
COLUMNS = ("x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro", "timestamp", "label")
DEVICES = {"watch": "sw", "phone": "sp"}
SPEC = WindowSpec(length=50, rate_hz=50.0)
_EXECUTION_FILE = re.compile(r"^(s\d+)_(\d+)_(sw|sp)\.csv$")


def data_root(path: str | Path) -> Path:
    """The DATA folder, given it or the dataset folder above it."""
    return find_root(path, "subjects_info.csv", "DATA",
                     "not an sp-sw-har dataset (no subjects_info.csv here or in DATA/). Download it from "
                     "doi:10.5281/zenodo.8398688 (or use --download) and pass its folder.")


def read_execution(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps (s, from the first sample), values (n, 6) and label indices."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not rows:
        raise DataError(f"{path}: empty file, expected a header {','.join(COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}")
    if len(rows) < 2:
        raise DataError(f"{path}: no samples after the header")
    index = [header.index(c) for c in COLUMNS]
    label_of = {name: i for i, name in enumerate(LABELS)}
    values = np.empty((len(rows) - 1, 6))
    stamps = np.empty(len(rows) - 1)
    labels = np.empty(len(rows) - 1, np.int64)
    for line, row in enumerate(rows[1:], start=2):
        try:
            fields = [row[i] for i in index]
            values[line - 2] = [float(v) for v in fields[:6]]
            stamps[line - 2] = float(fields[6])
        except (IndexError, ValueError) as exc:
            raise DataError(f"{path}, line {line}: malformed row ({exc})") from exc
        label = fields[7].strip()
        if label not in label_of:
            raise DataError(
                f"{path}, line {line}: unknown label {label!r}; known: {', '.join(LABELS)}"
            )
        labels[line - 2] = label_of[label]
    back = np.flatnonzero(np.diff(stamps) < 0)
    if back.size:
        line = int(back[0]) + 3
        raise DataError(f"{path}, line {line}: timestamp goes backwards ({stamps[back[0] + 1]:.0f} ms)")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path}: non-finite sensor values")
    return (stamps - stamps[0]) / 1000.0, values, labels


def _read_csv_dicts(path: Path, key: str) -> dict[str, dict]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not rows or key not in rows[0]:
        raise DataError(f"{path}: expected a header with a {key} column")
    return {row[key]: row for row in rows}


def load(path: str | Path, device: str = "watch", spec: WindowSpec = SPEC) -> Dataset:
    """Every subject's executions as windowed devices.

    ``device`` is 'watch', 'phone' or 'both' (one device per subject and sensor).
    """
    kinds = list(DEVICES) if device == "both" else [device]
    if any(k not in DEVICES for k in kinds):
        raise ValueError(f"device must be 'watch', 'phone' or 'both', got {device!r}")
    root = data_root(path)
    subjects = _read_csv_dicts(root / "subjects_info.csv", "subject_id")
    executions_info = {}
    if (root / "executions_info.csv").is_file():
        executions_info = _read_csv_dicts(root / "executions_info.csv", "execution_id")
    devices: list[DeviceData] = []
    for subject in sorted(subjects):
        folder = root / subject
        if not folder.is_dir():
            raise DataError(f"{folder}: subject folder listed in subjects_info.csv is missing")
        for kind in kinds:
            files = sorted(
                (int(m.group(2)), p)
                for p in folder.iterdir()
                if (m := _EXECUTION_FILE.match(p.name)) and m.group(3) == DEVICES[kind]
            )
            if not files:
                raise DataError(f"{folder}: no {kind} execution files ({subject}_YY_{DEVICES[kind]}.csv)")
            windows = [make_windows(*read_execution(p), spec=spec) for _, p in files]
            metadata = dict(subjects[subject])
            metadata["executions"] = [f"{subject}_{n:02d}" for n, _ in files]
            metadata["orientation"] = [
                executions_info.get(f"{subject}_{n:02d}", {}).get("orientation") for n, _ in files
            ]
            devices.append(
                device_from_executions(f"{subject}-{kind}", subject, kind, windows, metadata)
            )
    return Dataset("sp-sw-har", LABELS, spec, devices)
