"""Server optimisers: pure functions from (weights, mean update, state) to the next weights and state."""

import numpy as np
import pytest

from cloud.server_optimiser import apply


def test_fedavg_adds_the_mean_update():
    weights, state = apply("fedavg", np.ones(3, np.float32), np.array([0.5, -1.0, 0.0]), {})
    assert weights.tolist() == [1.5, 0.0, 1.0] and weights.dtype == np.float32 and state == {}


def test_server_momentum_accumulates_a_steady_update():
    update = np.array([0.1, -0.2])
    weights, state = apply("momentum", np.zeros(2), update, {}, beta=0.5)
    assert weights == pytest.approx(update)
    weights, state = apply("momentum", weights, update, state, beta=0.5)
    assert weights == pytest.approx(update + 1.5 * update)  # velocity 0.5 * u + u
    assert state["velocity"] == pytest.approx(1.5 * update)


def test_fedadam_steps_by_about_lr_whatever_the_update_scale():
    moved = []
    for scale in (1e-2, 10.0):
        weights, state = np.zeros(2), {}
        for _ in range(50):
            weights, state = apply("fedadam", weights, scale * np.array([1.0, -1.0]), state, lr=0.01, epsilon=1e-8)
        assert weights[1] == pytest.approx(-weights[0])
        moved.append(weights[0])
    # 50 steps of about lr each (more early on: without bias correction the first moment starts ahead)
    assert moved[0] == pytest.approx(moved[1], rel=1e-4) and 0.5 < moved[0] < 1.5


def test_an_unknown_optimiser_is_refused_by_name():
    with pytest.raises(ValueError, match="fedavg, momentum, fedadam"):
        apply("sgd", np.zeros(1), np.zeros(1), {})
