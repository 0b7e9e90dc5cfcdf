"""Centralised baseline: pooled training subjects, held-out test subjects.

The same model and initial weights are trained twice per fold: once with
Keras, once only through the bundle's TFLite training signatures (what a
device runs). Both are scored per held-out subject.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cloud.bundle_export import export_bundle
from cloud.har_model import ModelConfig, build_keras_model
from device_sim.dataset import Dataset, normalisation, pooled
from device_sim.partitions import subject_folds
from device_sim.progress import Progress
from sdk.metrics import scores
from sdk.trainer import TFLiteTrainer


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings shared by the Keras and the TFLite runs."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    seed: int = 0


def _train_fold(dataset: Dataset, train_subjects, test_subjects, config: TrainingConfig, progress):
    x, y = pooled(dataset.by_subject(train_subjects))
    mean, std = normalisation(x)
    num_classes = len(dataset.label_names)
    model_config = ModelConfig(window_length=dataset.spec.length, num_classes=num_classes)
    tf.keras.utils.set_random_seed(config.seed)
    model = build_keras_model(model_config, seed=config.seed)
    results = {}
    with tempfile.TemporaryDirectory() as bundle_dir:
        export_bundle(model, model_config.spec(dataset.label_names), bundle_dir, mean, std)
        trainer = TFLiteTrainer(bundle_dir)
        global_model = tf.keras.Model(model.input, model.outputs[0])
        global_model.compile(
            tf.keras.optimizers.SGD(config.lr, momentum=config.momentum),
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        epoch_done = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: progress.advance())
        global_model.fit(
            (x - mean) / std, y, batch_size=config.batch_size, epochs=config.epochs,
            verbose=0, shuffle=True, callbacks=[epoch_done],
        )
        trainer.fit(
            x, y, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
            momentum=config.momentum, seed=config.seed, on_epoch=lambda *_: progress.advance(),
        )
        for device in dataset.by_subject(test_subjects):
            keras_pred = np.argmax(global_model.predict((device.windows - mean) / std, verbose=0), 1)
            results[device.device_id] = {
                "subject": device.subject,
                "windows": len(device),
                "keras": scores(device.labels, keras_pred, num_classes),
                "tflite": scores(device.labels, trainer.predict(device.windows), num_classes),
            }
    return results


def run_baseline(dataset: Dataset, folds: int = 3, config: TrainingConfig = TrainingConfig(),
                 show_progress: bool = True) -> dict:
    """Cross-validated centralised training over subject folds; a summary dict."""
    started = time.perf_counter()
    groups = subject_folds(dataset.subjects, folds, config.seed)
    per_device: dict[str, dict] = {}
    with Progress("baseline", total=2 * config.epochs * folds, enabled=show_progress) as progress:
        for test_subjects in groups:
            train_subjects = [s for s in dataset.subjects if s not in test_subjects]
            per_device.update(_train_fold(dataset, train_subjects, test_subjects, config, progress))
    summary = {"dataset": dataset.name}
    for engine in ("keras", "tflite"):
        accs = [r[engine]["accuracy"] for r in per_device.values()]
        f1s = [r[engine]["macro_f1"] for r in per_device.values()]
        summary[f"accuracy_{engine}"] = round(float(np.mean(accs)), 4)
        summary[f"median_accuracy_{engine}"] = round(float(np.median(accs)), 4)
        summary[f"macro_f1_{engine}"] = round(float(np.mean(f1s)), 4)
    summary.update(
        test_subjects=sorted({r["subject"] for r in per_device.values()}),
        folds=folds,
        train_subjects_per_fold=len(dataset.subjects) - max(len(g) for g in groups),
        epochs=config.epochs,
        seconds=round(time.perf_counter() - started, 1),
        per_device=per_device,
    )
    return summary
