"""Server-side selection on real services: check-ins select up to the quota, only selected devices count,
the others are told when to come back, several workers never select too many; the plan's long-poll."""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from device_sim.local_cloud import free_port
from tests.cloud_servers import Cloud, encoder_for
from tests.conftest import ROOT


def _payload(plan, seed):
    """An update encrypted from a plan already fetched (fetching one here would check the device in)."""
    update = np.random.default_rng(seed).normal(0, 0.05, plan["shared_values"]).astype(np.float32)
    return encoder_for(plan, seed=seed).encode(update, 100, round_id=plan["round"]["id"]).payload


def test_selection_over_selects_counts_only_selected_devices_and_paces_the_others(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2, over_selection=1.5, retry_after_s=40)
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(5)]
    watcher = requests.get(f"{cloud.url}/v1/plan", params={"check_in": "false"}, headers=devices[4]).json()
    assert watcher["selected"] is False and 20 <= watcher["retry_after"] <= 60  # a read selects nobody
    plans = [cloud.plan(device) for device in devices]
    assert [p["selected"] for p in plans] == [True, True, True, False, False]  # ceil(2 x 1.5) = 3
    assert [p["retry_after"] for p in plans[:3]] == [None] * 3
    assert all(20 <= p["retry_after"] <= 60 for p in plans[3:])
    assert cloud.plan(devices[0])["selected"] and not cloud.plan(devices[3])["selected"]  # sticky, no slot freed
    round_id = plans[0]["round"]["id"]

    refused = cloud.upload(devices[3], round_id, _payload(plans[3], 3))
    assert refused.status_code == 409 and refused.json()["error"] == "not_selected", refused.text
    for i in (0, 1):
        answer = cloud.upload(devices[i], round_id, _payload(plans[i], i))
        assert answer.status_code == 200 and answer.json()["contributors"] == i + 1, answer.text
    late = cloud.upload(devices[2], round_id, _payload(plans[2], 2))
    assert late.status_code == 409 and late.json()["error"] == "round_closed"  # the round closed at max_devices
    cloud.wait_for_version(devices[0], 2)
    rounds = {r["number"]: r for r in cloud.job(job["id"])["rounds"]}
    assert rounds[1]["status"] == "published" and rounds[1]["contributors"] == 2


def test_an_upload_without_a_check_in_is_one_while_the_quota_has_room(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=3, over_selection=1.0)
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(4)]
    plan = requests.get(f"{cloud.url}/v1/plan", params={"check_in": "false"}, headers=devices[0]).json()
    first = cloud.upload(devices[0], plan["round"]["id"], _payload(plan, 0))
    assert first.status_code == 200, first.text  # selected on upload: the quota had room
    assert [cloud.plan(d)["selected"] for d in devices[1:]] == [True, True, False]  # 1 + 2 = the quota of 3
    refused = cloud.upload(devices[3], plan["round"]["id"], _payload(plan, 3))
    assert refused.json()["error"] == "not_selected"


def test_plan_query_is_checked(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir)
    device = cloud.enrol(cloud.token(job["id"]))
    for params in ({"wait": "61"}, {"wait": "-1"}, {"after_version": "-1"}, {"after_version": "v2"},
                   {"check_in": "perhaps"}):
        answer = requests.get(f"{cloud.url}/v1/plan", params=params, headers=device)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (params, answer.text)
        assert next(iter(params)) in answer.json()["message"]


def test_long_poll_waits_for_the_bound_and_returns_when_a_version_is_published(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=2, over_selection=1.0)
    token = cloud.token(job["id"], max_uses=None)
    a, b, watcher = (cloud.enrol(token) for _ in range(3))
    plan_a, plan_b = cloud.plan(a), cloud.plan(b)
    assert plan_a["selected"] and plan_b["selected"]

    def poll(device, **params):
        started = time.monotonic()
        answer = requests.get(f"{cloud.url}/v1/plan", params=params, headers=device, timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json(), time.monotonic() - started

    quick, seconds = poll(a, after_version=1, wait=30)  # selected for a round it has not uploaded to: at once
    assert quick["selected"] and seconds < 10
    quick, seconds = poll(watcher, after_version=0, wait=30)  # version 1 is already past 0
    assert quick["model_version"] == 1 and seconds < 10
    held, seconds = poll(watcher, after_version=1, wait=2)  # nothing changes: held to the bound
    assert held["model_version"] == 1 and not held["selected"] and 1.9 <= seconds < 20

    results = {}
    waiting = threading.Thread(target=lambda: results.update(
        zip(("plan", "seconds"), poll(watcher, after_version=1, wait=60, check_in="false"))))
    waiting.start()
    time.sleep(0.5)
    for i, (device, plan) in enumerate(((a, plan_a), (b, plan_b))):
        assert cloud.upload(device, plan["round"]["id"], _payload(plan, i)).status_code == 200
    closed = time.monotonic()
    waiting.join(timeout=90)
    assert results["plan"]["model_version"] == 2 and results["plan"]["round"]["number"] == 2
    assert not results["plan"]["selected"]  # check_in=false: it read the new round without checking in
    assert time.monotonic() - closed < 30  # long before the 60-second bound


@pytest.fixture
def two_workers(tmp_path, postgres_url):
    """A PostgreSQL-backed service: LocalCloud's key service and aggregator, and gunicorn with two workers
    on the same database and files."""
    cloud = Cloud(tmp_path / "cloud", postgres_url).start()
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "cloud/gunicorn.conf.py", "-b",
                             f"127.0.0.1:{port}", "-w", "2", "cloud.app:create_app(background=True)"],
                            cwd=ROOT, env={**os.environ, **cloud.aggregator.env}, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield cloud, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        cloud.stop()


def test_two_workers_on_postgresql_never_select_more_than_the_quota(two_workers, bundle_dir):
    cloud, workers_url = two_workers
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=4, over_selection=1.5)  # quota 6
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(24)]
    barrier = threading.Barrier(len(devices))

    def check_in(i):
        url = workers_url if i % 2 else cloud.url  # gunicorn's two workers and the other process
        barrier.wait()
        plans = [requests.get(f"{url}/v1/plan", headers=devices[i], timeout=60).json() for _ in range(2)]
        assert plans[0]["selected"] == plans[1]["selected"]  # a second check-in answers alike
        return plans[0]["selected"]

    with ThreadPoolExecutor(len(devices)) as pool:
        selected = list(pool.map(check_in, range(len(devices))))
    assert sum(selected) == 6
