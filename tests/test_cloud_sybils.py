"""Sybils against real services: single-use tokens, the enrolment rate limit and device attestation."""

import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import create_engine, text

from device_sim import synthetic
from sdk.attestation import DEVICE_KEY_FILE, SIGNATURE_HEADER, DeviceKey, verify_signature
from sdk.client import FedWearClient
from tests.cloud_servers import Cloud, encoder_for

ROOT = Path(__file__).resolve().parents[1]


def enrol(cloud, token: str, key: DeviceKey | None = None, source: str = "127.0.0.1",
          forwarded_for: str | None = None) -> tuple[int, dict, dict]:
    """POST /v1/enrol from a chosen loopback address: (status, headers, JSON body)."""
    body = {"token": token, **({"device_key": key.public_key()} if key else {})}
    host, port = cloud.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/json",
                   **({"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {})}
        conn.request("POST", "/v1/enrol", json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def auth(answer: dict) -> dict:
    return {"Authorization": answer["authorization"]}


def test_a_token_enrols_one_device_by_default_so_a_second_sybil_is_refused(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir)
    created = requests.post(f"{cloud.url}/admin/jobs/{job['id']}/tokens", headers=cloud.admin, json={})
    assert created.status_code == 201 and created.json()["max_uses"] == 1
    env = {**os.environ, "FEDWEAR_URL": cloud.url, "FEDWEAR_ADMIN_TOKEN": cloud.admin_token}
    cli = [sys.executable, "-m", "cloud", "admin", "create-token", job["id"]]
    by_cli = subprocess.run(cli, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert by_cli.returncode == 0 and json.loads(by_cli.stdout)["max_uses"] == 1, by_cli.stderr
    tokens = [created.json()["token"], json.loads(by_cli.stdout)["token"], cloud.create_token(job["id"])]
    for token in tokens:  # the API's, the CLI's and the simulator's default: single-use
        assert enrol(cloud, token)[0] == 201
        status, _, body = enrol(cloud, token)
        assert (status, body["error"]) == (403, "token_used"), body
    unlimited = subprocess.run([*cli, "--unlimited"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert json.loads(unlimited.stdout)["max_uses"] is None  # only when the operator says so
    zero = subprocess.run([*cli, "--max-uses", "0"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert zero.returncode == 2 and "--max-uses" in zero.stderr


def at_start_of_a_minute() -> None:
    """The limits count per clock minute: start a test's attempts well inside one."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def test_enrolment_is_rate_limited_per_token_and_per_address(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path, database_url,
                  env={"FEDWEAR_ENROLMENTS_PER_TOKEN": "3", "FEDWEAR_ENROLMENTS_PER_ADDRESS": "5"}).start()
    # addresses of this test alone: the session's PostgreSQL database holds other tests' counters too
    here, elsewhere = "127.0.0.81", "127.0.0.82"
    try:
        job = cloud.create_job(bundle_dir)
        sybils, other = cloud.token(job["id"], max_uses=None), cloud.token(job["id"], max_uses=None)
        at_start_of_a_minute()
        with ThreadPoolExecutor(4) as pool:  # at once: the count is atomic in the shared database
            answers = list(pool.map(lambda _: enrol(cloud, sybils, source=here), range(4)))
        assert sorted(status for status, _, _ in answers) == [201, 201, 201, 429]
        _, headers, body = next(a for a in answers if a[0] == 429)
        assert body["error"] == "enrolment_rate_limited" and "with this token (at most 3 a minute)" in body["message"]
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert enrol(cloud, other, source=here)[0] == 201  # the fifth attempt from this address
        status, headers, body = enrol(cloud, other, source=here)
        assert (status, body["error"]) == (429, "enrolment_rate_limited") and "from this address" in body["message"]
        assert int(headers["Retry-After"]) >= 1
        status, _, body = enrol(cloud, cloud.token(job["id"]), source=here, forwarded_for="10.9.9.9")
        assert status == 429 and "from this address" in body["message"]  # no trusted proxy: the header is ignored
        assert enrol(cloud, other, source=elsewhere)[0] == 201  # another address is not held back
        guesses = [enrol(cloud, f"enr_guess{i}", source=elsewhere)[0] for i in range(5)]
        assert guesses == [401, 401, 401, 401, 429]  # guessing tokens counts too
        devices = requests.get(f"{cloud.url}/admin/jobs/{job['id']}/devices", headers=cloud.admin).json()
        assert len(devices["devices"]) == 5
    finally:
        cloud.stop()


def test_behind_a_trusted_proxy_the_limit_counts_the_address_it_forwards(tmp_path, bundle_dir):
    cloud = Cloud(tmp_path, env={"FEDWEAR_TRUSTED_PROXIES": "1", "FEDWEAR_ENROLMENTS_PER_ADDRESS": "2"}).start()
    try:
        token = cloud.token(cloud.create_job(bundle_dir)["id"], max_uses=None)
        at_start_of_a_minute()
        assert [enrol(cloud, token, forwarded_for="10.0.0.1")[0] for _ in range(3)] == [201, 201, 429]
        assert enrol(cloud, token, forwarded_for="10.0.0.2")[0] == 201  # another device behind the proxy
        # what the client wrote itself comes first; the proxy appends the address it saw
        assert enrol(cloud, token, forwarded_for="10.0.0.3, 10.0.0.1")[0] == 429
    finally:
        cloud.stop()


def signed_upload(cloud, device: dict, round_id: int, payload: bytes, signature: str | None) -> requests.Response:
    headers = {**device, **({SIGNATURE_HEADER: signature} if signature is not None else {})}
    return requests.put(f"{cloud.url}/v1/rounds/{round_id}/update", headers=headers, data=payload)


def test_an_attested_job_refuses_uploads_its_device_key_did_not_sign(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path / "cloud", database_url).start()
    try:
        job = cloud.create_job(bundle_dir, require_attestation=True, max_devices=3, min_devices=2)
        assert job["config"]["require_attestation"] is True
        token = cloud.token(job["id"], max_uses=2)
        status, _, body = enrol(cloud, token)
        assert (status, body["error"]) == (400, "device_key_required"), body
        p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        for wrong in ("not base64!", base64.b64encode(b"junk").decode(),
                      *(base64.b64encode(k.public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
                        for k in (p384, rsa_key))):
            answer = requests.post(f"{cloud.url}/v1/enrol", json={"token": token, "device_key": wrong})
            assert answer.status_code == 400 and "device_key" in answer.json()["message"], answer.text
        keys = [DeviceKey.load_or_create(tmp_path / f"key{i}.pem") for i in range(3)]
        first, second = (auth(enrol(cloud, token, key)[2]) for key in keys[:2])  # refusals used no enrolment
        plan = cloud.plan(first)
        round_id, values = plan["round"]["id"], plan["shared_values"]
        payload = encoder_for(plan, seed=1).encode(np.random.default_rng(1).normal(0, 0.01, values), 9,
                                                   round_id=round_id).payload
        other = encoder_for(plan, seed=2).encode(np.zeros(values), 9, round_id=round_id).payload
        refused = {
            "unsigned": signed_upload(cloud, first, round_id, payload, None),
            "empty": signed_upload(cloud, first, round_id, payload, ""),
            "junk": signed_upload(cloud, first, round_id, payload, "AAAA"),
            "too long": signed_upload(cloud, first, round_id, payload, "A" * 5000),
            "another device's key": signed_upload(cloud, first, round_id, payload,
                                                  keys[2].sign_upload(round_id, payload)),
            "another round": signed_upload(cloud, first, round_id, payload, keys[0].sign_upload(round_id + 1, payload)),
            "another payload": signed_upload(cloud, first, round_id, payload, keys[0].sign_upload(round_id, other)),
        }
        for what, answer in refused.items():
            assert answer.status_code == 401 and answer.json()["error"] == "bad_signature", (what, answer.text)
        huge = signed_upload(cloud, first, 2**64 + 1, payload, keys[0].sign_upload(round_id, payload))
        assert huge.status_code == 404 and huge.json()["error"] == "round_not_found", huge.text  # before any signature
        assert cloud.job(job["id"])["rounds"][0]["contributors"] == 0
        signature = keys[0].sign_upload(round_id, payload)
        accepted = signed_upload(cloud, first, round_id, payload, signature)
        assert accepted.status_code == 200 and accepted.json()["contributors"] == 1, accepted.text
        copied = signed_upload(cloud, second, round_id, payload, signature)  # a copy of the first's bytes and signature
        assert copied.status_code == 401 and copied.json()["error"] == "bad_signature"
        assert cloud.job(job["id"])["rounds"][0]["contributors"] == 1
        listed = requests.get(f"{cloud.url}/admin/jobs/{job['id']}/devices", headers=cloud.admin).json()["devices"]
        assert sorted(d["device_key"] for d in listed) == sorted(k.public_key() for k in keys[:2])
        engine = create_engine(database_url)
        with engine.connect() as conn:  # what the key service can check: the device's key and its signature
            stored = conn.execute(text("SELECT d.device_key, c.signature, c.payload_sha256 FROM contributions c "
                                       "JOIN devices d ON d.id = c.device_id WHERE c.round_id = :r"),
                                  {"r": round_id}).all()
        engine.dispose()
        assert stored == [(keys[0].public_key(), signature, hashlib.sha256(payload).hexdigest())]
        assert verify_signature(stored[0][0], round_id, bytes.fromhex(stored[0][2]), stored[0][1])
        assert not verify_signature(stored[0][0], round_id + 1, bytes.fromhex(stored[0][2]), stored[0][1])
    finally:
        cloud.stop()


def test_the_sdk_makes_a_device_key_and_signs_its_uploads_to_an_attested_job(cloud, bundle_dir, tmp_path):
    job = cloud.create_job(bundle_dir, require_attestation=True, max_devices=2, min_devices=2)
    token = cloud.token(job["id"], max_uses=2)
    fleet = synthetic.generate(subjects=2, executions=2, seed=3).devices
    clients = [FedWearClient(cloud.url, token, tmp_path / f"device{i}") for i in range(2)]
    cloud.register_device_keys(job["id"], {c.enrol(): c.device_key.public_key() for c in clients})
    outcomes = [client.participate(device.windows, device.labels) for client, device in zip(clients, fleet)]
    assert [o.status for o in outcomes] == ["uploaded", "uploaded"], [o.reason for o in outcomes]
    for i in range(2):
        key_file = tmp_path / f"device{i}" / DEVICE_KEY_FILE
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert b"BEGIN PRIVATE KEY" in key_file.read_bytes()
    assert clients[0].device_key.public_key() != clients[1].device_key.public_key()
    cloud.wait_for_version(auth(clients[0]._credentials), 2)


def test_an_operator_who_enrols_sybils_itself_still_reads_one_devices_update(cloud, bundle_dir, tmp_path):
    """The honest-but-curious limit, shown rather than claimed: the operator can make tokens, so single-use
    tokens, the rate limit and attestation cannot stop it from filling a round with devices of its own."""
    job = cloud.create_job(bundle_dir, require_attestation=True, min_devices=3, max_devices=3)
    victim_key = DeviceKey.load_or_create(tmp_path / "victim.pem")
    victim = auth(enrol(cloud, cloud.token(job["id"], max_uses=1), victim_key)[2])
    sybil_token = cloud.token(job["id"], max_uses=2)
    sybil_keys = [DeviceKey.load_or_create(tmp_path / f"sybil{i}.pem") for i in range(2)]
    sybils = [auth(enrol(cloud, sybil_token, key, source=f"127.0.0.{20 + i}")[2]) for i, key in enumerate(sybil_keys)]
    assert len(cloud.register_enrolled_keys(job["id"])) == 3  # its Sybils' keys as well as the victim's
    plan = cloud.plan(victim)
    round_id, values = plan["round"]["id"], plan["shared_values"]
    update = np.random.default_rng(4).normal(0, 0.01, values)
    payload = encoder_for(plan, seed=4).encode(update, 100, round_id=round_id).payload
    assert signed_upload(cloud, victim, round_id, payload, victim_key.sign_upload(round_id, payload)).status_code == 200
    for i, (sybil, key) in enumerate(zip(sybils, sybil_keys)):  # zero updates of the smallest weight
        zero = encoder_for(plan, seed=10 + i).encode(np.zeros(values), 1, round_id=round_id).payload
        assert signed_upload(cloud, sybil, round_id, zero, key.sign_upload(round_id, zero)).status_code == 200
    cloud.wait_for_version(victim, 2)
    moved = cloud.weights(victim, 2).astype(np.float64) - cloud.weights(victim, 1)
    assert np.corrcoef(moved, update)[0, 1] > 0.999


def test_a_fleet_takes_part_in_an_attested_job(cloud, tmp_path):
    from click.testing import CliRunner

    from device_sim.cli import main
    from tests.test_repeat_runs import QUICK

    bundle = tmp_path / "bundle"
    assert CliRunner().invoke(main, ["export-bundle", "--subjects", "4", "--out", str(bundle)]).exit_code == 0
    job = cloud.create_job(bundle, rounds=1, min_devices=2, max_devices=2, require_attestation=True)
    token = cloud.token(job["id"], max_uses=2)
    result = CliRunner().invoke(main, ["run", "--url", cloud.url, "--job", job["id"], "--token", token,
                                       "--rounds", "1", "--out", str(tmp_path / "fleet"), *QUICK],
                                env={"FEDWEAR_ADMIN_TOKEN": "", "FEDWEAR_KEYSERVICE_URL": cloud.keyservice_url,
                                     "FEDWEAR_KS_ADMIN_TOKEN": cloud.ks_admin_token})  # registers its device keys
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "round   1: 2 devices" in result.output
    assert cloud.job(job["id"])["model_version"] == 2
    assert len(list((tmp_path / "fleet").rglob(DEVICE_KEY_FILE))) == 2  # one key per virtual device
    ks_devices = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "jobs" / job["id"] / "devices"
    assert len(list(ks_devices.glob("*.json"))) == 2  # registered with the key service before they uploaded
