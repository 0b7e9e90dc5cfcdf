"""TensorFlow Federated as a plaintext FedAvg engine for the fleet simulator.

The same model (the bundle's shared layers, as their Keras twin), the same
initial weights, partitions and local training (SGD with momentum, epochs,
batch size) run as weighted FedAvg in TFF's simulation runtime. TFF starts a
`worker_binary` process that outlives its Python parent, so the rounds run
in a child process of their own session, and the whole process group is
killed when the child is done: no worker survives a run.

    python -m device_sim.tff_engine JOB.npz RESULT.npz   (what the parent runs)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_rounds(initial: np.ndarray, clients: list[tuple[np.ndarray, np.ndarray]], norm_mean, norm_std,
               settings: dict, work_dir: Path, timeout: float = 3600) -> dict:
    """FedAvg rounds in TFF (child process); returns per-round weights and seconds."""
    work_dir.mkdir(parents=True, exist_ok=True)
    job, result, log = work_dir / "tff_job.npz", work_dir / "tff_result.npz", work_dir / "tff.log"
    arrays = {"initial": initial, "norm_mean": np.asarray(norm_mean), "norm_std": np.asarray(norm_std),
              "settings": np.frombuffer(json.dumps(settings).encode(), np.uint8)}
    for i, (x, y) in enumerate(clients):
        arrays[f"x{i}"], arrays[f"y{i}"] = x, y
    np.savez(job, **arrays)
    result.unlink(missing_ok=True)
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "device_sim.tff_engine", str(job), str(result)],
                                 cwd=PROJECT_ROOT, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            code = child.wait(timeout=timeout)
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)  # the child and TFF's worker_binary
            except ProcessLookupError:
                pass
    if code != 0 or not result.exists():
        raise RuntimeError(f"TFF engine failed (exit {code}); its log: {log}\n{log.read_text()[-3000:]}")
    with np.load(result) as data:
        return {"weights": list(data["weights"]), "seconds": data["seconds"].tolist()}


def _child(job_path: str, result_path: str) -> None:
    import tensorflow as tf
    import tensorflow_federated as tff

    from cloud.keras_twin import build_keras_model, keras_weights, set_keras_weights
    from sdk.model_spec import ModelSpec

    with np.load(job_path) as data:
        settings = json.loads(bytes(data["settings"]).decode())
        initial = data["initial"]
        mean, std = data["norm_mean"], data["norm_std"]
        clients = [((data[f"x{i}"] - mean) / std, data[f"y{i}"]) for i in range(settings["clients"])]
    spec = ModelSpec.from_dict(settings["spec"])
    layout = spec.shared_layout
    classifies = spec.head.kind == "classification"

    def keras_global():
        model = build_keras_model(spec)
        set_keras_weights(model, layout, initial)
        return model, tf.keras.Model(model.input, model.outputs[0])

    input_spec = (tf.TensorSpec([None, *spec.input.shape], tf.float32),
                  tf.TensorSpec([None], tf.int64) if classifies else tf.TensorSpec([None, 1], tf.float32))

    def model_fn():
        return tff.learning.models.from_keras_model(
            keras_global()[1], input_spec=input_spec,
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classifies
            else tf.keras.losses.MeanSquaredError())

    process = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(settings["lr"], settings["momentum"]),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
    )
    full, global_only = keras_global()
    # TFF initialises variables from their initialisers; start from the bundle's weights instead
    state = process.set_model_weights(
        process.initialize(), tff.learning.models.ModelWeights.from_model(global_only))
    weights, seconds = [], []
    for number in range(1, settings["rounds"] + 1):
        started = time.perf_counter()
        datasets = [
            tf.data.Dataset.from_tensor_slices(
                (x.astype(np.float32), y.astype(np.int64) if classifies else y.astype(np.float32).reshape(-1, 1)))
            .shuffle(len(y), seed=settings["seed"] * 1000 + number, reshuffle_each_iteration=True)
            .batch(settings["batch_size"]).repeat(settings["epochs"])
            for x, y in clients
        ]
        state = process.next(state, datasets).state
        process.get_model_weights(state).assign_weights_to(global_only)
        weights.append(keras_weights(full, layout))
        seconds.append(time.perf_counter() - started)
        print(f"tff round {number}: {seconds[-1]:.2f} s", flush=True)
    np.savez(result_path, weights=np.stack(weights), seconds=np.array(seconds))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
