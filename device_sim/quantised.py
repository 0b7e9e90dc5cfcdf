"""The final global model as an int8 inference model, scored beside the float model.

After a fleet run, the operator's step for always-on recognition: export the
final global weights as the bundle's int8 inference model (calibrated on
training windows), then score both on every device's test windows (accuracy,
the mean over devices as the report's "global") and time both per window on
one core, through tflite-runtime.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from sdk.bundle import INT8_FILE, MANIFEST_FILE, MODEL_FILE, load_bundle
from sdk.recogniser import Recogniser
from sdk.trainer import TFLiteTrainer


def ms_per_window(predict, windows: np.ndarray, batch: int, repeats: int = 5) -> float:
    """Fastest of a few passes over the windows, in batches, per window."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(windows), batch):
            predict(windows[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(windows)


def export_final_bundle(bundle: Path, spec, weights: np.ndarray, model_version: int,
                        calibration: np.ndarray, out: Path) -> Path:
    """A copy of the bundle with the int8 inference model of the final global weights."""
    from cloud.bundle_export import export_int8, int8_entry

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle / MODEL_FILE, out / MODEL_FILE)
    manifest, _ = load_bundle(bundle)
    digest = export_int8(spec, weights, manifest.norm_mean, manifest.norm_std, calibration, out / INT8_FILE)
    manifest = dataclasses.replace(manifest, model_version=model_version,
                                   inference={"int8": int8_entry(spec, digest, model_version)})
    (out / MANIFEST_FILE).write_text(manifest.to_json())
    return out


def compare_int8(bundle: Path, spec, weights: np.ndarray, model_version: int, calibration: np.ndarray,
                 tests: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> dict:
    """Accuracy of the float and int8 global models on each device's test windows, and their latency."""
    final = export_final_bundle(bundle, spec, weights, model_version, calibration, out)
    float_model = TFLiteTrainer(final)
    float_model.set_weights(weights, "shared")
    int8_model = Recogniser(final)
    per_device = {}
    for device, (windows, labels) in tests.items():
        per_device[device] = {
            "float": float(np.mean(float_model.predict(windows) == labels)),
            "int8": float(np.mean(int8_model.predict(windows) == labels)),
            "agreement": float(np.mean(float_model.predict(windows) == int8_model.predict(windows))),
        }
    windows = np.concatenate([w for w, _ in tests.values()])[:512]
    latency = {}
    for name, predict in (("float", float_model.predict_proba), ("int8", int8_model.predict_proba)):
        latency[f"{name}_ms_per_window"] = round(ms_per_window(predict, windows[:100], 1), 4)
        latency[f"{name}_ms_per_window_batched"] = round(ms_per_window(predict, windows, 256), 4)
    mean = {kind: round(float(np.mean([d[kind] for d in per_device.values()])), 4)
            for kind in ("float", "int8", "agreement")}
    return {"bundle": str(final), "model_version": model_version,
            "accuracy": {"float": mean["float"], "int8": mean["int8"]},
            "agreement": mean["agreement"], **latency,
            "float_kb": round((final / MODEL_FILE).stat().st_size / 1024, 1),
            "int8_kb": round((final / INT8_FILE).stat().st_size / 1024, 1),
            "per_device": per_device}
