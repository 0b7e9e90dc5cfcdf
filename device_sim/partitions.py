"""Splits of the evaluation protocol: within-subject by execution, and new users."""

from __future__ import annotations

import numpy as np

from device_sim.dataset import DeviceData


def within_subject(device: DeviceData, train_fraction: float = 0.6) -> tuple[DeviceData, DeviceData]:
    """Earlier executions (about `train_fraction`) for training, later ones for testing."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    executions = device.executions
    if len(executions) < 2:
        raise ValueError(f"{device.device_id}: needs at least 2 executions to split, has {len(executions)}")
    n_train = min(len(executions) - 1, max(1, int(round(train_fraction * len(executions)))))
    train_mask = np.isin(device.execution, executions[:n_train])
    return device.select(train_mask), device.select(~train_mask)


def same_executions(windows: DeviceData, like: DeviceData) -> DeviceData:
    """The windows of `windows` cut from the executions that `like` holds (two windowings of one device)."""
    if windows.device_id != like.device_id:
        raise ValueError(f"windows of {windows.device_id} cannot stand in for {like.device_id}")
    missing = set(like.executions) - set(windows.executions)
    if missing:
        raise ValueError(f"{windows.device_id}: executions {sorted(missing)} have no windows in the other windowing")
    return windows.select(np.isin(windows.execution, like.executions))


def subject_folds(subjects: list[str], folds: int, seed: int = 0) -> list[list[str]]:
    """Subjects dealt into `folds` disjoint held-out groups, shuffled by `seed`."""
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"folds must be between 2 and the {len(subjects)} subjects, got {folds}")
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [sorted(subjects[i] for i in order[k::folds]) for k in range(folds)]


def new_users(subjects: list[str], count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(training subjects, held-out new users), `count` of them drawn by `seed`."""
    if not 0 < count < len(subjects):
        raise ValueError(f"count must be between 1 and {len(subjects) - 1}, got {count}")
    order = np.random.default_rng(seed).permutation(len(subjects))
    held = {subjects[i] for i in order[:count]}
    return sorted(s for s in subjects if s not in held), sorted(held)
