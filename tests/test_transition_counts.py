"""Activity-transition counts summed through the encrypted rounds: the aggregator never sees one device's
counts, the plan carries the federation's table and devices decode with it; bad jobs and lying devices."""

import json

import numpy as np
import pytest

from cloud.bundle_export import export_bundle
from cloud.keras_twin import build_keras_model
from device_sim import synthetic
from sdk.client import FedWearClient
from sdk.crypto.packing import mean_error_bound
from sdk.decoding import TransitionModel, table_values, transition_counts
from sdk.model_spec import ModelSpec
from sdk.transport import HttpTransport, Response
from tests.cloud_servers import encoder_for

CLASSES = 5


class LyingTable(HttpTransport):
    """An aggregator that serves plans whose transition table has negative counts."""

    def send(self, method, path, body, headers):
        answer = super().send(method, path, body, headers)
        if path.startswith("/v1/plan") and answer.status == 200:
            plan = answer.json()
            if (plan["transitions"] or {}).get("counts") is not None:
                plan["transitions"]["counts"] = (-np.array(plan["transitions"]["counts"]) - 1).tolist()
                answer = Response(answer.status, answer.headers, json.dumps(plan).encode())
        return answer


def _wearers(count: int):
    return synthetic.generate(subjects=count, executions=3, seed=21).devices


def _bound(plan, contributors, total_weight) -> float:
    """The most a summed count may be off: the codec's error bound on the mean, times the total weight."""
    return mean_error_bound(encoder_for(plan).params, contributors, total_weight) * total_weight + 1e-3


def test_devices_counts_are_summed_encrypted_published_in_the_plan_and_used_for_decoding(cloud, bundle_dir, tmp_path):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2, transition_counts=True)
    assert job["upload_values"] == job["shared_values"] + table_values(CLASSES)
    token = cloud.token(job["id"])
    wearers = _wearers(2)
    clients = [FedWearClient(cloud.url, token, tmp_path / f"d{i}") for i in range(2)]
    first = clients[0].sync()
    assert first["transitions"] == {"classes": CLASSES, "counts": None}  # nothing published yet
    assert clients[0].transitions is None
    for client, wearer in zip(clients, wearers):
        outcome = client.participate(wearer.windows, wearer.labels, recordings=wearer.execution)
        assert outcome.status == "uploaded", outcome.reason
    plan = clients[0].wait_for_version(1, timeout=60)
    assert plan["model_version"] == 2
    published = np.array(plan["transitions"]["counts"])
    summed = sum(transition_counts(w.labels, w.execution, CLASSES) for w in wearers)
    total = sum(len(w.labels) for w in wearers)
    assert np.max(np.abs(published - summed)) <= _bound(plan, 2, total)
    assert summed.sum() == total and summed[0].sum() == 6  # every window counted once; six recordings
    for path in cloud.data_dir.rglob("*.transitions.f64"):  # the aggregator keeps only the sum
        assert np.allclose(np.frombuffer(path.read_bytes(), "<f8").reshape(CLASSES + 1, CLASSES), published)
    clients[1].sync()  # a device takes the federation's table on its next sync, and decodes with it
    model = TransitionModel.from_counts(published)
    np.testing.assert_allclose(clients[1].transitions.transitions, model.transitions)
    restarted = FedWearClient(cloud.url, token, tmp_path / "d1")
    np.testing.assert_allclose(restarted.transitions.start, model.start)
    newcomer = FedWearClient(cloud.url, token, tmp_path / "d2", transport=LyingTable(cloud.url))
    with pytest.raises(ValueError, match="non-negative"):
        newcomer.sync()
    assert newcomer.transitions is None and not (tmp_path / "d2" / "transitions.json").exists()


def test_a_device_without_recordings_adds_no_counts_and_a_lying_one_moves_them_by_its_weight_at_most(cloud,
                                                                                                   bundle_dir):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=3, transition_counts=True)
    token = cloud.token(job["id"])
    devices = [cloud.enrol(token) for _ in range(3)]
    plan = cloud.plan(devices[0])
    round_id, shared = plan["round"]["id"], plan["shared_values"]
    honest = _wearers(1)[0]
    counts = transition_counts(honest.labels, honest.execution, CLASSES)
    n = len(honest.labels)
    liar_weight = 40
    tails = [counts.ravel() / n,  # honest
             np.zeros(table_values(CLASSES)),  # no recordings: zeros
             np.full(table_values(CLASSES), -1.0)]  # a liar pulling every count down as far as its clip allows
    for i, (device, tail, weight) in enumerate(zip(devices, tails, [n, 70, liar_weight])):
        update = np.concatenate([np.zeros(shared), tail]).astype(np.float32)
        payload = encoder_for(plan, seed=i).encode(update, weight, round_id=round_id).payload
        assert cloud.upload(device, round_id, payload).status_code == 200
    published = np.array(cloud.wait_for_version(devices[0], 2)["transitions"]["counts"])
    bound = _bound(plan, 3, n + 70 + liar_weight)
    assert published.min() >= 0  # clamped, never negative
    np.testing.assert_array_less(np.maximum(counts - liar_weight, 0) - bound, published + 1e-9)  # moved by its weight
    np.testing.assert_array_less(published, counts + bound)  # at most


def test_uploads_of_the_wrong_length_and_jobs_that_cannot_sum_counts_are_refused(cloud, bundle_dir, tmp_path):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2, transition_counts=True)
    device = cloud.enrol(cloud.token(job["id"]))
    plan = cloud.plan(device)
    short = encoder_for(plan).encode(np.zeros(plan["shared_values"], np.float32), 10,
                                     round_id=plan["round"]["id"]).payload  # the update without its counts
    refused = cloud.upload(device, plan["round"]["id"], short)
    assert refused.status_code == 400 and "error" in refused.json(), refused.text
    with pytest.raises(RuntimeError, match="transition_counts cannot be combined with privacy"):
        cloud.create_job(bundle_dir, transition_counts=True,
                         privacy={"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5},
                         crypto={"max_contributors": 50, "max_weight": 500, "clip": 10.0})
    with pytest.raises(RuntimeError, match="transition_counts needs crypto.clip of at least 1"):
        cloud.create_job(bundle_dir, transition_counts=True, crypto={"max_contributors": 50, "clip": 0.5})
    spec = ModelSpec.from_dict({"input": {"kind": "features", "shape": [3], "names": ["a", "b", "c"]},
                                "layers": [{"type": "dense", "units": 4}, {"type": "relu"}],
                                "head": {"kind": "classification", "label_names": ["no", "yes"]},
                                "personal": {"branch_from": "dense1_relu"}})
    export_bundle(build_keras_model(spec), spec, tmp_path / "tabular", np.zeros(3), np.ones(3))
    with pytest.raises(RuntimeError, match="transition_counts needs a bundle that classifies windows"):
        cloud.create_job(tmp_path / "tabular", transition_counts=True)
    plain = cloud.create_job(bundle_dir)
    assert plain["upload_values"] == plain["shared_values"]
    assert cloud.plan(cloud.enrol(cloud.token(plain["id"])))["transitions"] is None
