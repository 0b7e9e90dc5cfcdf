"""Job lifecycle against real services: stop, abort, fail a round, delete, the failed-rounds limit, tokens."""

import time

import numpy as np
import pytest
import requests

from tests.cloud_servers import Cloud, encoder_for
from tests.test_cloud_ops import run_cloud_cli


def admin(cloud, method, path, **kwargs):
    return requests.request(method, cloud.url + path, headers=cloud.admin, timeout=30, **kwargs)


def upload_zero(cloud, device, plan, seed):
    payload = encoder_for(plan, seed=seed).encode(np.zeros(plan["shared_values"]), 10, round_id=plan["round"]["id"]).payload
    return cloud.upload(device, plan["round"]["id"], payload)


def wait_for(predicate, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def any_cloud(tmp_path, database_url):
    """Services on SQLite and on PostgreSQL (which enforces foreign keys when rows are deleted), the latter
    named by a plain postgresql:// URL as an operator writes it."""
    running = Cloud(tmp_path / "cloud", database_url=database_url.replace("postgresql+psycopg://", "postgresql://"))
    running.start()
    yield running
    running.stop()


def test_stop_lets_the_open_round_finish_then_delete_removes_everything(any_cloud, bundle_dir):
    cloud = any_cloud
    job = cloud.create_job(bundle_dir, rounds=5, min_devices=2, max_devices=2)
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(2)]
    plan = cloud.plan(devices[0])
    assert upload_zero(cloud, devices[0], plan, 0).status_code == 200
    requests.post(f"{cloud.url}/v1/rounds/{plan['round']['id']}/report", headers=devices[0],
                  json={"windows": 10, "accuracy": 0.5})
    stopped = admin(cloud, "POST", f"/admin/jobs/{job['id']}/stop", json={"reason": "enough data"})
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopping"
    assert admin(cloud, "DELETE", f"/admin/jobs/{job['id']}").json()["error"] == "job_not_ended"
    assert upload_zero(cloud, devices[1], plan, 1).status_code == 200  # the open round still completes
    cloud.wait_for_version(devices[0], 2)
    summary = wait_for(lambda: (s := cloud.job(job["id"]))["status"] == "stopped" and s, "the job to stop")
    assert [r["status"] for r in summary["rounds"]] == ["published"]  # no round 2
    assert [e["kind"] for e in summary["events"]] == ["created", "stopping", "stopped"]
    assert summary["events"][1]["reason"] == "enough data"
    assert cloud.plan(devices[0])["job_status"] == "stopped"
    assert admin(cloud, "POST", f"/admin/jobs/{job['id']}/stop", json={}).json()["error"] == "job_not_running"

    job_dir = cloud.data_dir / "jobs" / job["id"]
    assert job_dir.is_dir()
    deleted = admin(cloud, "DELETE", f"/admin/jobs/{job['id']}")
    assert deleted.status_code == 200, deleted.text
    assert admin(cloud, "GET", f"/admin/jobs/{job['id']}").status_code == 404
    assert job["id"] not in {j["id"] for j in admin(cloud, "GET", "/admin/jobs").json()["jobs"]}
    assert not job_dir.exists()
    assert requests.get(f"{cloud.url}/v1/plan", headers=devices[0]).status_code == 401  # its devices are gone


def test_abort_fails_the_open_round_now(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, rounds=5, min_devices=2, max_devices=3)
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(2)]
    plan = cloud.plan(devices[0])
    assert upload_zero(cloud, devices[0], plan, 0).status_code == 200
    aborted = admin(cloud, "POST", f"/admin/jobs/{job['id']}/abort", json={"reason": "bad bundle"})
    assert aborted.status_code == 200 and aborted.json()["status"] == "aborted"
    refused = upload_zero(cloud, devices[1], plan, 1)
    assert refused.status_code == 409 and refused.json()["error"] == "round_closed"
    summary = cloud.job(job["id"])
    assert [(r["status"], r["error"]) for r in summary["rounds"]] == [("failed", "job aborted: bad bundle")]
    assert summary["status_reason"] == "bad bundle"
    time.sleep(0.5)  # ticks pass: nothing reopens
    assert len(cloud.job(job["id"])["rounds"]) == 1
    assert admin(cloud, "POST", f"/admin/jobs/{job['id']}/abort", json={}).json()["error"] == "job_not_running"
    assert admin(cloud, "DELETE", f"/admin/jobs/{job['id']}").status_code == 200


def test_failed_rounds_in_a_row_stop_the_job_with_a_reason(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, rounds=50, min_devices=2, max_devices=3, round_timeout_s=0.3,
                           on_deadline="fail", max_failed_rounds=3)
    summary = wait_for(lambda: (s := cloud.job(job["id"]))["status"] == "stopped" and s, "the job to stop")
    assert [r["status"] for r in summary["rounds"]] == ["failed"] * 3
    assert summary["status_reason"].startswith("3 rounds in a row failed; the last: deadline passed with 0 of 2")
    assert summary["rounds_failed"] == 3
    time.sleep(0.6)
    assert len(cloud.job(job["id"])["rounds"]) == 3  # and stays stopped


def test_operator_fails_a_round_from_the_cli_and_the_next_opens(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, rounds=5, min_devices=2, max_devices=3)
    env = {"FEDWEAR_URL": cloud.url, "FEDWEAR_ADMIN_TOKEN": cloud.admin_token}
    failed = run_cloud_cli("admin", "fail-round", job["id"], "1", "--reason", "poisoned sum suspected", env=env)
    assert failed.returncode == 0, failed.stderr
    summary = cloud.job(job["id"])
    assert [(r["number"], r["status"]) for r in summary["rounds"]] == [(1, "failed"), (2, "open")]
    assert summary["rounds"][0]["error"] == "failed by the operator: poisoned sum suspected"
    again = run_cloud_cli("admin", "fail-round", job["id"], "1", "--reason", "x", env=env)
    assert again.returncode == 1 and "409 round_not_open: round 1 is failed" in again.stderr
    missing = run_cloud_cli("admin", "fail-round", job["id"], "99", "--reason", "x", env=env)
    assert "404 round_not_found" in missing.stderr and "Traceback" not in missing.stderr
    text = run_cloud_cli("admin", "job", job["id"], env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f'job {job["id"]} "test job": running'
    assert any(line.split()[:3] == ["1", "failed", "0"] and "poisoned sum suspected" in line for line in lines)
    round2 = next(line for line in lines if line.split()[:2] == ["2", "open"])
    assert summary["rounds"][1]["deadline"].replace("T", " ")[:19] in round2  # deadline shown
    assert "round_failed (round 1): poisoned sum suspected" in text.stdout
    stopping = run_cloud_cli("admin", "stop", job["id"], env=env)
    assert '"status": "stopping"' in stopping.stdout
    run_cloud_cli("admin", "fail-round", job["id"], "2", "--reason", "wrap up", env=env)
    assert cloud.job(job["id"])["status"] == "stopped"  # a stopping job opens no next round


def test_revoked_token_enrols_no_more(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir)
    env = {"FEDWEAR_URL": cloud.url, "FEDWEAR_ADMIN_TOKEN": cloud.admin_token}
    created = cloud.create_token(job["id"], max_uses=5)
    token_id = admin(cloud, "GET", f"/admin/jobs/{job['id']}/devices").json()["tokens"][0]["id"]
    revoked = run_cloud_cli("admin", "revoke-token", token_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    refused = requests.post(f"{cloud.url}/v1/enrol", json={"token": created})
    assert refused.status_code == 403 and refused.json()["error"] == "token_revoked"
