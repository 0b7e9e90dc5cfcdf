"""Server optimisers: how the cloud turns a round's decrypted mean update into the next global weights.

Pure functions on numpy vectors. FedAvg adds the mean update; the others treat
minus the mean update as a pseudo-gradient (Reddi et al., "Adaptive Federated
Optimization", ICLR 2021): server momentum (FedAvgM) keeps a velocity, FedAdam
first and second moments. Their state is a dict of vectors (empty at the start)
that the caller keeps between rounds with the weights.
"""

from __future__ import annotations

import numpy as np

NAMES = ("fedavg", "momentum", "fedadam")


def fedavg(weights: np.ndarray, mean_update: np.ndarray, state: dict, lr: float = 1.0) -> tuple[np.ndarray, dict]:
    """weights + lr * mean update."""
    return (weights + lr * mean_update).astype(np.float32), state


def server_momentum(weights: np.ndarray, mean_update: np.ndarray, state: dict, lr: float = 1.0,
                    beta: float = 0.9) -> tuple[np.ndarray, dict]:
    """FedAvgM: velocity = beta * velocity + mean update; weights + lr * velocity."""
    velocity = beta * state.get("velocity", np.zeros_like(mean_update, np.float64)) + mean_update
    return (weights + lr * velocity).astype(np.float32), {"velocity": velocity}


def fedadam(weights: np.ndarray, mean_update: np.ndarray, state: dict, lr: float = 0.01, beta1: float = 0.9,
            beta2: float = 0.99, epsilon: float = 1e-3) -> tuple[np.ndarray, dict]:
    """FedAdam: Adam's moments of the mean update (no bias correction, as in Reddi et al.), a step of lr."""
    first = beta1 * state.get("first", np.zeros_like(mean_update, np.float64)) + (1 - beta1) * mean_update
    second = beta2 * state.get("second", np.zeros_like(mean_update, np.float64)) + (1 - beta2) * mean_update**2
    step = lr * first / (np.sqrt(second) + epsilon)
    return (weights + step).astype(np.float32), {"first": first, "second": second}


def apply(name: str, weights: np.ndarray, mean_update: np.ndarray, state: dict,
          **settings: float) -> tuple[np.ndarray, dict]:
    """The optimiser ``name`` (one of NAMES) with its ``settings``: (next weights, next state)."""
    steps = {"fedavg": fedavg, "momentum": server_momentum, "fedadam": fedadam}
    if name not in steps:
        raise ValueError(f"server optimiser must be one of {', '.join(NAMES)}, got {name!r}")
    return steps[name](np.asarray(weights, np.float64), np.asarray(mean_update, np.float64), state, **settings)
