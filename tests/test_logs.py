"""Logs: one JSON line per request (under the development server and gunicorn), structured fields instead of
JSON inside strings, rounds named by their number."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import requests

from device_sim.local_cloud import free_port
from tests.cloud_servers import encoder_for
from tests.conftest import ROOT


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def assert_no_json_in_strings(entries: list[dict]) -> None:
    for entry in entries:
        for value in entry.values():
            if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
                try:
                    json.loads(value)
                except ValueError:
                    continue
                raise AssertionError(f"JSON inside a log string: {entry}")


def test_one_structured_line_per_request_and_rounds_by_number(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2)
    token = cloud.token(job["id"])
    devices = [cloud.enrol(token) for _ in range(2)]
    plan = cloud.plan(devices[0])
    for i, device in enumerate(devices):
        payload = encoder_for(plan, seed=i).encode(np.zeros(plan["shared_values"]), 10, round_id=plan["round"]["id"]).payload
        cloud.upload(device, plan["round"]["id"], payload)
    cloud.wait_for_version(devices[0], 2)
    for _ in range(3):
        requests.get(f"{cloud.url}/openapi.json")
    time.sleep(0.3)
    text = cloud.aggregator.log.read_text()
    entries = json_lines(text)
    assert len([e for e in entries if e.get("path") == "/openapi.json"]) == 3
    assert sum("/openapi.json" in line for line in text.splitlines()) == 3  # no second access log
    published = [e for e in entries if e["message"] == "round published"]
    assert published == [{**published[0], "job": job["id"], "round": 1, "model_version": 2, "contributors": 2}]
    assert_no_json_in_strings(entries)
    keyservice = json_lines(cloud.keyservice.log.read_text())
    decrypted = [e for e in keyservice if e["message"] == "decrypted"]
    assert len(decrypted) == 1 and decrypted[0]["contributors"] == 2 and decrypted[0]["job"] == job["id"]
    assert_no_json_in_strings(keyservice)


def test_gunicorn_writes_no_access_log_of_its_own(tmp_path):
    port = free_port()
    env = {**os.environ, "FEDWEAR_DATA_DIR": str(tmp_path), "FEDWEAR_ADMIN_TOKEN": "a" * 20,
           "FEDWEAR_KEYSERVICE_TOKEN": "k" * 20, "FEDWEAR_KEYSERVICE_URL": "http://127.0.0.1:9"}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "cloud/gunicorn.conf.py", "-b",
                                 f"127.0.0.1:{port}", "cloud.app:create_app(background=True)"],
                                cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        for _ in range(3):  # /healthz only now: 200, degraded (no key service)
            assert requests.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "degraded"
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if "/healthz" in line]
    assert len(lines) == 3 and all(json.loads(line)["path"] == "/healthz" for line in lines)
