"""Load on the aggregation service: many devices upload encrypted updates to one round at once.

Starts a real key service and aggregator on loopback, enrols the devices,
encrypts one distinct update per device, then sends all uploads concurrently
(bounded: one request per device, each with a timeout). Afterwards it checks
the round: every accepted update counted exactly once, and the published
model equal to the plaintext weighted FedAvg of the accepted updates within
the codec's bound.

    python benchmarks/load_cloud.py --devices 200 --params 20000 --json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402

from device_sim.local_cloud import LocalCloud  # noqa: E402
from sdk.crypto.codec import UpdateEncoder  # noqa: E402
from sdk.crypto.keys import PublicKey  # noqa: E402
from sdk.crypto.packing import mean_error_bound  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.crypto.randomisers import ShortExponentRandomiser  # noqa: E402


def bundle_with_about(params: int, out: Path) -> int:
    """Exports a model whose shared part has about `params` values; returns the exact count."""
    from cloud.bundle_export import export_bundle
    from cloud.har_model import ModelConfig, build_keras_model

    base = ModelConfig()
    per_unit = base.spec().features + 1 + base.num_classes
    units = max(1, base.dense_units + round((params - base.shared_layout.size) / per_unit))
    config = ModelConfig(dense_units=units)
    export_bundle(build_keras_model(config), config.spec(), out, np.zeros(6), np.ones(6))
    return config.shared_layout.size


@click.command()
@click.option("--devices", default=200, show_default=True)
@click.option("--params", default=20000, show_default=True)
@click.option("--database-url", default=None, help="Default: a SQLite file in a temporary folder.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per request.")
@click.option("--json", "as_json", is_flag=True)
def main(devices: int, params: int, database_url: str | None, timeout: float, as_json: bool) -> None:
    if not 2 <= devices <= 1000:
        raise click.BadParameter("devices must be in [2, 1000]")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        values = bundle_with_about(params, tmp / "bundle")
        with LocalCloud(tmp / "cloud", database_url, max_upload_bytes=16 * 1024 * 1024) as cloud:
            job = cloud.create_job(tmp / "bundle", {
                "name": "load", "rounds": 1, "min_devices": devices, "max_devices": devices,
                "round_timeout_s": 3600, "crypto": {"max_contributors": max(devices, 2), "max_weight": 1000,
                                                    "randomiser": "short-exponent"}})
            token = cloud.create_token(job["id"], max_uses=None)
            session = requests.Session()
            auths = [{"Authorization": session.post(f"{cloud.url}/v1/enrol", json={"token": token},
                                                    timeout=timeout).json()["authorization"]}
                     for _ in range(devices)]
            plan = session.get(f"{cloud.url}/v1/plan", headers=auths[0], timeout=timeout).json()
            crypto = dict(plan["crypto"])
            public = PublicKey.from_json(crypto.pop("public_key"))
            codec_params = CryptoParams.from_dict(crypto)
            fast = ShortExponentRandomiser(public)
            rng = np.random.default_rng(0)
            updates = [rng.normal(0, 0.05, values).astype(np.float32) for _ in range(devices)]
            weights = [int(w) for w in rng.integers(50, 1001, devices)]
            started = time.perf_counter()
            round_id = plan["round"]["id"]
            payloads = [UpdateEncoder(codec_params, public, fast, seed=i).encode(u, w, round_id=round_id).payload
                        for i, (u, w) in enumerate(zip(updates, weights))]
            encrypt_s = time.perf_counter() - started

            def upload(i: int):
                t0 = time.perf_counter()
                try:
                    r = requests.put(f"{cloud.url}/v1/rounds/{round_id}/update", headers=auths[i],
                                     data=payloads[i], timeout=timeout)
                    ok = r.status_code == 200 and r.json().get("accepted") is True
                except requests.RequestException:
                    ok = False
                return ok, (time.perf_counter() - t0) * 1000

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=devices) as pool:
                results = list(pool.map(upload, range(devices)))
            wall = time.perf_counter() - started
            accepted = [i for i, (ok, _) in enumerate(results) if ok]
            latencies = sorted(ms for _, ms in results)
            deadline = time.time() + 300
            while time.time() < deadline and cloud.job(job["id"])["model_version"] < 2 and len(accepted) == devices:
                time.sleep(0.5)
            state = cloud.job(job["id"])
            counted = state["rounds"][0]["contributors"]
            error = None
            if state["model_version"] >= 2:
                base = np.frombuffer(session.get(f"{cloud.url}/v1/weights/1", headers=auths[0]).content, "<f4")
                new = np.frombuffer(session.get(f"{cloud.url}/v1/weights/2", headers=auths[0]).content, "<f4")
                total = sum(weights[i] for i in accepted)
                fedavg = sum(weights[i] * updates[i].astype(np.float64) for i in accepted) / total
                error = float(np.max(np.abs(new - base - fedavg)))
                bound = mean_error_bound(codec_params, len(accepted), total)
    result = {
        "devices": devices, "params": values, "accepted": len(accepted),
        "lost": max(0, len(accepted) - counted), "double_counted": max(0, counted - len(accepted)),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "uploads_per_s": round(len(accepted) / wall, 1), "wall_s": round(wall, 2),
        "payload_bytes": len(payloads[0]), "client_encrypt_s": round(encrypt_s, 1),
        "published": state["model_version"] >= 2,
        "max_abs_error": error, "error_bound": None if error is None else bound,
    }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:18} {value}")


if __name__ == "__main__":
    main()
