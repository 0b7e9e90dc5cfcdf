"""A freshly initialised model's bundle for a dataset: its input, labels and normalisation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from device_sim.dataset import normalisation
from sdk.model_spec import ModelSpec


def export_initial_bundle(out_dir: Path, windows: np.ndarray | Iterable[np.ndarray], label_names: list[str],
                          seed: int = 0, input_shape: tuple[int, ...] | None = None, spec: dict | None = None,
                          **model) -> ModelSpec:
    """Writes model.tflite and manifest.json; the normalisation is the inputs' per-channel (per-feature)
    mean and std. Returns the model spec.

    ``windows``: one array, or many taken one at a time (then ``input_shape``, one input's shape, is needed).
    ``spec``: a model spec in its JSON form (sdk.model_spec), checked against the inputs and labels;
    without it, the activity model, whose ``model`` fields (ModelConfig) are such as conv_filters and
    dense_units.
    """
    from cloud.bundle_export import export_bundle
    from cloud.har_model import ModelConfig, build_keras_model
    from cloud.keras_twin import build_keras_model as build_twin

    shape = tuple(input_shape or windows.shape[1:])
    mean, std = normalisation(windows)
    if spec is None:
        config = ModelConfig(window_length=shape[0], num_classes=len(label_names), **model)
        model_spec, keras = config.spec(label_names), build_keras_model(config, seed=seed)
    else:
        model_spec = ModelSpec.from_dict(spec)
        if model_spec.input.shape != shape:
            raise ValueError(f"the model spec takes inputs of shape {list(model_spec.input.shape)}, the data has "
                             f"{list(shape)}")
        if model_spec.head.label_names != tuple(label_names):
            raise ValueError(f"the model spec's head names {list(model_spec.head.label_names)}, the data's labels are "
                             f"{list(label_names)}")
        keras = build_twin(model_spec, seed=seed)
    export_bundle(keras, model_spec, out_dir, mean, std)
    return model_spec
