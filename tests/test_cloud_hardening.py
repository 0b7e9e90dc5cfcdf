"""Attacks on the HTTP surface of a running aggregation service, each answered 4xx or bounded, never 500."""

import json
import re
import secrets
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
import requests

from tests.cloud_servers import POSTGRES_ADMIN_URL, Cloud, encoder_for


@pytest.fixture(scope="module")
def service(tmp_path_factory, bundle_dir):
    """One aggregation service (SQLite) and a job for the attacks that need no database of their own."""
    cloud = Cloud(tmp_path_factory.mktemp("hardening")).start()
    job = cloud.create_job(bundle_dir, max_devices=5, min_devices=2)
    yield cloud, job
    cloud.stop()


def contribution(plan: dict, seed: int) -> bytes:
    update = np.random.default_rng(seed).normal(0, 0.01, plan["shared_values"])
    return encoder_for(plan, seed=seed).encode(update, 10, round_id=plan["round"]["id"]).payload


def chunked(data: bytes, size: int = 4096):
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_slow_uploader_holds_no_database_lock(service):
    cloud, job = service
    token = cloud.token(job["id"], max_uses=None)
    slow, quick = cloud.enrol(token), cloud.enrol(token)
    plan = cloud.plan(slow)
    payload = contribution(plan, 1)
    host, port = urlsplit(cloud.url).hostname, urlsplit(cloud.url).port
    with socket.create_connection((host, port)) as sock:
        sock.sendall((f"PUT /v1/rounds/{plan['round']['id']}/update HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: {slow['Authorization']}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode())
        sent = 0
        for _ in range(6):  # a few bytes per second
            sock.sendall(payload[sent:sent + 2])
            sent += 2
            time.sleep(0.5)
        # the slow body is still incomplete: other devices are answered at once all the same
        assert requests.get(f"{cloud.url}/v1/plan", headers=quick, timeout=10).status_code == 200
        answer = requests.put(f"{cloud.url}/v1/rounds/{plan['round']['id']}/update", headers=quick,
                              data=contribution(plan, 2), timeout=10)
        assert answer.status_code == 200 and answer.json()["contributors"] == 1
        report = requests.post(f"{cloud.url}/v1/rounds/{plan['round']['id']}/report", headers=quick,
                               json={"windows": 3}, timeout=10)
        assert report.status_code == 200
        sock.sendall(payload[sent:])
        sock.settimeout(60)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:500]
    assert json.loads(body)["contributors"] == 2


def series(cloud) -> list[str]:
    text = requests.get(f"{cloud.url}/metrics").text
    return [line for line in text.splitlines() if line.startswith("fedwear_request_seconds_count")]


def test_metrics_do_not_grow_with_made_up_methods_or_paths(service):
    cloud, _ = service
    requests.request("BREW", f"{cloud.url}/healthz")
    requests.get(f"{cloud.url}/no-such-page")
    before = series(cloud)
    for i in range(60):
        requests.request(f"M{secrets.token_hex(4).upper()}", f"{cloud.url}/made-up/{secrets.token_hex(6)}")
        requests.request(f"X{i}", f"{cloud.url}/healthz")
        requests.get(f"{cloud.url}/made-up/{secrets.token_hex(6)}")
    after = series(cloud)
    new = set(after) - set(before)
    assert len(after) <= len(before) + 2, new  # at most /metrics' own series and a status not seen before
    assert not [line for line in after if "made-up" in line or re.search(r'method="[MX][0-9A-F]', line)]
    assert 'method="other"' in "\n".join(after)


def test_json_bodies_sent_chunked_are_limited_and_parsed(service):
    cloud, job = service
    device = cloud.enrol(cloud.token(job["id"]))
    round_id = cloud.plan(device)["round"]["id"]
    url = f"{cloud.url}/v1/rounds/{round_id}/report"
    headers = {**device, "Content-Type": "application/json"}
    small = requests.post(url, headers=headers, data=chunked(b'{"windows": 12, "accuracy": 0.5}'))
    assert small.status_code == 200 and small.json() == {"stored": True}
    big = json.dumps({"windows": 1, "accuracy": 0.5, "pad": "x" * (1 << 20)}).encode()  # 1 MiB, over 64 KiB
    for body in (big, chunked(big)):
        try:
            response = requests.post(url, headers=headers, data=body, timeout=30)
        except requests.ConnectionError:  # the server may close before the client has sent everything
            continue
        assert response.status_code == 413 and response.json()["error"] == "request_entity_too_large"
        assert "65536 bytes" in response.json()["message"]
    enrol = requests.post(f"{cloud.url}/v1/enrol", headers={"Content-Type": "application/json"},
                          data=chunked(big), timeout=30)
    assert enrol.status_code == 413


@pytest.mark.parametrize("send", ["sized", "chunked"])
def test_deeply_nested_json_is_a_bad_request(service, bundle_dir, send):
    cloud, job = service
    device = cloud.enrol(cloud.token(job["id"]))
    round_id = cloud.plan(device)["round"]["id"]
    nested = b"[" * 20000 + b"]" * 20000  # 40 KB: under the size limit
    json_headers = {"Content-Type": "application/json"}
    calls = [
        ("POST", "/v1/enrol", json_headers),
        ("POST", f"/v1/rounds/{round_id}/report", {**json_headers, **device}),
        ("POST", f"/admin/jobs/{job['id']}/tokens", {**json_headers, **cloud.admin}),
    ]
    for method, path, headers in calls:
        body = nested if send == "sized" else chunked(nested)
        response = requests.request(method, cloud.url + path, headers=headers, data=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {"error": "malformed_json", "message": "request body is nested too deeply"}
    with open(bundle_dir / "model.tflite", "rb") as model, open(bundle_dir / "manifest.json", "rb") as manifest:
        response = requests.post(f"{cloud.url}/admin/jobs", headers=cloud.admin,
                                 files={"model": model, "manifest": manifest}, data={"config": nested.decode()})
    assert response.status_code == 400 and response.json()["message"] == "config is nested too deeply"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def on_each_database(request, tmp_path_factory, bundle_dir):
    """An aggregation service on SQLite, then on PostgreSQL, with a job and an enrolled device."""
    tmp = tmp_path_factory.mktemp(f"ids-{request.param}")
    url = f"sqlite:///{tmp / 'fedwear.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    cloud = Cloud(tmp, url).start()
    job = cloud.create_job(bundle_dir)
    token = cloud.token(job["id"], max_uses=None)
    yield {"cloud": cloud, "job": job, "token": token, "device": cloud.enrol(token)}
    cloud.stop()


@pytest.mark.parametrize("round_id", [2**31, 2**63, 2**64 + 1])
@pytest.mark.parametrize("method, route", [("PUT", "/v1/rounds/{}/update"), ("POST", "/v1/rounds/{}/report"),
                                           ("GET", "/v1/weights/{}")])
def test_round_ids_out_of_range_are_not_found(on_each_database, method, route, round_id):
    cloud, device = on_each_database["cloud"], on_each_database["device"]
    response = requests.request(method, cloud.url + route.format(round_id), headers=device, json={"windows": 1})
    assert response.status_code == 404, response.text


NUL_REQUESTS = {
    "enrolment name": lambda w: requests.post(f"{w['cloud'].url}/v1/enrol",
                                              json={"token": w["token"], "name": "watch\u0000"}),
    "enrolment token": lambda w: requests.post(f"{w['cloud'].url}/v1/enrol", json={"token": "enr_\u0000x"}),
    "device id in the bearer token": lambda w: requests.get(
        f"{w['cloud'].url}/v1/plan",
        headers={"Authorization": w["device"]["Authorization"].replace(".", "\0.", 1)}),
    "job id": lambda w: requests.get(f"{w['cloud'].url}/admin/jobs/{w['job']['id']}%00", headers=w["cloud"].admin),
    "device id": lambda w: requests.post(f"{w['cloud'].url}/admin/devices/a%00b/revoke", headers=w["cloud"].admin),
    "token id": lambda w: requests.post(f"{w['cloud'].url}/admin/tokens/%00/revoke", headers=w["cloud"].admin),
    "job name": lambda w: requests.post(f"{w['cloud'].url}/admin/jobs", headers=w["cloud"].admin, data={
        "config": json.dumps({"name": "a\u0000", "rounds": 1, "min_devices": 2, "max_devices": 2})}),
}


@pytest.mark.parametrize("where", list(NUL_REQUESTS))
def test_nul_bytes_are_client_errors(on_each_database, where):
    response = NUL_REQUESTS[where](on_each_database)
    assert response.status_code == 400, (response.request.url, response.text)
    assert "NUL" in response.text or "pattern" in response.text, response.text
    health = requests.get(f"{on_each_database['cloud'].url}/healthz").json()
    assert health == {"status": "ok", "database": "ok", "keyservice": "ok"}


def test_health_check_never_shows_database_errors(tmp_path):
    name = "fedwear_health_" + secrets.token_hex(4)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    cloud = Cloud(tmp_path, f"{base}/{name}").start()
    try:
        assert requests.get(f"{cloud.url}/healthz").json() == {"status": "ok", "database": "ok", "keyservice": "ok"}
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        response = requests.get(f"{cloud.url}/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unhealthy", "error": "database_unreachable",
                                   "message": "the database cannot be reached; see the server log",
                                   "database": "unreachable", "keyservice": "ok"}
        assert name in cloud.aggregator.log.read_text()  # the details are in the log, for the operator
    finally:
        cloud.stop()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
