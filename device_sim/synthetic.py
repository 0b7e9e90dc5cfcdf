"""Synthetic Timed-Up-and-Go recordings for offline demos and fast tests.

Each subject gets its own gait frequency, movement amplitude, sensor
orientation and handedness, so that devices differ as real wearers do. Every
execution is a raw ~100 Hz stream with jittered and repeated timestamps that
goes through the same windowing as real data.
"""

from __future__ import annotations

import numpy as np

from device_sim.dataset import Dataset, device_from_executions
from device_sim.spswhar import LABELS, SPEC
from sdk.windowing import WindowSpec, make_windows

GRAVITY = 9.81
# (label, duration range in seconds) of one Timed-Up-and-Go execution.
_PHASES = (
    ("SEATED", (1.5, 3.0)),
    ("STANDING_UP", (1.0, 1.8)),
    ("WALKING", (3.0, 4.5)),
    ("TURNING", (1.0, 2.0)),
    ("WALKING", (3.0, 4.5)),
    ("TURNING", (1.0, 2.0)),
    ("SITTING_DOWN", (1.2, 2.0)),
)


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _phase_signal(label: str, t: np.ndarray, traits: dict, rng: np.random.Generator) -> np.ndarray:
    """Body-frame (acc, gyro) of one phase at times t (seconds from its start)."""
    n, f, amp = t.size, traits["gait_hz"], traits["amplitude"]
    acc = np.zeros((n, 3))
    gyro = np.zeros((n, 3))
    progress = t / max(t[-1], 1e-6) if n else t
    if label == "SEATED":
        tilt = 0.5
        acc[:] = GRAVITY * np.array([np.sin(tilt), 0.0, np.cos(tilt)])
    elif label in ("STANDING_UP", "SITTING_DOWN"):
        tilt = 0.5 * (1 - progress) if label == "STANDING_UP" else 0.5 * progress
        sign = 1.0 if label == "STANDING_UP" else -1.0
        acc[:, 0] = GRAVITY * np.sin(tilt) + sign * amp * 2.5 * np.sin(np.pi * progress)
        acc[:, 2] = GRAVITY * np.cos(tilt) + amp * 1.5 * np.sin(np.pi * progress)
        gyro[:, 1] = -sign * 0.8 * amp * np.sin(np.pi * progress)
    else:
        phase = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
        acc[:, 0] = amp * 1.5 * np.sin(phase)
        acc[:, 1] = amp * 0.8 * np.sin(phase / 2)
        acc[:, 2] = GRAVITY + amp * 2.5 * np.sin(2 * phase)
        gyro[:, 0] = amp * 0.6 * np.sin(phase)
        gyro[:, 1] = amp * 0.4 * np.cos(phase)
        if label == "TURNING":
            gyro[:, 2] = traits["turn_rad_s"] * np.sin(np.pi * progress)
            acc[:, 1] += 2.0 * np.sin(np.pi * progress)
    return np.concatenate([acc, gyro], axis=1)


def execution(traits: dict, rng: np.random.Generator, rate_hz: float = 100.0):
    """One raw execution: timestamps (s), values (n, 6), label indices."""
    label_of = {name: i for i, name in enumerate(LABELS)}
    stamps, values, labels, start = [], [], [], 0.0
    for label, (low, high) in _PHASES:
        duration = rng.uniform(low, high) / traits["pace"]
        n = int(duration * rate_hz)
        t = np.sort(rng.uniform(0, duration, n)) if n else np.zeros(0)
        signal = _phase_signal(label, t, traits, rng)
        stamps.append(np.round((start + t) * 1000) / 1000)  # millisecond clock: repeats
        values.append(signal)
        labels.append(np.full(n, label_of[label]))
        start += duration
    v = np.concatenate(values)
    rot = traits["rotation"]
    v = np.concatenate([v[:, :3] @ rot.T, v[:, 3:] @ rot.T], axis=1)
    if traits["left_handed"]:
        v[:, [1, 4]] *= -1
    v += rng.normal(0, traits["noise"], v.shape)
    return np.concatenate(stamps), v, np.concatenate(labels)


def subject_traits(rng: np.random.Generator) -> dict:
    return {
        "gait_hz": rng.uniform(1.5, 2.2),
        "amplitude": rng.uniform(0.7, 1.4),
        "pace": rng.uniform(0.8, 1.25),
        "turn_rad_s": rng.uniform(1.2, 2.2) * rng.choice([-1, 1]),
        "rotation": _rotation(rng, 0.5),
        "left_handed": bool(rng.random() < 0.2),
        "noise": rng.uniform(0.05, 0.3),
    }


def generate(
    subjects: int = 8, executions: int = 10, seed: int = 0, spec: WindowSpec = SPEC
) -> Dataset:
    """A dataset of `subjects` synthetic watch wearers with `executions` each."""
    if subjects < 1 or executions < 1:
        raise ValueError("subjects and executions must be at least 1")
    rng = np.random.default_rng(seed)
    devices = []
    for s in range(subjects):
        traits = subject_traits(rng)
        name = f"syn{s + 1:02d}"
        runs = [make_windows(*execution(traits, rng), spec=spec) for _ in range(executions)]
        metadata = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in traits.items()}
        devices.append(device_from_executions(f"{name}-watch", name, "watch", runs, metadata))
    return Dataset("synthetic", LABELS, spec, devices)
