"""Java and Python devices in one encrypted round against the real aggregation and key-service processes.

The Java devices run the bridge's client (org.fedwear.bridge.tools.Participate) in their own JVMs.
Their updates come from the real TFLite trainer on the job's bundle, computed here by the Python
SDK and handed over as files, because the JVM on this machine has no TensorFlow Lite.
"""

import json

import numpy as np
import pytest
import requests

from device_sim import synthetic
from sdk.client import FedWearClient, local_update
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams
from sdk.trainer import TFLiteTrainer
from tests import bridge_java


@pytest.fixture(scope="module")
def classpath():
    return bridge_java.build()


@pytest.fixture(scope="module")
def devices():
    return synthetic.generate(subjects=4, executions=2, seed=21).devices


def participate(classpath, url, token, storage, update, windows, version, *flags):
    return bridge_java.run_tool(classpath, "Participate", "--server", url, "--token", token, "--storage", storage,
                                "--update", update, "--windows", windows, "--model-version", version, *flags)


def test_java_and_python_devices_share_a_round_and_a_crashed_java_device_is_counted_once(
        cloud, bundle_dir, tmp_path, classpath, devices):
    job = cloud.create_job(bundle_dir, rounds=1, min_devices=4, max_devices=4)
    token = cloud.token(job["id"], max_uses=None)
    python_clients = [FedWearClient(cloud.url, token, tmp_path / f"python{i}") for i in range(2)]
    for i, (client, device) in enumerate(zip(python_clients, devices[:2])):
        assert client.participate(device.windows, device.labels, seed=i).status == "uploaded"
    plan = python_clients[0].plan
    round_id = plan["round"]["id"]
    v1 = np.frombuffer((tmp_path / "python0" / "weights" / "v1.f32").read_bytes(), "<f4")

    # Every device's update, as the SDK's trainer computes it on this bundle from v1.
    trainer = TFLiteTrainer(bundle_dir)
    trainer.set_weights(v1, "shared")
    deltas = [local_update(trainer, d.windows, d.labels, plan["hyperparameters"], seed) for seed, d in
              zip((0, 1, 10, 11), devices)]
    files = []
    for i, delta in enumerate(deltas[2:]):
        files.append(tmp_path / f"java{i}.f32")
        files[-1].write_bytes(delta.astype("<f4").tobytes())
    java_a, java_b = tmp_path / "java0", tmp_path / "java1"
    windows = [len(d.labels) for d in devices]
    single_use = cloud.token(job["id"], max_uses=1)  # device A must enrol once, whatever restarts

    stale = participate(classpath, cloud.url, single_use, java_a, files[0], windows[2], 2)
    assert stale.returncode == 1 and "computed on model v2" in stale.stderr
    assert not list(java_a.glob("rounds/*.bin"))

    assert (java_a / "credentials.json").stat().st_mode & 0o777 == 0o600
    crashed = participate(classpath, cloud.url, single_use, java_a, files[0], windows[2], 1, "--exit-after-store")
    assert crashed.returncode == 75, crashed.stderr
    stored = java_a / "rounds" / f"{round_id}.bin"
    assert stored.is_file() and (stored.stat().st_mode & 0o777) == 0o600
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 2  # stored, not sent

    restarted = participate(classpath, cloud.url, single_use, java_a, files[0], windows[2], 1)
    outcome = bridge_java.last_json(restarted)
    assert restarted.returncode == 0 and outcome["status"] == "uploaded", restarted.stderr
    assert outcome["bytes_up"] == stored.stat().st_size and outcome["round_id"] == round_id
    assert outcome["answer"]["contributors"] == 3
    again = bridge_java.last_json(participate(classpath, cloud.url, single_use, java_a, files[0], windows[2], 1))
    assert again["status"] == "already_uploaded"
    # The stored bytes are the accepted ones: sent again they get the first answer, not a conflict.
    credentials = json.loads((java_a / "credentials.json").read_text())
    replay = requests.put(f"{cloud.url}/v1/rounds/{round_id}/update", data=stored.read_bytes(),
                          headers={"Authorization": credentials["authorization"]})
    assert replay.status_code == 200 and replay.json()["contributors"] == 3
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 3

    # Device B fills its randomiser pool first (as while charging); its upload draws from the pool.
    params = CryptoParams.from_dict({k: v for k, v in plan["crypto"].items() if k != "public_key"})
    needed = params.plaintexts_for(plan["shared_values"])
    last = bridge_java.last_json(participate(classpath, cloud.url, token, java_b, files[1], windows[3], 1,
                                             "--fill-pool", needed + 3))
    assert last["status"] == "uploaded" and last["answer"]["contributors"] == 4
    (pool,) = java_b.glob("randomisers-*.pool")
    assert pool.stat().st_size == 37 + 3 * params.ciphertext_bytes  # the upload took `needed` of them
    assert (java_b / "bundle" / "model.tflite").read_bytes() == (bundle_dir / "model.tflite").read_bytes()

    device = cloud.enrol(cloud.token(job["id"]))
    cloud.wait_for_version(device, 2)
    published = cloud.weights(device, 2)
    weights = [params.weight_of(n) for n in windows]
    clipped = [np.clip(d.astype(np.float64), -params.clip, params.clip) for d in deltas]
    fedavg = v1.astype(np.float64) + sum(w * d for w, d in zip(weights, clipped)) / sum(weights)
    error = np.max(np.abs(published - fedavg))
    assert error <= mean_error_bound(params, 4, sum(weights)) + 1e-6, error
    assert np.max(np.abs(published - v1)) > 10 * mean_error_bound(params, 4, sum(weights))  # the model moved
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 4
