"""Model bundle figures: size, parameters, TFLite inference and training-step
times on one core, and TensorFlow's compiled GradientTape step measured in the
same run; the int8 inference model's size and inference time beside the
float model's (calibrated on random windows here: its accuracy comes from a
fleet run, `device_sim run --int8`).

The TFLite and TensorFlow figures are measured in interleaved rounds (a block
of calls of each in turn, again and again), and each figure is the fastest
round's median: on a shared, noisy machine both sides then see the same load,
and the ratio between them holds even when the absolute times move.

``--profile`` also times each piece of the training step alone (every layer's
forward pass, kernel gradient and input gradient, the head and the SGD update),
each converted on its own to a TFLite model with the step's shapes: tflite-runtime
has no per-op profiler in Python, so the pieces are the profile.

    python benchmarks/bench_model.py [--json] [--steps 100] [--profile]
        [--conv-filters 32,64] [--dense-units 64]
"""

from __future__ import annotations

import inspect
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
from tflite_runtime.interpreter import Interpreter  # noqa: E402

from cloud import builtin_layers as nn  # noqa: E402
from cloud.bundle_export import export_bundle  # noqa: E402
from cloud.har_model import ModelConfig, build_keras_model  # noqa: E402
from sdk.bundle import INT8_FILE, MODEL_FILE  # noqa: E402
from sdk.recogniser import Recogniser  # noqa: E402
from sdk.trainer import TFLiteTrainer  # noqa: E402

BATCH = 32
BLOCK = 10  # calls per round and figure


def interleaved_ms(tasks: dict, rounds: int) -> dict:
    """Milliseconds per call of each task: the fastest round's median, rounds interleaved."""
    for fn in tasks.values():
        fn()  # warm-up
    medians = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            times = []
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                times.append((time.perf_counter() - start) * 1000)
            medians[name].append(statistics.median(times))
    return {name: min(values) for name, values in medians.items()}


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


def _tflite_piece(fn, arrays: list[np.ndarray]):
    """A call that runs fn, converted alone to TFLite builtins, on fixed inputs."""
    specs = [tf.TensorSpec(a.shape, tf.float32) for a in arrays]
    module = tf.Module()
    module.piece = tf.function(fn, input_signature=specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.piece.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
    interpreter.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    for name, array in zip(inspect.signature(fn).parameters, arrays):
        interpreter.set_tensor(by_name[f"serving_default_{name}:0"], array)
    return interpreter.invoke


def step_pieces(config: ModelConfig, rng: np.random.Generator) -> dict:
    """Each piece of a shared training step, alone, at the step's shapes."""
    def a(*shape):
        return rng.normal(size=shape).astype(np.float32)

    pieces, steps, width = {}, config.window_length, config.channels
    for i, (layer, filters) in enumerate(zip(config.conv_layers, config.conv_filters)):
        k, out_steps = config.kernel_size, steps - config.kernel_size + 1
        kernel, d_z = a(k, width, filters), a(BATCH, out_steps, filters)
        pieces[f"{layer} forward"] = _tflite_piece(nn.conv1d, [a(BATCH, steps, width), kernel, a(filters)])
        framed = a(BATCH, out_steps, k * width)
        pieces[f"{layer} kernel gradient"] = _tflite_piece(nn.conv1d_kernel_grads, [framed, d_z, kernel])
        if i > 0:
            pieces[f"{layer} input gradient"] = _tflite_piece(nn.conv1d_input_grad, [d_z, kernel])
        steps, width = out_steps, filters
    y = np.eye(config.num_classes, dtype=np.float32)[rng.integers(0, config.num_classes, BATCH)]

    def head_step(h, dk, db, hk, hb, y):
        pooled = nn.global_average_pool(h)
        feat = tf.nn.relu(nn.dense(pooled, dk, db))
        loss, d_logits = nn.softmax_cross_entropy(nn.dense(feat, hk, hb), y)
        _, _, d_feat = nn.dense_grads(feat, d_logits, hk)
        _, _, d_pooled = nn.dense_grads(pooled, nn.relu_grad(d_feat, feat), dk)
        return loss, nn.global_average_pool_grad(d_pooled, h)

    pieces["pooling, dense, head, loss"] = _tflite_piece(
        head_step, [a(BATCH, steps, width), a(width, config.dense_units), a(config.dense_units),
                    a(config.dense_units, config.num_classes), a(config.num_classes), y])
    return pieces


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--steps", default=100, show_default=True, help="Timed calls per figure.")
@click.option("--profile", is_flag=True, help="Also time each piece of the training step alone.")
@click.option("--conv-filters", default="32,64", show_default=True, help="Model widths, as device_sim run takes them.")
@click.option("--dense-units", default=64, show_default=True)
def main(as_json: bool, steps: int, profile: bool, conv_filters: str, dense_units: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    config = ModelConfig(conv_filters=tuple(int(f) for f in conv_filters.split(",")), dense_units=dense_units)
    model = build_keras_model(config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, config.window_length, config.channels)).astype(np.float32)
    y = rng.integers(0, config.num_classes, BATCH)
    y_one_hot = np.eye(config.num_classes, dtype=np.float32)[y]
    many = np.repeat(x, 8, axis=0)
    rounds = max(1, steps // BLOCK)
    with tempfile.TemporaryDirectory() as bundle_dir:
        export_bundle(model, config.spec(), bundle_dir, np.zeros(config.channels), np.ones(config.channels),
                      calibration=many)
        size_kb = (Path(bundle_dir) / MODEL_FILE).stat().st_size / 1024
        int8_kb = (Path(bundle_dir) / INT8_FILE).stat().st_size / 1024
        trainer = TFLiteTrainer(bundle_dir, num_threads=1)
        recogniser = Recogniser(bundle_dir, num_threads=1)
        step = keras_step(model, 0.01, 0.9)

        def train_shared():
            trainer.train_step("shared", x, y_one_hot, 0.01, 0.9)

        ms = interleaved_ms({
            "infer": lambda: trainer.predict_proba(x[:1]),
            "infer_batched": lambda: trainer.predict_proba(many),
            "int8_infer": lambda: recogniser.predict_proba(x[:1]),
            "int8_infer_batched": lambda: recogniser.predict_proba(many),
            "train_shared": train_shared,
            "train_personal": lambda: trainer.train_step("personal", x, y_one_hot, 0.01, 0.9),
            "tf_train": lambda: step(x, y).numpy(),
        }, rounds)
        pieces = interleaved_ms({**step_pieces(config, rng), "whole": train_shared}, rounds) if profile else None
    result = {
        "bundle_kb": round(size_kb, 1),
        "shared_params": config.shared_layout.size,
        "personal_params": config.personal_layout.size,
        "infer_ms_per_window": round(ms["infer"], 3),
        "infer_ms_per_window_batched": round(ms["infer_batched"] / len(many), 4),
        "int8_kb": round(int8_kb, 1),
        "int8_infer_ms_per_window": round(ms["int8_infer"], 3),
        "int8_infer_ms_per_window_batched": round(ms["int8_infer_batched"] / len(many), 4),
        "train_shared_ms_per_batch32": round(ms["train_shared"], 2),
        "train_personal_ms_per_batch32": round(ms["train_personal"], 2),
        "tf_train_ms_per_batch32": round(ms["tf_train"], 2),
        "tf_to_tflite_step_ratio": round(ms["tf_train"] / ms["train_shared"], 2),
        "threads": 1,
    }
    if pieces:
        whole = pieces.pop("whole")
        pieces["rest: variables, ReLU masks, SGD update"] = whole - sum(pieces.values())
        result["train_shared_pieces_ms"] = {name: round(value, 3) for name, value in pieces.items()}
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if isinstance(value, dict):
            for name, piece_ms in value.items():
                print(f"  {name:30} {piece_ms}")
        else:
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
