"""Model spec and its Keras twin -> model bundle (.tflite with training signatures + manifest).

Beside the training model, a bundle may hold an int8 inference-only model for
always-on recognition: the same network with the weights of one model version
as constants, weights and activations quantised to 8 bits (calibrated on
inputs the operator provides), outputs the global head's probabilities (or
values) and the features that the device's personal layers take.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from cloud.gradient_check import check_gradients
from cloud.keras_twin import branch_output, build_keras_model, keras_weights, set_keras_weights
from cloud.trainable_module import TrainableModule
from sdk.bundle import INT8_FILE, MANIFEST_FILE, MODEL_FILE, SIGNATURES, Manifest
from sdk.model_spec import ModelSpec
from sdk.storage import sha256_file, write_atomically


def convert_to_tflite(module: TrainableModule) -> bytes:
    """Converts the module's signatures with TFLite builtin ops only."""
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures=module.signatures())
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(SIGNATURES))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        return converter.convert()


def _output_name(spec: ModelSpec) -> str:
    return "global_probs" if spec.head.kind == "classification" else "global_values"


def inference_model(spec: ModelSpec, shared: np.ndarray, norm_mean, norm_std) -> tf.keras.Model:
    """Raw inputs -> {global output, features}: the global model with its normalisation, for inference only.

    ``features`` is the output of the branch point, what the personal layers take.
    """
    model = build_keras_model(spec)
    set_keras_weights(model, spec.shared_layout, shared)
    trunk = tf.keras.Model(model.input, [branch_output(model, spec), model.outputs[0]])
    x = tf.keras.Input(spec.input.shape, name="x")
    stats = (1,) * len(spec.input.shape) + (-1,)
    mean = np.asarray(norm_mean, np.float32).reshape(stats)
    inv_std = 1.0 / np.asarray(norm_std, np.float32).reshape(stats)
    features, output = trunk((x - mean) * inv_std)
    output = (tf.keras.layers.Softmax(name="global_probs") if spec.head.kind == "classification"
              else tf.keras.layers.Activation("linear", name="global_values"))(output)
    outputs = {_output_name(spec): output,
               "features": tf.keras.layers.Activation("linear", name="features")(features)}
    return tf.keras.Model(x, outputs, name="fedwear_inference")


def convert_int8(model: tf.keras.Model, calibration: np.ndarray) -> bytes:
    """Full-integer quantisation (int8 weights and activations; float input and outputs)."""
    inputs = np.asarray(calibration, np.float32)
    want = tuple(model.input.shape[1:])
    if inputs.shape[1:] != want or not len(inputs):
        raise ValueError(f"calibration needs inputs of shape (n, {', '.join(map(str, want))}), got {inputs.shape}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([w[None]] for w in inputs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def int8_entry(spec: ModelSpec, digest: str, model_version: int) -> dict:
    """The manifest's ``inference.int8`` entry."""
    return {"file": INT8_FILE, "sha256": digest, "model_version": model_version,
            "quantisation": "int8 weights and activations, float32 input and outputs",
            "outputs": [_output_name(spec), "features"]}


def export_int8(
    spec: ModelSpec, shared: np.ndarray, norm_mean, norm_std, calibration: np.ndarray, path: str | Path
) -> str:
    """Writes the int8 inference model of the given shared weights; returns its SHA-256."""
    path = Path(path)
    write_atomically(path, convert_int8(inference_model(spec, shared, norm_mean, norm_std), calibration))
    return sha256_file(path)


def export_bundle(
    model: tf.keras.Model,
    spec: ModelSpec,
    out_dir: str | Path,
    norm_mean: np.ndarray,
    norm_std: np.ndarray,
    model_version: int = 1,
    calibration: np.ndarray | None = None,
) -> Manifest:
    """Writes model.tflite and manifest.json for the Keras twin's weights (``build_keras_model(spec)``).

    Every gradient of the training signatures is checked against tf.GradientTape first
    (``cloud.gradient_check``): a GradientMismatch naming the layer, and nothing written, if one
    disagrees. With ``calibration`` inputs (a few hundred raw training inputs), also the int8
    inference model of these weights, listed in the manifest.
    """
    norm_mean = np.asarray(norm_mean, np.float32).reshape(-1)
    norm_std = np.asarray(norm_std, np.float32).reshape(-1)
    if norm_mean.size != spec.input.width or norm_std.size != spec.input.width:
        raise ValueError(f"normalisation needs {spec.input.width} values per statistic, one per "
                         f"{'channel' if spec.input.kind == 'window' else 'feature'}")
    if np.any(norm_std <= 0):
        raise ValueError("normalisation std must be positive everywhere")
    shared = keras_weights(model, spec.shared_layout)
    module = TrainableModule(spec, shared, keras_weights(model, spec.personal_layout), norm_mean, norm_std)
    model_bytes = convert_to_tflite(module)
    check_gradients(model_bytes, spec, model, norm_mean, norm_std)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    write_atomically(model_path, model_bytes)
    inference = {}
    if calibration is not None:
        digest = export_int8(spec, shared, norm_mean, norm_std, calibration, out / INT8_FILE)
        inference["int8"] = int8_entry(spec, digest, model_version)
    manifest = Manifest(
        model_version=model_version,
        input=spec.input,
        head=spec.head,
        layers=spec.to_dict(),
        norm_mean=tuple(float(x) for x in norm_mean),
        norm_std=tuple(float(x) for x in norm_std),
        shared=spec.shared_layout,
        personal=spec.personal_layout,
        model_sha256=sha256_file(model_path),
        notes={"normalisation": "applied inside the model: (x - norm_mean) / norm_std"},
        inference=inference,
    )
    write_atomically(out / MANIFEST_FILE, manifest.to_json().encode())
    return manifest
