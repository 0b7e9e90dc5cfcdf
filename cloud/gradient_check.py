"""Export-time check of a bundle's training signatures against tf.GradientTape.

Each training signature runs once in the device's runtime (tflite-runtime or LiteRT, sdk.runtime)
with lr = 1 and momentum = 0, so every weight moves by minus its gradient;
the moves are compared, tensor by tensor, with the gradients tf.GradientTape
takes of the Keras twin on the same batch. The personal step is checked
twice: without the CORAL term and with a weight that makes the term's
gradient about as large as the loss's, so that a wrong CORAL gradient shows.
The exporter writes no bundle whose gradients disagree by more than the
tolerance.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cloud.keras_twin import keras_weights, set_keras_weights
from sdk.model_spec import ModelSpec
from sdk import runtime

TOLERANCE = 1e-4
BATCH = 16


class GradientMismatch(ValueError):
    """A training signature's gradient differs from tf.GradientTape's; the message names the layer."""


def _reference_loss(spec: ModelSpec, output: tf.Tensor, y: np.ndarray) -> tf.Tensor:
    if spec.head.kind == "classification":
        return tf.reduce_mean(tf.keras.losses.categorical_crossentropy(y, output, from_logits=True))
    return tf.reduce_mean(tf.square(output - y))


def coral_term(adapted: tf.Tensor, feat: tf.Tensor) -> tf.Tensor:
    """||cov(adapted) - cov(feat)||_F^2 / (4 d^2) over the batch, feat held fixed (FedHealth's CORAL)."""
    def cov(a):
        centred = a - tf.reduce_mean(a, axis=0, keepdims=True)
        return tf.matmul(centred, centred, transpose_a=True) / max(int(a.shape[0]) - 1, 1)

    d = float(adapted.shape[1])
    return tf.reduce_sum(tf.square(cov(adapted) - cov(tf.stop_gradient(feat)))) / (4 * d * d)


def reference_step(model: tf.keras.Model, spec: ModelSpec, part: str, x_norm: np.ndarray, y: np.ndarray,
                   coral: float = 0.0, task_loss: bool = True) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and gradients (by tensor name) of one training step of the Keras twin, from tf.GradientTape;
    ``task_loss=False``: of the weighted CORAL term alone."""
    layers = spec.shared_layers if part == "shared" else spec.personal_layers
    names = [f"{layer.name}/{kind}" for layer in layers if layer.weighted for kind in ("kernel", "bias")]
    variables = [getattr(model.get_layer(name.split("/")[0]), name.split("/")[1]) for name in names]
    head = spec.head.name if part == "shared" else spec.personal_layers[-1].name
    probe = tf.keras.Model(model.input, [model.get_layer(spec.head.name).input, model.get_layer(head).input,
                                         model.outputs[0 if part == "shared" else 1]])
    with tf.GradientTape() as tape:
        feat, adapted, output = probe(x_norm)
        loss = _reference_loss(spec, output, y) if task_loss else 0.0
        if coral:
            loss = loss + coral * coral_term(adapted, feat)
    grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(loss), {name: g.numpy() for name, g in zip(names, grads)}


def _batch(spec: ModelSpec, norm_mean, norm_std, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw inputs, the same normalised, and targets (one-hot classes or values)."""
    rng = np.random.default_rng(seed)
    stats = (1,) * len(spec.input.shape) + (-1,)
    mean = np.asarray(norm_mean, np.float32).reshape(stats)
    std = np.asarray(norm_std, np.float32).reshape(stats)
    x_raw = (rng.normal(size=(BATCH, *spec.input.shape)) * std + mean).astype(np.float32)
    if spec.head.kind == "classification":
        y = np.eye(spec.head.outputs, dtype=np.float32)[rng.integers(0, spec.head.outputs, BATCH)]
    else:
        y = rng.normal(size=(BATCH, 1)).astype(np.float32)
    return x_raw, ((x_raw - mean) / std).astype(np.float32), y


def check_gradients(model_bytes: bytes, spec: ModelSpec, model: tf.keras.Model, norm_mean, norm_std,
                    tolerance: float = TOLERANCE, seed: int = 0) -> dict[str, float]:
    """Largest difference per checked step and tensor; GradientMismatch when one exceeds the tolerance.

    ``model`` is the Keras twin holding the bundle's initial weights; it is not changed.
    """
    interpreter = runtime.interpreter_class(runtime.DEFAULT)(model_content=model_bytes, num_threads=1)
    run = {name: interpreter.get_signature_runner(name)
           for name in ("train_shared", "train_personal", "get_shared", "get_personal", "set_shared", "set_personal")}
    twin = tf.keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    x_raw, x_norm, y = _batch(spec, norm_mean, norm_std, seed)
    # personal layers moved off the shared ones they copy, so that the CORAL term has a gradient
    shared, personal = keras_weights(twin, spec.shared_layout), keras_weights(twin, spec.personal_layout)
    personal += np.random.default_rng(seed + 1).normal(0, 0.2, personal.size).astype(np.float32)
    set_keras_weights(twin, spec.personal_layout, personal)
    _, coral_only = reference_step(twin, spec, "personal", x_norm, y, coral=1.0, task_loss=False)
    coral_scale = max(float(np.max(np.abs(g))) for g in coral_only.values())
    coral = 1.0 / coral_scale if coral_scale > 1e-12 else 1.0  # 1: no personal layer below the head
    errors = {}
    for part, step_coral in (("shared", None), ("personal", 0.0), ("personal", coral)):
        layout = spec.shared_layout if part == "shared" else spec.personal_layout
        run["set_shared"](weights=shared)
        run["set_personal"](weights=personal)
        inputs = {"x": x_raw, "y": y, "lr": np.float32(1.0), "momentum": np.float32(0.0)}
        if step_coral is not None:
            inputs["coral"] = np.float32(step_coral)
        before = run[f"get_{part}"](ignored=np.float32(0))["weights"]
        loss = float(run[f"train_{part}"](**inputs)["loss"])
        moved = layout.split(before - run[f"get_{part}"](ignored=np.float32(0))["weights"])
        want_loss, want = reference_step(twin, spec, part, x_norm, y, step_coral or 0.0)
        step = f"train_{part}" + (f" (coral {step_coral:.3g})" if step_coral else "")
        if abs(loss - want_loss) > tolerance * max(1.0, abs(want_loss)):
            raise GradientMismatch(f"{step}: loss {loss:.6g} differs from the Keras twin's {want_loss:.6g}")
        for name, grad in want.items():
            error = float(np.max(np.abs(moved[name] - grad)))
            errors[f"{step}: {name}"] = error
            if not error <= tolerance:
                raise GradientMismatch(
                    f"{step}: the gradient of layer '{name.split('/')[0]}' ({name}) differs from tf.GradientTape's "
                    f"by {error:.3g}, more than {tolerance:g}; the bundle is not written")
    return errors
