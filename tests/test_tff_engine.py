"""TensorFlow Federated as the reference of the encrypted pipeline, and as a fleet engine."""

import subprocess

import numpy as np
import pytest

from device_sim import synthetic
from device_sim.fleet import Fleet, FleetConfig
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams


def tff_workers() -> str:
    return subprocess.run(["pgrep", "-fa", "data/worker_binary"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def small():
    return synthetic.generate(subjects=4, executions=3, seed=11)


def test_one_encrypted_round_equals_tffs_weighted_fedavg(small, tmp_path):
    """Same initial weights; one local SGD step on one fixed batch per client."""
    common = dict(rounds=1, local_epochs=1, batch_size=4096, lr=0.05, new_users=0, personal_epochs=1,
                  baseline_epochs=1, seed=5)
    encrypted = Fleet(small, FleetConfig(**common), tmp_path / "enc", show_progress=False, log=lambda *_: None)
    reference = Fleet(small, FleetConfig(engine="tff", **common), tmp_path / "tff", show_progress=False,
                      log=lambda *_: None)
    encrypted.run()
    reference.run()
    assert np.array_equal(encrypted.initial_weights, reference.initial_weights)
    sizes = [len(p.train) for p in encrypted.participants]
    params = CryptoParams(max_contributors=len(sizes), max_weight=1000)
    bound = mean_error_bound(params, len(sizes), sum(sizes))
    gap = np.max(np.abs(encrypted.final_weights - reference.final_weights))
    assert gap <= bound + 1e-4, (gap, bound)
    assert np.max(np.abs(reference.final_weights - reference.initial_weights)) > 1e-3  # a real step
    assert tff_workers() == ""


def test_tff_engine_writes_the_same_report(small, tmp_path):
    config = FleetConfig(engine="tff", rounds=2, local_epochs=2, new_users=1, personal_epochs=3, baseline_epochs=2)
    report = Fleet(small, config, tmp_path, show_progress=False, log=lambda *_: None).run()
    assert report["engine"] == "tff" and len(report["rounds"]) == 2
    assert report["seconds_per_round"] > 0
    for key in ("local_only", "global", "personalised", "centralised"):
        assert 0 <= report["mean"][key] <= 1
    assert tff_workers() == ""


def test_tff_engine_refuses_faults(small, tmp_path):
    with pytest.raises(ValueError, match="no dropout"):
        Fleet(small, FleetConfig(engine="tff", rounds=1, dropout=0.3), tmp_path, show_progress=False,
              log=lambda *_: None).run()
