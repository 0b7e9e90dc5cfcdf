"""Bad input and intruders: each gets a 4xx JSON error naming the problem, and state is unchanged."""

import struct
import time

import numpy as np
import pytest
import requests

from sdk.crypto.codec import UpdateEncoder
from sdk.crypto.keys import generate_keypair
from sdk.crypto.params import CryptoParams
from tests.cloud_servers import Cloud, encoder_for


@pytest.fixture(scope="module")
def world(tmp_path_factory, bundle_dir):
    tmp = tmp_path_factory.mktemp("intruders")
    cloud = Cloud(tmp, max_upload_bytes=4 * 1024 * 1024).start()
    job = cloud.create_job(bundle_dir, max_devices=5, min_devices=2)
    other_job = cloud.create_job(bundle_dir, name="other job")
    token = cloud.token(job["id"])
    device = cloud.enrol(token)
    plan = cloud.plan(device)
    yield {"cloud": cloud, "job": job, "other": other_job, "token": token, "device": device, "plan": plan,
           "round": plan["round"]["id"], "encoder": encoder_for(plan)}
    cloud.stop()


def state(world):
    response = requests.get(f"{world['cloud'].url}/admin/jobs/{world['job']['id']}", headers=world["cloud"].admin)
    return response.json()["rounds"]


def assert_error(response, status, code, words):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and words in body["message"], body


def update(world, seed=0):
    values = world["plan"]["shared_values"]
    return world["encoder"].encode(np.random.default_rng(seed).normal(0, 0.01, values), 10,
                                   round_id=world["round"]).payload


def test_no_token(world):
    before = state(world)
    response = requests.put(f"{world['cloud'].url}/v1/rounds/{world['round']}/update", data=update(world))
    assert_error(response, 401, "unauthorized", "missing bearer token")
    assert state(world) == before


def test_wrong_device_token(world):
    device_id = world["device"]["Authorization"].split()[1].split(".")[0]
    response = world["cloud"].upload({"Authorization": f"Bearer {device_id}.wrong"}, world["round"], update(world))
    assert_error(response, 401, "unauthorized", "invalid device credentials")


def test_revoked_device_token(world):
    cloud = world["cloud"]
    device = cloud.enrol(world["token"])
    device_id = device["Authorization"].split()[1].split(".")[0]
    assert requests.post(f"{cloud.url}/admin/devices/{device_id}/revoke", headers=cloud.admin).status_code == 200
    before = state(world)
    assert_error(cloud.upload(device, world["round"], update(world)), 401, "device_revoked", "revoked")
    assert state(world) == before


def test_a_round_of_another_job_answers_exactly_like_a_missing_one(world):
    cloud = world["cloud"]
    other_round = world["other"]["rounds"][0]["id"]
    for route, send in (("update", lambda url: requests.put(url, headers=world["device"], data=update(world))),
                        ("report", lambda url: requests.post(url, headers=world["device"], json={"windows": 1}))):
        foreign = send(f"{cloud.url}/v1/rounds/{other_round}/{route}")
        missing = send(f"{cloud.url}/v1/rounds/999999/{route}")
        assert_error(foreign, 404, "round_not_found", f"round {other_round} is not a round of this device's job")
        assert missing.status_code == 404
        assert missing.json() == {**foreign.json(), "message": foreign.json()["message"].replace(
            str(other_round), "999999")}


def test_expired_enrolment_token(world):
    cloud = world["cloud"]
    token = cloud.token(world["job"]["id"], expires_in_s=1)
    time.sleep(1.5)
    response = requests.post(f"{cloud.url}/v1/enrol", json={"token": token})
    assert_error(response, 403, "token_expired", "expired")


def test_reused_single_use_token(world):
    cloud = world["cloud"]
    token = cloud.token(world["job"]["id"], max_uses=1)
    cloud.enrol(token)
    assert_error(requests.post(f"{cloud.url}/v1/enrol", json={"token": token}), 403, "token_used", "used up")


def test_body_over_the_limit(world):
    before = state(world)
    response = world["cloud"].upload(world["device"], world["round"], b"\0" * (5 * 1024 * 1024))
    assert_error(response, 413, "request_entity_too_large", "limit of 4194304 bytes")
    assert state(world) == before


@pytest.mark.parametrize("mangle, code, words", [
    (lambda p: p[:200], "truncated", "truncated"),
    (lambda p: p[:-7], "truncated", "its header says"),
    (lambda p: p + b"\0" * 7, "too_long", "its header says"),
    (lambda p: p[:98] + bytes(reversed(p[98:])), "ciphertext_out_of_range", "out of range"),
    (lambda p: b"garbage" * 40, "bad_magic", "bad magic"),
    (lambda p: p[:4] + struct.pack(">H", 7) + p[6:], "unsupported_version", "version 7"),
    (lambda p: p[:4] + struct.pack(">H", 1) + p[6:], "unsupported_version", "upgrade the SDK"),
    (lambda p: p[:6] + struct.pack(">H", 2) + p[8:], "wrong_kind", "kind 2"),
    (lambda p: p[:83] + bytes([p[83] + 1]) + p[84:], "layout_mismatch", "slot layout"),
    (lambda p: p[:86] + struct.pack(">I", 10) + p[90:], "wrong_value_count", "holds 10 values"),
    (lambda p: p[:90] + struct.pack(">I", 1) + p[94:], "wrong_ciphertext_count", "declares 1"),
    (lambda p: p[:94] + struct.pack(">I", 3) + p[98:], "bad_contributor_count", "exactly one"),
])
def test_truncated_or_garbled_payload(world, mangle, code, words):
    before = state(world)
    response = world["cloud"].upload(world["device"], world["round"], mangle(update(world)))
    assert_error(response, 400, code, words)
    assert state(world) == before


def test_wrong_key_fingerprint(world):
    other_public, _ = generate_keypair(2048)
    params = world["encoder"].params
    values, round_id = world["plan"]["shared_values"], world["round"]
    payload = UpdateEncoder(params, other_public).encode(np.zeros(values), 1, round_id=round_id).payload
    before = state(world)
    assert_error(world["cloud"].upload(world["device"], round_id, payload), 400, "key_mismatch",
                 "another public key")
    wrong_params = CryptoParams(max_contributors=49, max_weight=500)
    payload = UpdateEncoder(wrong_params, world["encoder"].public).encode(np.zeros(values), 1,
                                                                         round_id=round_id).payload
    assert_error(world["cloud"].upload(world["device"], round_id, payload), 400, "params_mismatch",
                 "other crypto parameters")
    assert state(world) == before


def test_replayed_upload_gets_the_first_answer_and_a_different_one_conflicts(world):
    cloud = world["cloud"]
    device = cloud.enrol(world["token"])
    payload = update(world, seed=5)
    first = cloud.upload(device, world["round"], payload)
    assert first.status_code == 200
    after_first = state(world)
    again = cloud.upload(device, world["round"], payload)
    assert again.status_code == 200 and again.json() == first.json()
    assert_error(cloud.upload(device, world["round"], update(world, seed=6)), 409, "already_contributed", "different update")
    assert state(world) == after_first


@pytest.mark.parametrize("body, code, words", [
    ("{not json", "malformed_json", "not valid JSON"),
    ('["a list"]', "malformed_json", "JSON object"),
    ('{"max_uses": "many"}', "invalid_request", "max_uses"),
    ('{"max_uses": 1, "colour": "red"}', "invalid_request", "colour"),
])
def test_malformed_json_on_admin_routes(world, body, code, words):
    cloud = world["cloud"]
    response = requests.post(f"{cloud.url}/admin/jobs/{world['job']['id']}/tokens", data=body,
                             headers={**cloud.admin, "Content-Type": "application/json"})
    assert_error(response, 400, code, words)


def test_bad_job_config_and_admin_auth(world):
    cloud = world["cloud"]
    response = requests.post(f"{cloud.url}/admin/jobs", headers=cloud.admin, data={"config": "{oops"})
    assert_error(response, 400, "malformed_json", "config is not valid JSON")
    response = requests.post(f"{cloud.url}/admin/jobs", headers=cloud.admin,
                             data={"config": '{"name": "x", "rounds": 1, "min_devices": 5, "max_devices": 3}'})
    assert_error(response, 400, "invalid_request", "max_devices must be at least min_devices")
    response = requests.get(f"{cloud.url}/admin/jobs", headers={"Authorization": "Bearer nope"})
    assert_error(response, 401, "unauthorized", "invalid token")


def test_upload_to_a_closed_round(world, bundle_dir):
    cloud = world["cloud"]
    job = cloud.create_job(bundle_dir, name="small", max_devices=2, min_devices=2)
    token = cloud.token(job["id"])
    devices = [cloud.enrol(token) for _ in range(3)]
    plan = cloud.plan(devices[0])
    encoder, round_id = encoder_for(plan), plan["round"]["id"]
    for d in devices[:2]:
        payload = encoder.encode(np.zeros(plan["shared_values"]), 1, round_id=round_id).payload
        assert cloud.upload(d, round_id, payload).status_code == 200
    late = cloud.upload(devices[2], round_id,
                        encoder.encode(np.zeros(plan["shared_values"]), 1, round_id=round_id).payload)
    assert late.status_code == 409 and late.json()["error"] == "round_closed"
