"""Attested jobs: the key service verifies each contribution of a sub-sum against the device keys the
operator registered, multiplies them and counts them itself; an aggregator that lies gets nothing decrypted."""

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from sqlalchemy import create_engine, text

from sdk.attestation import DeviceKey
from sdk.crypto.codec import UpdateEncoder
from sdk.crypto.packing import mean_error_bound
from tests.cloud_servers import Cloud, encoder_for
from tests.test_cloud_sybils import auth, enrol, signed_upload
from tests.test_keyservice import (PARAMS, VALUES, aggregate_of, aggregator, decrypt, ks, operator, public_key,
                                  register)

ROOT = Path(__file__).resolve().parents[1]
ROUND = 7


def register_key(cloud, job: str, device: str, key: DeviceKey, headers: dict | None = None) -> requests.Response:
    return requests.put(f"{ks(cloud)}/jobs/{job}/devices/{device}", json={"device_key": key.public_key()},
                        headers=headers or operator(cloud))


def contribution(device: str, key: DeviceKey, payload: bytes, round_id: int = ROUND) -> dict:
    """A contribution as the aggregator holds it: device id, the device's signature, the payload."""
    return {"device_id": device, "signature": key.sign_upload(round_id, payload),
            "payload": base64.b64encode(payload).decode()}


def decrypt_signed(cloud, job: str, contributions: list[dict], part: int = 0, minimum: int = 3) -> requests.Response:
    body = json.dumps({"contributions": contributions}).encode()
    return decrypt(cloud, job, body, minimum=minimum, part=part, round_id=ROUND)


def decryptions(cloud) -> list[dict]:
    log = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "decryptions.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def attested(cloud, tmp_path):
    """Job `att` registered with require_attestation (minimum 3, 2 sub-sums), five devices with registered keys
    and their signed payloads of round ROUND; the first is the victim."""
    assert register(cloud, "att", require_attestation=True).status_code == 200
    public = public_key(cloud)
    devices = {}
    for i in range(5):
        key = DeviceKey.load_or_create(tmp_path / f"device{i}.pem")
        update = np.random.default_rng(i).normal(0, 0.05, VALUES)
        payload = UpdateEncoder(PARAMS, public, seed=i).encode(update, 10 * (i + 1), round_id=ROUND).payload
        assert register_key(cloud, "att", f"dev{i}", key).status_code == 200
        devices[f"dev{i}"] = (key, payload, update)
    return devices


def test_the_operator_alone_registers_device_keys_of_attested_jobs_once(cloud, attested, tmp_path):
    key, other = attested["dev0"][0], DeviceKey.load_or_create(tmp_path / "other.pem")
    assert register_key(cloud, "att", "dev0", key).status_code == 200  # the same again
    changed = register_key(cloud, "att", "dev0", other)
    assert changed.status_code == 409 and changed.json()["error"] == "already_registered"
    assert register_key(cloud, "att", "new", other, headers=aggregator(cloud)).status_code == 401
    assert register(cloud, "plain").status_code == 200
    plain = register_key(cloud, "plain", "dev0", key)
    assert plain.status_code == 409 and plain.json()["error"] == "attestation_not_required"
    assert register_key(cloud, "nobody", "dev0", key).status_code == 404
    for junk in [{"device_key": "not base64!"}, {"device_key": base64.b64encode(b"junk").decode()}, {},
                 {"device_key": key.public_key(), "extra": 1}]:
        answer = requests.put(f"{ks(cloud)}/jobs/att/devices/dev9", json=junk, headers=operator(cloud))
        assert answer.status_code == 400, (junk, answer.text)
    assert requests.put(f"{ks(cloud)}/jobs/att/devices/a.b", json={"device_key": key.public_key()},
                        headers=operator(cloud)).status_code == 400


def test_an_aggregator_that_lies_about_a_signed_subsum_gets_nothing_decrypted(cloud, attested, tmp_path):
    """The victim's real contribution beside contributions the aggregator made itself: forged signatures
    in honest devices' names, a key the operator never registered, the victim's payload twice, the victim
    twice, or a sum instead of contributions. None is decrypted, so the victim's update is not revealed."""
    (victim_key, victim_payload, _), honest = attested["dev0"], attested["dev1"]
    victim = contribution("dev0", victim_key, victim_payload)
    own = DeviceKey.load_or_create(tmp_path / "aggregators-own.pem")
    public = public_key(cloud)
    zeros = [UpdateEncoder(PARAMS, public, seed=50 + i).encode(np.zeros(VALUES), 1, round_id=ROUND).payload
             for i in range(2)]
    lies = {
        "forged signatures in honest devices' names": [victim, contribution("dev1", own, zeros[0]),
                                                       contribution("dev2", own, zeros[1])],
        "an honest device's signature over another payload": [
            victim, {**contribution("dev1", honest[0], honest[1]), "payload": base64.b64encode(zeros[0]).decode()},
            contribution("dev2", *attested["dev2"][:2])],
        "a key the operator never registered": [victim, contribution("sybil", own, zeros[0]),
                                                contribution("dev2", *attested["dev2"][:2])],
        "the victim's payload twice": [victim, {**victim, "device_id": "dev1", "signature": victim["signature"]},
                                       contribution("dev2", *attested["dev2"][:2])],
        "the victim twice": [victim, victim, contribution("dev2", *attested["dev2"][:2])],
        "a signature for another round": [victim, contribution("dev1", *honest[:2], round_id=ROUND + 1),
                                          contribution("dev2", *attested["dev2"][:2])],
    }
    reasons = {
        "forged signatures in honest devices' names": "dev1's signature is not its registered key's signature",
        "an honest device's signature over another payload": "dev1's signature is not",
        "a key the operator never registered": "device sybil has no device key registered",
        "the victim's payload twice": "device dev1's payload is device dev0's too",
        "the victim twice": "device dev0 is given twice",
        "a signature for another round": "dev1's signature is not its registered key's signature",
    }
    for lie, contributions in lies.items():
        answer = decrypt_signed(cloud, "att", contributions)
        assert answer.status_code == 422 and reasons[lie] in answer.json()["message"], (lie, answer.text)
    alone = decrypt_signed(cloud, "att", [victim])
    assert alone.status_code == 422 and "at least 3 verified" in alone.json()["message"]
    # a product the aggregator made is not what an attested job takes
    product = decrypt(cloud, "att", aggregate_of(public, 3, round_id=ROUND), round_id=ROUND)
    assert product.status_code == 400 and "requires attestation" in product.json()["message"]
    assert decryptions(cloud) == []  # nothing was decrypted


def test_the_key_service_counts_and_decrypts_verified_contributions_once_per_round(cloud, attested):
    signed = {device: contribution(device, key, payload) for device, (key, payload, _) in attested.items()}
    first = decrypt_signed(cloud, "att", [signed["dev0"], signed["dev1"], signed["dev2"]])
    assert first.status_code == 200 and first.json()["contributors"] == 3, first.text
    mean = np.frombuffer(base64.b64decode(first.json()["mean"]), "<f4")
    weights = [10, 20, 30]
    expected = sum(w * attested[f"dev{i}"][2] for i, w in enumerate(weights)) / sum(weights)
    assert np.max(np.abs(mean - expected)) <= mean_error_bound(PARAMS, 3, sum(weights)) + 1e-6
    assert first.json()["total_weight"] == sum(weights)
    again = decrypt_signed(cloud, "att", [signed["dev2"], signed["dev0"], signed["dev1"]])  # any order
    assert again.status_code == 200 and again.json() == first.json()
    other = decrypt_signed(cloud, "att", [signed["dev0"], signed["dev1"], signed["dev3"]])
    assert other.status_code == 409 and other.json()["error"] == "already_decrypted"
    # sub-sum 1 may not reuse a contribution of sub-sum 0: the difference of the two would be one update
    reused = decrypt_signed(cloud, "att", [signed["dev0"], signed["dev3"], signed["dev4"]], part=1)
    assert reused.status_code == 422 and "dev0's contribution is in a sub-sum of this round already decrypted" in \
        reused.json()["message"]
    assert [(e["part"], e["contributors"]) for e in decryptions(cloud)] == [(0, 3)]


def run_cli(cloud, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **cloud.operator_env}
    return subprocess.run([sys.executable, "-m", "cloud", "admin", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_an_attested_round_publishes_what_the_key_service_verified(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path / "cloud", database_url).start()
    try:
        job = cloud.create_job(bundle_dir, require_attestation=True, min_devices=3, max_devices=3)
        keys = [DeviceKey.load_or_create(tmp_path / f"key{i}.pem") for i in range(3)]
        token = cloud.token(job["id"], max_uses=3)
        devices = [auth(enrol(cloud, token, key, source=f"127.0.0.{30 + i}")[2]) for i, key in enumerate(keys)]
        registered = run_cli(cloud, "register-devices", job["id"])  # every enrolled key, from the operator
        assert registered.returncode == 0 and len(json.loads(registered.stdout)["registered"]) == 3, registered.stderr
        plan = cloud.plan(devices[0])
        round_id, base = plan["round"]["id"], cloud.weights(devices[0], 1)
        updates = [np.random.default_rng(i).normal(0, 0.05, plan["shared_values"]) for i in range(3)]
        weights = [100, 50, 250]
        for i, (device, key) in enumerate(zip(devices, keys)):
            payload = encoder_for(plan, seed=i).encode(updates[i], weights[i], round_id=round_id).payload
            answer = signed_upload(cloud, device, round_id, payload, key.sign_upload(round_id, payload))
            assert answer.status_code == 200, answer.text
        cloud.wait_for_version(devices[0], 2)
        fedavg = sum(w * u for w, u in zip(weights, updates)) / sum(weights)
        bound = mean_error_bound(encoder_for(plan).params, 3, sum(weights))
        assert np.max(np.abs(cloud.weights(devices[0], 2) - (base + fedavg))) <= bound + 1e-6
        assert [e["contributors"] for e in decryptions(cloud)] == [3]
        engine = create_engine(database_url)
        with engine.connect() as conn:  # the payloads kept for the key service are gone once the round ended
            kept = conn.execute(text("SELECT count(*) FROM contributions c JOIN rounds r ON r.id = c.round_id "
                                     "WHERE r.job_id = :job AND c.payload IS NOT NULL"), {"job": job["id"]}).scalar()
        engine.dispose()
        assert kept == 0
    finally:
        cloud.stop()


def test_a_device_whose_key_is_not_registered_does_not_count(cloud, bundle_dir, tmp_path):
    job = cloud.create_job(bundle_dir, require_attestation=True, min_devices=3, max_devices=3, rounds=2)
    keys = [DeviceKey.load_or_create(tmp_path / f"key{i}.pem") for i in range(3)]
    token = cloud.token(job["id"], max_uses=3)
    answers = [enrol(cloud, token, key, source=f"127.0.0.{40 + i}")[2] for i, key in enumerate(keys)]
    devices = [auth(a) for a in answers]
    cloud.register_device_keys(job["id"], {answers[i]["device_id"]: keys[i].public_key() for i in range(2)})
    plan = cloud.plan(devices[0])
    round_id = plan["round"]["id"]
    for i, (device, key) in enumerate(zip(devices, keys)):
        payload = encoder_for(plan, seed=i).encode(np.zeros(plan["shared_values"]), 5, round_id=round_id).payload
        assert signed_upload(cloud, device, round_id, payload, key.sign_upload(round_id, payload)).status_code == 200
    unregistered = answers[2]["device_id"]
    for _ in range(300):
        first = next(r for r in cloud.job(job["id"])["rounds"] if r["number"] == 1)
        if first["status"] == "failed":
            break
        time.sleep(0.1)
    assert first["status"] == "failed", first
    assert f"device {unregistered} has no device key registered" in first["error"]
    assert decryptions(cloud) == []
