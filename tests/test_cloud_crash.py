"""Crash safety: SIGKILL after k of n accepted updates, restart, and every update counts once."""

import numpy as np
import requests

from sdk.crypto.packing import mean_error_bound
from tests.cloud_servers import Cloud, encoder_for


def test_round_survives_sigkill_with_each_update_counted_once(tmp_path, bundle_dir, database_url):
    cloud = Cloud(tmp_path, database_url, max_upload_bytes=4 * 1024 * 1024).start()
    try:
        n, k = 6, 3
        job = cloud.create_job(bundle_dir, max_devices=n, min_devices=n)
        token = cloud.token(job["id"])
        devices = [cloud.enrol(token) for _ in range(n)]
        plan = cloud.plan(devices[0])
        round_id = plan["round"]["id"]
        base = cloud.weights(devices[0], 1)
        rng = np.random.default_rng(1)
        updates = [rng.normal(0, 0.05, plan["shared_values"]).astype(np.float32) for _ in range(n)]
        weights = [int(w) for w in rng.integers(20, 400, n)]
        payloads = [encoder_for(plan, seed=i).encode(u, w, round_id=round_id).payload
                    for i, (u, w) in enumerate(zip(updates, weights))]
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
        cloud.wait_for_version(devices[0], 2)
        published = cloud.weights(devices[0], 2)
        fedavg = sum(w * u.astype(np.float64) for w, u in zip(weights, updates)) / sum(weights)
        bound = mean_error_bound(encoder_for(plan).params, n, sum(weights))
        assert np.max(np.abs(published - (base + fedavg))) <= bound + 1e-6
        rounds = {r["id"]: r for r in requests.get(
            f"{cloud.url}/admin/jobs/{job['id']}", headers=cloud.admin).json()["rounds"]}
        assert rounds[round_id]["contributors"] == n and rounds[round_id]["status"] == "published"
        sums = list((cloud.data_dir / "jobs" / job["id"] / "rounds" / str(round_id)).iterdir())
        assert len(sums) == 1  # superseded and orphaned sum files are gone
    finally:
        cloud.stop()
