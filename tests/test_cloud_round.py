import json
from pathlib import Path

import numpy as np
import requests

from sdk.crypto.packing import mean_error_bound
from tests.cloud_servers import encoder_for


def test_one_encrypted_round_end_to_end_publishes_weighted_fedavg(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, max_devices=5, min_devices=5)
    token = cloud.token(job["id"])
    devices = [cloud.enrol(token) for _ in range(5)]
    plan = cloud.plan(devices[0])
    assert plan["model_version"] == 1 and plan["round"]["status"] == "open"
    base = cloud.weights(devices[0], 1)
    rng = np.random.default_rng(0)
    updates = [rng.normal(0, 0.05, plan["shared_values"]).astype(np.float32) for _ in devices]
    weights = [120, 80, 300, 50, 200]
    for i, (device, update, weight) in enumerate(zip(devices, updates, weights)):
        payload = encoder_for(cloud.plan(device), seed=i).encode(update, weight, round_id=plan["round"]["id"]).payload
        response = cloud.upload(device, plan["round"]["id"], payload)
        assert response.status_code == 200, response.text
        assert response.json()["contributors"] == i + 1
    cloud.wait_for_version(devices[0], 2)
    published = cloud.weights(devices[0], 2)
    fedavg = sum(w * u.astype(np.float64) for w, u in zip(weights, updates)) / sum(weights)
    bound = mean_error_bound(encoder_for(plan).params, 5, sum(weights))
    assert np.max(np.abs(published - (base + fedavg))) <= bound + 1e-6
    nxt = cloud.plan(devices[0])["round"]
    assert nxt["number"] == 2 and nxt["model_version"] == 2 and nxt["status"] == "open"


def test_aggregator_holds_no_private_key_and_serves_no_plaintext_update(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir)
    private_key = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "private-key.json"
    secret = json.loads(private_key.read_text())
    for path in cloud.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for factor in (secret["p"], secret["q"]):
                assert factor.encode() not in content, path
                assert bytes.fromhex(factor.zfill(len(factor) + len(factor) % 2)) not in content, path
    assert not any("KS_DATA" in k or "PRIVATE" in k for k in cloud.aggregator.env)
    spec = requests.get(f"{cloud.url}/openapi.json").json()
    assert not [p for p in spec["paths"] if "decrypt" in p]
    assert job["crypto"]["key_bits"] == 2048
