"""Replays against real services: a payload is bound to its round, and its bytes count once per job."""

import numpy as np
import requests

from tests.cloud_servers import encoder_for


def contributors(cloud, job_id: str) -> dict:
    rounds = requests.get(f"{cloud.url}/admin/jobs/{job_id}", headers=cloud.admin).json()["rounds"]
    return {r["number"]: r["contributors"] for r in rounds}


def test_round_one_payload_replayed_into_round_two_and_copied_bytes_are_refused(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, max_devices=2, min_devices=2)
    token = cloud.token(job["id"], max_uses=None)
    a, b, c = (cloud.enrol(token) for _ in range(3))
    plan = cloud.plan(a)
    first_round = plan["round"]["id"]
    values = plan["shared_values"]
    rng = np.random.default_rng(3)
    payload_a1 = encoder_for(plan, seed=1).encode(rng.normal(0, 0.01, values), 50, round_id=first_round).payload
    payload_b1 = encoder_for(plan, seed=2).encode(rng.normal(0, 0.01, values), 50, round_id=first_round).payload
    assert cloud.upload(a, first_round, payload_a1).status_code == 200
    copied = cloud.upload(b, first_round, payload_a1)  # device B sends device A's exact bytes
    assert copied.status_code == 409 and copied.json()["error"] == "duplicate_payload", copied.text
    assert contributors(cloud, job["id"]) == {1: 1}
    assert cloud.upload(b, first_round, payload_b1).status_code == 200
    plan2 = cloud.wait_for_version(a, 2)
    second_round = plan2["round"]["id"]
    assert second_round != first_round and plan2["round"]["number"] == 2

    for device, payload in ((a, payload_a1), (c, payload_b1)):  # round-1 payloads replayed into round 2
        replayed = cloud.upload(device, second_round, payload)
        assert replayed.status_code == 400, replayed.text
        assert replayed.json() == {"error": "wrong_round",
                                   "message": f"payload was made for round {first_round}, not round {second_round}"}
    assert contributors(cloud, job["id"]) == {1: 2, 2: 0}

    fresh = encoder_for(plan2, seed=3).encode(rng.normal(0, 0.01, values), 50, round_id=second_round).payload
    assert cloud.upload(c, second_round, fresh).status_code == 200
    copied = cloud.upload(a, second_round, fresh)
    assert copied.status_code == 409 and copied.json()["error"] == "duplicate_payload"
    again = cloud.upload(c, second_round, fresh)  # the sender's own retry still gets its first answer
    assert again.status_code == 200 and again.json()["contributors"] == 1
    assert contributors(cloud, job["id"]) == {1: 2, 2: 1}
