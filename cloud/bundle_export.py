"""Keras model -> model bundle (.tflite with training signatures + manifest).

Beside the training model, a bundle may hold an int8 inference-only model for
always-on recognition: the same network with the weights of one model version
as constants, weights and activations quantised to 8 bits (calibrated on
windows the operator provides), outputs the global head's probabilities and
the pooled features that the device's personal layers take.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from cloud.har_model import ModelConfig, build_keras_model, keras_weights, set_keras_weights
from cloud.trainable_module import TrainableHarModule
from sdk.bundle import INT8_FILE, MANIFEST_FILE, MODEL_FILE, SIGNATURES, Manifest
from sdk.storage import sha256_file, write_atomically
from sdk.windowing import CHANNELS


def convert_to_tflite(module: TrainableHarModule) -> bytes:
    """Converts the module's signatures with TFLite builtin ops only."""
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures=module.signatures())
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(SIGNATURES))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        return converter.convert()


def inference_model(config: ModelConfig, shared: np.ndarray, norm_mean, norm_std) -> tf.keras.Model:
    """Raw windows -> {global_probs, features}: the global model with its normalisation, for inference only."""
    model = build_keras_model(config)
    set_keras_weights(model, config.shared_layout, shared)
    trunk = tf.keras.Model(model.input, [model.get_layer("pool").output, model.get_layer("head").output])
    x = tf.keras.Input((config.window_length, config.channels), name="x")
    mean = np.asarray(norm_mean, np.float32).reshape(1, 1, -1)
    inv_std = 1.0 / np.asarray(norm_std, np.float32).reshape(1, 1, -1)
    pooled, logits = trunk((x - mean) * inv_std)
    outputs = {"global_probs": tf.keras.layers.Softmax(name="global_probs")(logits),
               "features": tf.keras.layers.Activation("linear", name="features")(pooled)}
    return tf.keras.Model(x, outputs, name="fedwear_har_inference")


def convert_int8(model: tf.keras.Model, calibration: np.ndarray) -> bytes:
    """Full-integer quantisation (int8 weights and activations; float input and outputs)."""
    windows = np.asarray(calibration, np.float32)
    if windows.ndim != 3 or not len(windows):
        raise ValueError(f"calibration needs windows of shape (n, length, channels), got {windows.shape}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([w[None]] for w in windows)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def export_int8(
    config: ModelConfig, shared: np.ndarray, norm_mean, norm_std, calibration: np.ndarray, path: str | Path
) -> str:
    """Writes the int8 inference model of the given shared weights; returns its SHA-256."""
    path = Path(path)
    write_atomically(path, convert_int8(inference_model(config, shared, norm_mean, norm_std), calibration))
    return sha256_file(path)


def export_bundle(
    model: tf.keras.Model,
    config: ModelConfig,
    out_dir: str | Path,
    label_names: list[str],
    norm_mean: np.ndarray,
    norm_std: np.ndarray,
    model_version: int = 1,
    rate_hz: float = 50.0,
    calibration: np.ndarray | None = None,
) -> Manifest:
    """Writes model.tflite and manifest.json for the Keras model's weights.

    With ``calibration`` windows (a few hundred raw windows of the training
    data), also the int8 inference model of these weights, listed in the manifest.
    """
    if len(label_names) != config.num_classes:
        raise ValueError(f"{len(label_names)} label names for {config.num_classes} classes")
    norm_std = np.asarray(norm_std, np.float32)
    if np.any(norm_std <= 0):
        raise ValueError("normalisation std must be positive in every channel")
    shared = keras_weights(model, config.shared_layout)
    module = TrainableHarModule(config, shared, keras_weights(model, config.personal_layout), norm_mean, norm_std)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    write_atomically(model_path, convert_to_tflite(module))
    inference = {}
    if calibration is not None:
        digest = export_int8(config, shared, norm_mean, norm_std, calibration, out / INT8_FILE)
        inference["int8"] = {"file": INT8_FILE, "sha256": digest, "model_version": model_version,
                             "quantisation": "int8 weights and activations, float32 input and outputs",
                             "outputs": ["global_probs", "features"]}
    manifest = Manifest(
        model_version=model_version,
        window_length=config.window_length,
        rate_hz=rate_hz,
        channels=CHANNELS,
        label_names=tuple(label_names),
        norm_mean=tuple(float(x) for x in np.asarray(norm_mean).reshape(-1)),
        norm_std=tuple(float(x) for x in norm_std.reshape(-1)),
        shared=config.shared_layout,
        personal=config.personal_layout,
        model_sha256=sha256_file(model_path),
        notes={"normalisation": "applied inside the model: (x - norm_mean) / norm_std"},
        inference=inference,
    )
    write_atomically(out / MANIFEST_FILE, manifest.to_json().encode())
    return manifest
