"""Operations surface: health, metrics, dashboard, OpenAPI document, and API fuzzing."""

import re
import subprocess
import sys

import numpy as np
import requests

from tests.cloud_servers import encoder_for


def test_health_metrics_and_dashboard(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, name="dash <job>", max_devices=2, min_devices=2)
    token = cloud.token(job["id"])
    devices = [cloud.enrol(token) for _ in range(2)]
    plan = cloud.plan(devices[0])
    requests.get(f"{cloud.url}/v1/bundle/model.tflite", headers=devices[0])
    for i, d in enumerate(devices):
        payload = encoder_for(plan, seed=i).encode(np.zeros(plan["shared_values"]), 10,
                                                   round_id=plan["round"]["id"]).payload
        assert cloud.upload(d, plan["round"]["id"], payload).status_code == 200
        report = requests.post(f"{cloud.url}/v1/rounds/{plan['round']['id']}/report", headers=d,
                               json={"windows": 120, "accuracy": 0.5 + 0.2 * i})
        assert report.status_code == 200
    cloud.wait_for_version(devices[0], 2)
    assert requests.get(f"{cloud.url}/healthz").json() == {"status": "ok", "database": "ok", "keyservice": "ok"}
    response = requests.get(f"{cloud.url}/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = response.text
    assert re.search(r'fedwear_uploads_total\{result="accepted"\} 2\.0', metrics)
    assert re.search(r"fedwear_rounds_published_total 1\.0", metrics)
    job_id = job["id"]
    for gauge, value in [("open_round", 2), ("round_contributors", 0), ("devices_enrolled", 2),
                         ("rounds_failed", 0), ("rounds_extended", 0)]:
        assert f'fedwear_job_{gauge}{{job="{job_id}"}} {value}.0' in metrics, gauge
    assert requests.get(f"{cloud.url}/dashboard").status_code == 401
    for user, password in (("operator", cloud.admin_token), ("admin", "wrong"), ("", cloud.admin_token)):
        refused = requests.get(f"{cloud.url}/dashboard", auth=(user, password))
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
    page = requests.get(f"{cloud.url}/dashboard?job={job_id}", auth=("admin", cloud.admin_token))
    assert page.status_code == 200 and "<svg" in page.text
    assert "dash &lt;job&gt;" in page.text  # escaped
    assert "0.600" in page.text  # mean accuracy devices reported for round 1
    # the dashboard's script polls the admin API's GET routes with the same basic auth; changes need the bearer
    polled = requests.get(f"{cloud.url}/admin/jobs", auth=("admin", cloud.admin_token))
    assert polled.status_code == 200 and polled.json()["jobs"][0]["open_round"]["number"] == 2
    forged = requests.post(f"{cloud.url}/admin/jobs/{job_id}/stop", auth=("admin", cloud.admin_token), json={})
    assert forged.status_code == 401
    # ETag: a second download of an unchanged bundle is a 304
    first = requests.get(f"{cloud.url}/v1/bundle/model.tflite", headers=devices[0])
    again = requests.get(f"{cloud.url}/v1/bundle/model.tflite",
                         headers={**devices[0], "If-None-Match": first.headers["ETag"]})
    assert first.status_code == 200 and again.status_code == 304


def test_openapi_document_matches_the_routes(cloud):
    spec = requests.get(f"{cloud.url}/openapi.json").json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    from cloud.app import create_app
    from cloud.settings import Settings

    app = create_app(Settings(data_dir=cloud.data_dir.parent / "doccheck", database_url="sqlite://",
                              admin_token="x" * 16, keyservice_url="http://127.0.0.1:9", keyservice_token="y" * 16))
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented


def test_schemathesis_finds_no_server_error_and_answers_match_their_schemas(cloud, bundle_dir, tmp_path):
    """Fuzzing with generated, chunked and deeply nested bodies (tests/schemathesis_hooks.py)."""
    import os

    from tests.conftest import ROOT

    job = cloud.create_job(bundle_dir)
    device = cloud.enrol(cloud.token(job["id"]))
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    for headers in (cloud.admin, device):
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{cloud.url}/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "25", "--seed", "1",
             "--header", f"Authorization: {headers['Authorization']}", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert requests.get(f"{cloud.url}/healthz").status_code == 200


def run_cloud_cli(*args, env=None):
    import os

    from tests.conftest import ROOT

    return subprocess.run([sys.executable, "-m", "cloud", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_admin_cli_creates_tokens_and_lists_jobs(cloud, bundle_dir):
    import json

    env = cloud.operator_env
    config = json.dumps({"name": "cli job", "rounds": 2, "min_devices": 2, "max_devices": 4})
    created = run_cloud_cli("admin", "create-job", "--bundle", str(bundle_dir), "--config", config, env=env)
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]
    registered = requests.get(f"{cloud.keyservice_url}/jobs/{job_id}",
                              headers={"Authorization": f"Bearer {cloud.ks_admin_token}"})
    assert registered.status_code == 200 and registered.json()["min_contributors"] == 2
    unregistered = run_cloud_cli("admin", "create-job", "--bundle", str(bundle_dir), "--config", config,
                                 env={**env, "FEDWEAR_KS_ADMIN_TOKEN": ""})
    assert unregistered.returncode != 0 and "register-job" in unregistered.stderr
    again = run_cloud_cli("admin", "register-job", json.loads(unregistered.stdout)["id"], env=env)
    assert again.returncode == 0, again.stderr
    token = run_cloud_cli("admin", "create-token", job_id, "--max-uses", "3", env=env)
    assert token.returncode == 0 and json.loads(token.stdout)["max_uses"] == 3
    cloud.enrol(json.loads(token.stdout)["token"])
    listed = run_cloud_cli("admin", "jobs", env=env)
    assert job_id in listed.stdout
    denied = run_cloud_cli("admin", "jobs", env={**env, "FEDWEAR_ADMIN_TOKEN": "wrong"})
    assert denied.returncode != 0 and "401 unauthorized" in denied.stderr


def test_serve_without_admin_token_says_what_to_set(tmp_path):
    proc = run_cloud_cli("serve", env={"FEDWEAR_ADMIN_TOKEN": "", "FEDWEAR_DATA_DIR": str(tmp_path)})
    assert proc.returncode != 0 and "FEDWEAR_ADMIN_TOKEN must be set" in proc.stderr
