"""The fleet's devices on Ray and in worker processes: the same rounds, on loopback, nothing left behind."""

import os

import numpy as np
import psutil
import pytest

from device_sim import synthetic
from device_sim.backends import DEVICES_PER_CORE, RayBackend, make_backend
from device_sim.fleet import Fleet, FleetConfig
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _descendants() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _quiet(*_):
    pass


def test_twenty_devices_two_rounds_on_ray_equal_plaintext_fedavg(tmp_path):
    wearers = synthetic.generate(subjects=21, executions=3, seed=5)
    config = dict(rounds=2, local_epochs=1, new_users=1, personal_epochs=1, baseline_epochs=1, seed=2,
                  model={"conv_filters": (8, 16), "dense_units": 16})  # small: quick to train and encrypt
    before = {p.pid for p in _descendants()}
    fleet = Fleet(wearers, FleetConfig(backend="ray", **config), tmp_path / "ray", show_progress=False, log=_quiet)
    report = fleet.run()
    assert report["devices"] == 20 and report["config"]["backend"] == "ray"
    for r in report["rounds"]:
        assert r["published"] and r["counted"] == 20 and len(r["participants"]) == 20
        assert all(size > 0 for size in r["bytes_up"].values())
    processes = {pid for r in report["rounds"] for pid in r["processes"].values()}
    assert 1 < len(processes) <= DEVICES_PER_CORE * os.cpu_count()  # the same actors in every round
    assert {p.pid for p in _descendants()} <= before  # Ray and the cloud are gone
    plaintext = Fleet(wearers, FleetConfig(engine="plaintext", **config), tmp_path / "plain", show_progress=False,
                      log=_quiet)
    plaintext.train()
    weights = [CryptoParams().weight_of(len(p.train)) for p in fleet.participants]
    bound = mean_error_bound(CryptoParams(max_contributors=20, max_weight=CryptoParams.max_weight),
                             len(weights), sum(weights))
    assert np.max(np.abs(fleet.final_weights - plaintext.final_weights)) <= 2 * bound + 1e-6  # two rounds
    assert np.max(np.abs(plaintext.final_weights - plaintext.initial_weights)) > 10 * bound


def test_ray_listens_on_loopback_only_and_shuts_down():
    before = {p.pid for p in _descendants()}
    backend = RayBackend()
    try:
        started = [p for p in _descendants() if p.pid not in before]
        assert any(p.name() in ("raylet", "gcs_server") for p in started)
        listening = [c.laddr for p in started for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(address.ip in LOOPBACK for address in listening), listening
        windows, labels, recordings = np.zeros((3, 50, 6), np.float32), np.zeros(3, np.int64), np.zeros(3, np.int64)
        staged = backend.stage("d1", windows, labels, recordings)
        assert backend.stage("d1", windows, labels, recordings) is staged  # put into the object store once
        assert backend._ray.get(staged)[0].shape == (3, 50, 6)
    finally:
        backend.close()
    assert {p.pid for p in _descendants()} <= before


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="threads, processes, silos, ray"):
        make_backend("spark")
