"""Crafted contributions against real services: a round publishes without the spoiled sub-sum, or fails with the
reason, and the next round opens; the key service's refusals are final, its absence is waited out."""

import time

import numpy as np
import requests

from sdk.crypto import wire
from sdk.crypto.packing import mean_error_bound
from tests.cloud_servers import Cloud, encoder_for


def job_state(cloud, job_id: str) -> dict:
    return requests.get(f"{cloud.url}/admin/jobs/{job_id}", headers=cloud.admin).json()


def wait_for(predicate, cloud, job_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = job_state(cloud, job_id)
        if predicate(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"not reached: {job_state(cloud, job_id)}; log: {cloud.aggregator.log.read_text()[-2000:]}")


def crafted(plan: dict, count: int) -> bytes:
    """A well-formed contribution whose slots claim `count` contributors (and nothing else)."""
    encoder = encoder_for(plan, seed=99)
    slots = np.zeros(plan["shared_values"] + 2, np.uint64)
    slots[-2:] = [10, count]
    return encoder.encrypt_slots(slots, round_id=plan["round"]["id"])


def test_a_crafted_contribution_costs_its_sub_sum_not_the_round(tmp_path, bundle_dir, database_url):
    # a long tick: the round can only publish because the upload that fills it starts the publication
    cloud = Cloud(tmp_path, database_url, tick_seconds=60, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        job = cloud.create_job(bundle_dir, min_devices=2, max_devices=6, subsums=3)
        token = cloud.token(job["id"], max_uses=None)
        devices = [cloud.enrol(token) for _ in range(6)]
        plan = cloud.plan(devices[0])
        round_id, base = plan["round"]["id"], cloud.weights(devices[0], 1)
        update = np.random.default_rng(0).normal(0, 0.05, plan["shared_values"]).astype(np.float32)
        weights = [30, 60, 90, 120, 150]
        for i, weight in enumerate(weights):
            payload = encoder_for(plan, seed=i).encode(update, weight, round_id=round_id).payload
            assert cloud.upload(devices[i], round_id, payload).status_code == 200
        assert cloud.upload(devices[5], round_id, crafted(plan, 1000)).status_code == 200  # looks like any other
        cloud.wait_for_version(devices[0], 2, timeout=30)
        state = job_state(cloud, job["id"])
        first, second = state["rounds"][0], state["rounds"][1]
        dropped = [part for part in first["subsums"] if part["dropped"]]
        assert first["status"] == "published" and len(first["subsums"]) == 3 and len(dropped) == 1
        assert "count slot holds" in dropped[0]["dropped"] and "count slot" in first["error"]
        kept = [part for part in first["subsums"] if not part["dropped"]]
        assert first["total_weight"] == sum(part["total_weight"] for part in kept)
        honest_in_kept = sum(part["contributors"] for part in kept)
        assert 2 <= honest_in_kept <= 4  # the crafted one's sub-sum took at least one honest device with it
        published = cloud.weights(devices[0], 2)
        bound = mean_error_bound(encoder_for(plan).params, honest_in_kept, first["total_weight"])
        assert np.max(np.abs(published - (base + update))) <= bound + 1e-6
        assert second["status"] == "open"
        assert any(e["kind"] == "subsum_dropped" for e in state["events"])
    finally:
        cloud.stop()


def test_a_round_whose_every_sub_sum_is_refused_fails_and_the_next_opens(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path, database_url, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2, subsums=1)
        token = cloud.token(job["id"], max_uses=None)
        honest, attacker = cloud.enrol(token), cloud.enrol(token)
        plan = cloud.plan(honest)
        round_id, values = plan["round"]["id"], plan["shared_values"]
        params = encoder_for(plan).params
        payload = encoder_for(plan).encode(np.zeros(values), 10, round_id=round_id).payload
        public = encoder_for(plan).public
        all_ones = wire.encode(wire.KIND_CONTRIBUTION, params, public, round_id, values, 1,
                               [1] * params.plaintexts_for(values))
        assert cloud.upload(honest, round_id, payload).status_code == 200
        assert cloud.upload(attacker, round_id, all_ones).status_code == 200
        state = wait_for(lambda s: len(s["rounds"]) == 2, cloud, job["id"])
        first = state["rounds"][0]
        assert first["status"] == "failed" and first["error"].startswith("every sub-sum was dropped")
        assert "count slot holds 1" in first["error"] and state["rounds"][1]["status"] == "open"
        assert state["status"] == "running" and state["model_version"] == 1
    finally:
        cloud.stop()


def test_an_unreachable_key_service_is_waited_for_not_taken_as_a_refusal(tmp_path, bundle_dir):
    cloud = Cloud(tmp_path, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2)
        token = cloud.token(job["id"], max_uses=None)
        devices = [cloud.enrol(token) for _ in range(2)]
        plan = cloud.plan(devices[0])
        round_id = plan["round"]["id"]
        cloud.keyservice.kill()
        for i, device in enumerate(devices):
            payload = encoder_for(plan, seed=i).encode(np.full(plan["shared_values"], 0.01), 10,
                                                       round_id=round_id).payload
            assert cloud.upload(device, round_id, payload).status_code == 200
        state = wait_for(lambda s: (s["rounds"][0]["error"] or "").startswith("decryption failed, retried"),
                         cloud, job["id"])
        assert state["rounds"][0]["status"] == "closing" and len(state["rounds"]) == 1
        cloud.keyservice.start()
        cloud.wait_for_version(devices[0], 2)
        first = job_state(cloud, job["id"])["rounds"][0]
        assert first["status"] == "published" and first["error"] is None
    finally:
        cloud.stop()
