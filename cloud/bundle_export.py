"""Keras model -> model bundle (.tflite with training signatures + manifest)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from cloud.har_model import ModelConfig, keras_weights
from cloud.trainable_module import TrainableHarModule
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, SIGNATURES, Manifest
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


def export_bundle(
    model: tf.keras.Model,
    config: ModelConfig,
    out_dir: str | Path,
    label_names: list[str],
    norm_mean: np.ndarray,
    norm_std: np.ndarray,
    model_version: int = 1,
    rate_hz: float = 50.0,
) -> Manifest:
    """Writes model.tflite and manifest.json for the Keras model's weights."""
    if len(label_names) != config.num_classes:
        raise ValueError(f"{len(label_names)} label names for {config.num_classes} classes")
    norm_std = np.asarray(norm_std, np.float32)
    if np.any(norm_std <= 0):
        raise ValueError("normalisation std must be positive in every channel")
    module = TrainableHarModule(
        config,
        keras_weights(model, config.shared_layout),
        keras_weights(model, config.personal_layout),
        norm_mean,
        norm_std,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    write_atomically(model_path, convert_to_tflite(module))
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
    )
    write_atomically(out / MANIFEST_FILE, manifest.to_json().encode())
    return manifest
