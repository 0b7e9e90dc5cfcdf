"""A freshly initialised model's bundle for a dataset: its window length, labels and normalisation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from device_sim.dataset import normalisation


def export_initial_bundle(out_dir: Path, windows: np.ndarray | Iterable[np.ndarray], label_names: list[str],
                          seed: int = 0, window_length: int | None = None, **model):
    """Writes model.tflite and manifest.json; the normalisation is the windows' per-channel mean and std.

    ``windows``: one array, or many taken one at a time (then ``window_length`` is needed). ``model``:
    ModelConfig fields such as conv_filters and dense_units. Returns the ModelConfig.
    """
    from cloud.bundle_export import export_bundle
    from cloud.har_model import ModelConfig, build_keras_model

    mean, std = normalisation(windows)
    config = ModelConfig(window_length=window_length or windows.shape[1], num_classes=len(label_names), **model)
    export_bundle(build_keras_model(config, seed=seed), config, out_dir, list(label_names), mean, std)
    return config
