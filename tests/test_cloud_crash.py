"""Crash safety: SIGKILL of the service or of one of its workers during uploads, and every update counts once."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from sdk.crypto.packing import mean_error_bound
from tests.cloud_servers import Cloud, encoder_for


def prepared_round(cloud, bundle_dir, n: int, seed: int, **config):
    """A job whose first round takes n devices, the devices, and their distinct encrypted updates."""
    job = cloud.create_job(bundle_dir, max_devices=n, **config)
    token = cloud.token(job["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(n)]
    plan = cloud.plan(devices[0])
    rng = np.random.default_rng(seed)
    updates = [rng.normal(0, 0.05, plan["shared_values"]).astype(np.float32) for _ in range(n)]
    weights = [int(w) for w in rng.integers(20, 400, n)]
    payloads = [encoder_for(plan, seed=i).encode(u, w, round_id=plan["round"]["id"]).payload
                for i, (u, w) in enumerate(zip(updates, weights))]
    return job, devices, plan, updates, weights, payloads


def assert_fedavg_published(cloud, devices, plan, updates, weights) -> None:
    """Model v2 is v1 plus the FedAvg of every update within the codec's bound."""
    cloud.wait_for_version(devices[0], 2)
    base, published = cloud.weights(devices[0], 1), cloud.weights(devices[0], 2)
    fedavg = sum(w * u.astype(np.float64) for w, u in zip(weights, updates)) / sum(weights)
    bound = mean_error_bound(encoder_for(plan).params, len(updates), sum(weights))
    assert np.max(np.abs(published - (base + fedavg))) <= bound + 1e-6


def first_round(cloud, job) -> dict:
    return requests.get(f"{cloud.url}/admin/jobs/{job['id']}", headers=cloud.admin).json()["rounds"][0]


def test_round_survives_sigkill_with_each_update_counted_once(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path, database_url, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        n, k = 6, 3
        job, devices, plan, updates, weights, payloads = prepared_round(cloud, bundle_dir, n, 1, min_devices=n)
        round_id = plan["round"]["id"]
        answers = [cloud.upload(devices[i], round_id, payloads[i]) for i in range(k)]
        assert [a.json()["contributors"] for a in answers] == [1, 2, 3]

        cloud.aggregator.kill()  # SIGKILL: no shutdown of any kind
        cloud.aggregator.start()

        # a device that did not hear its answer retries: same answer, not counted again
        retry = cloud.upload(devices[1], round_id, payloads[1])
        assert retry.status_code == 200 and retry.json() == answers[1].json()
        for i in range(k, n):
            response = cloud.upload(devices[i], round_id, payloads[i])
            assert response.status_code == 200, response.text
            assert response.json()["contributors"] == i + 1
        assert_fedavg_published(cloud, devices, plan, updates, weights)
        first = first_round(cloud, job)
        assert first["contributors"] == n and first["status"] == "published"
        assert sum(part["contributors"] for part in first["subsums"]) == n
    finally:
        cloud.stop()


def test_sigkill_of_a_worker_among_several_loses_and_doubles_nothing(tmp_path, bundle_dir, database_url):
    """Concurrent uploads over 3 gunicorn workers; one worker is killed mid-way; devices retry until answered."""
    cloud = Cloud(tmp_path, database_url, max_upload_bytes=4 * 1024 * 1024, workers=3).start()
    try:
        n = 24
        job, devices, plan, updates, weights, payloads = prepared_round(
            cloud, bundle_dir, n, 2, min_devices=6, subsums=3,
            crypto={"max_contributors": 50, "max_weight": 500, "randomiser": "short-exponent"})
        round_id = plan["round"]["id"]
        answered = []

        def upload_until_answered(i: int) -> dict:
            while True:
                try:
                    response = cloud.upload(devices[i], round_id, payloads[i])
                except requests.RequestException:
                    time.sleep(0.1)
                    continue
                if response.status_code == 200:
                    answered.append(i)
                    return response.json()
                assert response.status_code >= 500, response.text  # a worker died under the request
                time.sleep(0.1)

        def kill_one_worker():
            while len(answered) < n // 3:
                time.sleep(0.01)
            os.kill(cloud.worker_pids()[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(upload_until_answered, range(n)))
        killer.join()
        # concurrent answers count what was committed when each was accepted: each sees itself, none more than n
        assert all(a["accepted"] and 1 <= a["contributors"] <= n for a in answers)
        assert_fedavg_published(cloud, devices, plan, updates, weights)
        first = first_round(cloud, job)
        assert first["contributors"] == n and first["total_weight"] == sum(weights)
        assert len(first["subsums"]) == 3 and not any(part["dropped"] for part in first["subsums"])
    finally:
        cloud.stop()


def sum_files(cloud, job) -> list:
    return sorted(p.relative_to(cloud.data_dir / "jobs" / job["id"] / "sums")
                  for p in (cloud.data_dir / "jobs" / job["id"] / "sums").rglob("*") if p.is_file())


def test_a_sum_generation_written_but_never_committed_is_not_read(tmp_path, bundle_dir, database_url):
    """A worker killed after writing a shard's next generation but before its commit leaves a file the database does
    not name: the next upload to that shard writes over it, the round publishes the FedAvg, and the round's sums are
    removed once it ended."""
    cloud = Cloud(tmp_path, database_url, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        n = 4
        job, devices, plan, updates, weights, payloads = prepared_round(cloud, bundle_dir, n, 3, min_devices=n,
                                                                        subsums=1)
        round_id = plan["round"]["id"]
        for i in range(2):
            assert cloud.upload(devices[i], round_id, payloads[i]).status_code == 200
        # the two uploads went to the two emptiest shards: one committed generation each, none superseded left
        held = sum_files(cloud, job)
        assert [str(p) for p in held] == [f"r{round_id}/s0.g1", f"r{round_id}/s1.g1"]
        for name in ("s0.g2", "s2.g1"):  # what a killed worker's uncommitted writes leave behind
            (cloud.data_dir / "jobs" / job["id"] / "sums" / f"r{round_id}" / name).write_bytes(os.urandom(4096))
        for i in range(2, n):
            assert cloud.upload(devices[i], round_id, payloads[i]).status_code == 200
        assert_fedavg_published(cloud, devices, plan, updates, weights)
        deadline = time.time() + 10  # the ticker removes an ended round's sums
        while sum_files(cloud, job) and time.time() < deadline:
            time.sleep(0.1)
        assert sum_files(cloud, job) == []
    finally:
        cloud.stop()


def test_a_round_whose_sum_file_is_lost_fails_with_the_reason_and_the_job_goes_on(tmp_path, bundle_dir):
    """A committed generation missing from the data directory (removed by hand, a restore without it) cannot be
    decrypted: the round fails once, naming the shard, instead of being retried every tick; the next round opens."""
    cloud = Cloud(tmp_path, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        job, devices, plan, updates, weights, payloads = prepared_round(cloud, bundle_dir, 2, 4, min_devices=2,
                                                                        subsums=1)
        round_id = plan["round"]["id"]
        assert cloud.upload(devices[0], round_id, payloads[0]).status_code == 200
        (cloud.data_dir / "jobs" / job["id"] / "sums" / f"r{round_id}" / "s0.g1").unlink()
        assert cloud.upload(devices[1], round_id, payloads[1]).status_code == 200  # the other shard: the round closes
        deadline = time.time() + 30
        while first_round(cloud, job)["status"] != "failed" and time.time() < deadline:
            time.sleep(0.1)
        first = first_round(cloud, job)
        assert first["status"] == "failed", first
        assert "sum of shard 0 (generation 1) is missing" in first["error"], first["error"]
        state = requests.get(f"{cloud.url}/admin/jobs/{job['id']}", headers=cloud.admin).json()
        assert [r["status"] for r in state["rounds"]] == ["failed", "open"] and state["model_version"] == 1
    finally:
        cloud.stop()


def test_an_upload_to_a_shard_whose_sum_file_is_lost_fails_the_round_instead_of_erring_forever(tmp_path, bundle_dir):
    """The emptiest shard with room is every upload's first choice: with its file lost, the upload that finds it
    fails the round (409 naming the loss) rather than answering 500 to every device until the deadline."""
    cloud = Cloud(tmp_path, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        n = 18  # 16 shards; the first two take 2 contributions each
        job, devices, plan, updates, weights, payloads = prepared_round(cloud, bundle_dir, n, 5, min_devices=2,
                                                                        subsums=1)
        round_id = plan["round"]["id"]
        assert cloud.upload(devices[0], round_id, payloads[0]).status_code == 200
        (cloud.data_dir / "jobs" / job["id"] / "sums" / f"r{round_id}" / "s0.g1").unlink()
        for i in range(1, 16):  # one in each other shard
            assert cloud.upload(devices[i], round_id, payloads[i]).status_code == 200
        refused = cloud.upload(devices[16], round_id, payloads[16])  # shard 0 again: its sum is gone
        assert refused.status_code == 409 and refused.json()["error"] == "round_closed", refused.text
        assert "sum of shard 0 (generation 1) is missing" in refused.json()["message"]
        first = first_round(cloud, job)
        assert first["status"] == "failed" and first["error"].startswith("failed by the service: the sum of shard 0")
        state = requests.get(f"{cloud.url}/admin/jobs/{job['id']}", headers=cloud.admin).json()
        assert [r["status"] for r in state["rounds"]] == ["failed", "open"]
    finally:
        cloud.stop()
