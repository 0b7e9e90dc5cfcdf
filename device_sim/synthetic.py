"""Synthetic Timed-Up-and-Go wearers, any number of them, made on demand.

Each wearer differs as real ones do: where and how the watch sits (outer or
inner side of the wrist, left or right arm, tilted), how fast they walk, how
much their arm swings, how far back they lean when seated, how noisy and
biased their sensor is. Some of these move a wearer's activities towards
another wearer's (a strong arm swing turns the wrist as a turn does; a deep
recline shifts the gravity axis), so one global model fits some wearers worse
than a model personalised to them.

A wearer is made from (seed, subject index) alone, only when asked for, so a
population of thousands costs the memory of the few in use. Every execution
is a raw ~100 Hz stream with jittered and repeated timestamps that goes
through the same windowing as real data.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from device_sim.dataset import Dataset, DeviceData, LazyDevices, device_from_executions
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


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _phase_signal(label: str, t: np.ndarray, traits: dict, rng: np.random.Generator) -> np.ndarray:
    """Body-frame (acc, gyro) of one phase at times t (seconds from its start)."""
    n, f, amp, swing = t.size, traits["gait_hz"], traits["amplitude"], traits["arm_swing"]
    acc = np.zeros((n, 3))
    gyro = np.zeros((n, 3))
    progress = t / max(t[-1], 1e-6) if n else t
    recline = traits["seated_tilt"]
    if label == "SEATED":
        acc[:] = GRAVITY * np.array([np.sin(recline), 0.0, np.cos(recline)])
    elif label in ("STANDING_UP", "SITTING_DOWN"):
        tilt = recline * (1 - progress) if label == "STANDING_UP" else recline * progress
        sign = 1.0 if label == "STANDING_UP" else -1.0
        acc[:, 0] = GRAVITY * np.sin(tilt) + sign * amp * 2.5 * np.sin(np.pi * progress)
        acc[:, 2] = GRAVITY * np.cos(tilt) + amp * 1.5 * np.sin(np.pi * progress)
        gyro[:, 1] = -sign * 0.8 * amp * np.sin(np.pi * progress)
    else:
        phase = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
        acc[:, 0] = amp * 1.5 * np.sin(phase)
        acc[:, 1] = amp * 0.8 * np.sin(phase / 2) + swing * 1.2 * np.sin(phase / 2 + 0.3)
        acc[:, 2] = GRAVITY + amp * 2.5 * np.sin(2 * phase)
        gyro[:, 0] = amp * 0.6 * np.sin(phase)
        gyro[:, 1] = amp * 0.4 * np.cos(phase)
        gyro[:, 2] = swing * np.sin(phase / 2)  # the forearm swings about the vertical once per stride
        if label == "TURNING":
            gyro[:, 2] += traits["turn_rad_s"] * np.sin(np.pi * progress)
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
    rot = np.asarray(traits["rotation"])
    v = np.concatenate([v[:, :3] @ rot.T, v[:, 3:] @ rot.T], axis=1)
    if traits["left_handed"]:
        v[:, [1, 4]] *= -1
    v += np.asarray(traits["bias"]) + rng.normal(0, traits["noise"], v.shape)
    return np.concatenate(stamps), v, np.concatenate(labels)


def subject_traits(rng: np.random.Generator) -> dict:
    """One wearer's body, gait and sensor."""
    inner_wrist = bool(rng.random() < 0.25)  # the watch face under the wrist: turned over the forearm's axis
    tilt = _rotation(rng.normal(size=3), rng.uniform(-0.6, 0.6))
    placement = _rotation(np.array([1.0, 0.0, 0.0]), np.pi) if inner_wrist else np.eye(3)
    return {
        "gait_hz": rng.uniform(1.3, 2.3),
        "pace": rng.uniform(0.7, 1.3),
        "amplitude": rng.uniform(0.6, 1.5),
        "arm_swing": rng.uniform(0.1, 1.6),
        "seated_tilt": rng.uniform(0.15, 0.9),
        "turn_rad_s": rng.uniform(1.0, 2.2) * rng.choice([-1, 1]),
        "inner_wrist": inner_wrist,
        "rotation": tilt @ placement,
        "left_handed": bool(rng.random() < 0.2),
        "noise": rng.uniform(0.05, 0.4),
        "bias": np.concatenate([rng.normal(0, 0.3, 3), rng.normal(0, 0.05, 3)]),
    }


def wearer(index: int, executions: int = 10, seed: int = 0, spec: WindowSpec = SPEC, width: int = 2) -> DeviceData:
    """Wearer number `index` (from 0) of the population drawn with `seed`: the same for every population size."""
    rng = np.random.default_rng([seed, index])
    traits = subject_traits(rng)
    name = f"syn{index + 1:0{width}d}"
    runs = [make_windows(*execution(traits, rng), spec=spec) for _ in range(executions)]
    metadata = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in traits.items()}
    return device_from_executions(f"{name}-watch", name, "watch", runs, metadata)


def generate(
    subjects: int = 8, executions: int = 10, seed: int = 0, spec: WindowSpec = SPEC
) -> Dataset:
    """A population of `subjects` synthetic watch wearers with `executions` each, made on demand."""
    if subjects < 1 or executions < 1:
        raise ValueError("subjects and executions must be at least 1")
    width = max(2, len(str(subjects)))
    names = [f"syn{i + 1:0{width}d}" for i in range(subjects)]
    devices = LazyDevices([f"{name}-watch" for name in names], names,
                          partial(wearer, executions=executions, seed=seed, spec=spec, width=width))
    return Dataset("synthetic", LABELS, spec, devices)
