"""Model bundle figures: size, parameters, TFLite inference and training-step
times on one core, and TensorFlow's step time measured in the same run.

    python benchmarks/bench_model.py [--json] [--steps 100]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cloud.bundle_export import export_bundle  # noqa: E402
from cloud.har_model import ModelConfig, build_keras_model  # noqa: E402
from sdk.bundle import MODEL_FILE  # noqa: E402
from sdk.trainer import TFLiteTrainer  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def keras_step(model: tf.keras.Model, lr: float, momentum: float):
    """A compiled GradientTape + SGD step on the shared layers: TensorFlow's best effort."""
    personal = {"adapter", "personal_head"}
    variables = [v for layer in model.layers if layer.name not in personal for v in layer.trainable_variables]
    optimizer = tf.keras.optimizers.SGD(lr, momentum=momentum)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)[0])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--steps", default=100, show_default=True, help="Timed repetitions per figure.")
def main(as_json: bool, steps: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    config = ModelConfig()
    model = build_keras_model(config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, config.window_length, config.channels)).astype(np.float32)
    y = rng.integers(0, config.num_classes, 32)
    y_one_hot = np.eye(config.num_classes, dtype=np.float32)[y]
    with tempfile.TemporaryDirectory() as bundle_dir:
        export_bundle(model, config, bundle_dir, [f"c{i}" for i in range(config.num_classes)],
                      np.zeros(6), np.ones(6))
        size_kb = (Path(bundle_dir) / MODEL_FILE).stat().st_size / 1024
        trainer = TFLiteTrainer(bundle_dir, num_threads=1)
        one = x[:1]
        many = np.repeat(x, 8, axis=0)
        infer_ms = median_ms(lambda: trainer.predict_proba(one), steps)
        infer_batched_ms = median_ms(lambda: trainer.predict_proba(many), max(10, steps // 10)) / len(many)
        tflite_step_ms = median_ms(lambda: trainer.train_step("shared", x, y_one_hot, 0.01, 0.9), steps)
        personal_step_ms = median_ms(lambda: trainer.train_step("personal", x, y_one_hot, 0.01, 0.9), steps)
    step = keras_step(model, 0.01, 0.9)
    tf_step_ms = median_ms(lambda: step(x, y).numpy(), steps)
    result = {
        "bundle_kb": round(size_kb, 1),
        "shared_params": config.shared_layout.size,
        "personal_params": config.personal_layout.size,
        "infer_ms_per_window": round(infer_ms, 3),
        "infer_ms_per_window_batched": round(infer_batched_ms, 4),
        "train_shared_ms_per_batch32": round(tflite_step_ms, 2),
        "train_personal_ms_per_batch32": round(personal_step_ms, 2),
        "tf_train_ms_per_batch32": round(tf_step_ms, 2),
        "tf_to_tflite_step_ratio": round(tf_step_ms / tflite_step_ms, 2),
        "threads": 1,
    }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
