"""The fleet against real cloud processes, on synthetic wearers."""

import json

import numpy as np
import pytest

from device_sim import synthetic
from device_sim.fleet import Fleet, FleetConfig
from device_sim.report import write_report
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams
from sdk.decoding import TransitionModel, transition_counts
from sdk.personalisation import BLEND_WEIGHTS


@pytest.fixture(scope="module")
def wearers():
    return synthetic.generate(subjects=8, executions=6, seed=3)


def test_six_devices_three_encrypted_rounds(wearers, tmp_path):
    config = FleetConfig(rounds=3, local_epochs=3, new_users=2, personal_epochs=15, baseline_epochs=10, seed=1,
                         subsums=2)
    fleet = Fleet(wearers, config, tmp_path, show_progress=False, log=lambda *_: None)
    report = fleet.run()
    assert report["devices"] == 6 and len(report["rounds"]) == 3
    assert all(r["published"] and r["counted"] == 6 and r["subsums"] == 2 for r in report["rounds"])
    classes = len(wearers.label_names)  # every round summed every device's transition counts, encrypted
    summed = sum(transition_counts(p.train.labels, p.train.execution, classes) for p in fleet.participants)
    published = np.frombuffer(next(tmp_path.rglob("v4.transitions.f64")).read_bytes(), "<f8")
    np.testing.assert_allclose(published.reshape(summed.shape), summed, atol=0.5)  # the mean of 3 rounds' sums
    held = json.loads((tmp_path / "devices" / fleet.job_id / fleet.participants[0].device_id
                       / "transitions.json").read_text())["counts"]  # as of the device's last sync
    np.testing.assert_allclose(held, summed, atol=0.5)
    assert report["published_transitions"]["windows"] == summed.sum()
    assert report["published_transitions"]["max_difference"] == pytest.approx(
        np.max(np.abs(published.reshape(summed.shape) - summed)), abs=1e-4)
    published_model = TransitionModel.from_counts(published.reshape(summed.shape))  # the report decodes with it
    np.testing.assert_allclose(fleet.transitions.transitions, published_model.transitions, atol=0.01)
    accuracies = [r["global_accuracy"] for r in report["rounds"]]
    assert accuracies[-1] > accuracies[0]
    assert report["mean"]["personalised"] >= report["mean"]["global"]
    assert all(sum(r["bytes_up"].values()) > 0 for r in report["rounds"])
    assert set(report["subsets"]) == {"at_label_change", "near_tie"}
    assert all(0 <= subset["inside"]["personalised"] <= 1 for subset in report["subsets"].values())
    for row in report["per_device"].values():  # accuracy splits into each subset of windows and the rest
        s = row["personalised"]
        for name, share in row["subset_share"].items():
            assert 0 < share < 1
            split = share * s["subsets"][name]["inside"] + (1 - share) * s["subsets"][name]["outside"]
            assert split == pytest.approx(s["accuracy"], abs=1e-3)
    for row in list(report["per_device"].values()) + list(report["new_users"]["per_device"].values()):
        weight = row["personal_weight"]  # personalised is the blend the device chose, decoded and not
        assert weight in BLEND_WEIGHTS
        for variant in (lambda s: s, lambda s: s["decoded"]):
            if weight == 0.0:
                assert variant(row["personalised"]) == variant(row["global"])
            elif weight == 1.0:
                assert variant(row["personalised"]) == variant(row["personal_head"])
    decoded = report["decoded"]
    for kind in ("local_only", "global", "personalised", "personal_head", "centralised"):
        assert decoded["mean"][kind] == pytest.approx(
            np.mean([row[kind]["decoded"]["accuracy"] for row in report["per_device"].values()]), abs=1e-4)
    assert {"global", "personalised", "personal_head"} <= set(decoded["new_users"])
    path = write_report(report, tmp_path / "report")
    text = path.read_text()
    assert "| personalised |" in text and "at a label change" in text and "near ties" in text
    assert "| personal head alone |" in text and "decoded accuracy" in text
    assert (tmp_path / "report" / "accuracy_per_round.png").stat().st_size > 1000


def test_faults_dropout_straggler_churn_and_duplicates(wearers, tmp_path):
    config = FleetConfig(rounds=3, local_epochs=1, new_users=1, min_devices=2, dropout=0.3, stragglers=1,
                         leave={2: 1}, join={2: 1}, faults=0.1, round_timeout_s=6, personal_epochs=2,
                         baseline_epochs=2, backend="processes", seed=2)
    report = Fleet(wearers, config, tmp_path, show_progress=False, log=lambda *_: None).run()
    for r in report["rounds"]:
        assert r["published"], r
        assert r["counted"] == len(r["participants"]) >= config.min_devices  # none counted twice
        assert list(r["stragglers"].values()) == ["late_refused"]
    assert any("left" in e for e in report["rounds"][1]["events"])
    assert any("joined" in e for e in report["rounds"][1]["events"])
    injected = [f for r in report["rounds"] for f in r["faults_injected"].values()]
    assert sum(f["duplicated"] for f in injected) > 0 and sum(f["failed"] for f in injected) > 0


def test_encrypted_run_equals_plaintext_fedavg(wearers, tmp_path):
    config = dict(rounds=1, local_epochs=2, new_users=2, personal_epochs=1, baseline_epochs=1, seed=4)
    encrypted = Fleet(wearers, FleetConfig(**config), tmp_path / "enc", show_progress=False, log=lambda *_: None)
    plaintext = Fleet(wearers, FleetConfig(engine="plaintext", int8=True, **config), tmp_path / "plain",
                      show_progress=False, log=lambda *_: None)
    encrypted.run()
    report = plaintext.run()
    enc = np.frombuffer((encrypted.device_dir(encrypted.participants[0]) / "weights" / "v2.f32").read_bytes(), "<f4")
    plain = plaintext.final_weights
    weights = [min(len(p.train), 1000) for p in encrypted.participants]
    bound = mean_error_bound(CryptoParams(max_contributors=6, max_weight=1000), len(weights), sum(weights))
    assert np.max(np.abs(enc - plain)) <= bound + 1e-6
    assert np.max(np.abs(plain - plaintext.initial_weights)) > 10 * bound  # training really moved it
    int8 = report["int8"]  # the final model as an int8 inference model, scored beside the float one
    assert int8["model_version"] == 2 and int8["int8_kb"] < int8["float_kb"] / 3
    assert set(int8["per_device"]) == set(report["per_device"]) and int8["agreement"] > 0.8
    assert int8["accuracy"]["float"] == pytest.approx(report["mean"]["global"], abs=1e-3)
    assert int8["int8_ms_per_window"] > 0 and int8["float_ms_per_window"] > 0


def test_fleet_against_an_already_running_service(wearers, cloud, tmp_path):
    from device_sim.local_cloud import CloudAdmin

    config = FleetConfig(rounds=1, local_epochs=1, new_users=2, personal_epochs=1, baseline_epochs=1)
    fleet = Fleet(wearers, config, tmp_path, show_progress=False, log=lambda *_: None,
                  cloud=CloudAdmin(cloud.url, cloud.admin_token, cloud.keyservice_url, cloud.ks_admin_token))
    report = fleet.run()
    assert report["rounds"][0]["published"] and report["rounds"][0]["counted"] == 6
    assert cloud.job(fleet.job_id)["model_version"] == 2
    assert requests_ok(cloud.url)  # the service it did not start keeps running


def requests_ok(url: str) -> bool:
    import requests

    return requests.get(f"{url}/healthz").status_code == 200


def test_the_service_selects_each_rounds_devices_among_those_that_check_in(tmp_path):
    wearers = synthetic.generate(subjects=13, executions=3, seed=6)
    config = FleetConfig(rounds=2, local_epochs=1, new_users=1, personal_epochs=1, baseline_epochs=1, seed=3,
                         devices_per_round=4, over_selection=1.5, model={"conv_filters": (8, 16), "dense_units": 16})
    fleet = Fleet(wearers, config, tmp_path, show_progress=False, log=lambda *_: None)
    fleet.train()
    for r in fleet.rounds:
        assert r["published"] and r["checked_in"] == 12 and r["selected"] == 6  # one batch of check-ins; 4 x 1.5
        assert r["counted"] == len(r["participants"]) == 4  # the round closed at max_devices
    assert fleet.rounds[0]["participants"] != fleet.rounds[1]["participants"]  # random check-in order
