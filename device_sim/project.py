"""A FedWear project: a model spec, a data loader and a job config in one folder, run as a local fleet.

``python -m device_sim new DIR`` writes one from the template (a working
example on scikit-learn's breast-cancer data); ``python -m device_sim
run-project DIR`` reads it and runs the fleet simulator on it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

from device_sim.dataset import DataError, Dataset, device_from_records
from device_sim.fleet import FleetConfig
from sdk.model_spec import ModelSpec

TEMPLATE = Path(__file__).parent / "template"
FILES = ("model.json", "data.py", "job.json", "README.md")
JOB_FIELDS = ("rounds", "local_epochs", "personal_epochs", "baseline_epochs", "batch_size", "lr", "momentum", "coral",
              "min_devices", "devices_per_round", "round_timeout_s", "randomiser", "engine", "backend", "seed")


def new_project(directory: Path) -> list[Path]:
    """Writes the template's files into a new (or empty) folder; returns their paths."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty folder: choose a new one")
    directory.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(TEMPLATE / name, directory / name)) for name in FILES]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing; a project holds {', '.join(FILES[:3])}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from exc


def _load_devices(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: missing; it defines load_devices()")
    module_spec = importlib.util.spec_from_file_location("fedwear_project_data", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, "load_devices", None)):
        raise DataError(f"{path}: defines no load_devices() returning {{device: (inputs, labels)}}")
    devices = module.load_devices()
    if not isinstance(devices, dict) or len(devices) < 2:
        raise DataError(f"{path}: load_devices() must return a dict of at least two devices, name -> (inputs, labels)")
    return devices


def load_project(directory: Path, seed: int | None = None) -> tuple[Dataset, FleetConfig]:
    """The project's data as a Dataset and its job as a FleetConfig; DataError (or SpecError) says what is wrong."""
    directory = Path(directory)
    spec_json = _read_json(directory / "model.json")
    spec = ModelSpec.from_dict(spec_json)
    if spec.head.kind != "classification":
        raise DataError("the fleet's report scores classes (accuracy, macro-F1): give model.json a classification "
                        "head; a regression head trains with the SDK (docs/your-own-model.md)")
    job = _read_json(directory / "job.json")
    unknown = set(job) - set(JOB_FIELDS)
    if unknown:
        raise DataError(f"{directory / 'job.json'}: unknown fields {sorted(unknown)}; it takes {', '.join(JOB_FIELDS)}")
    config = FleetConfig(**{"new_users": 0, **job, "spec": spec_json})
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    devices = []
    for i, (name, pair) in enumerate(_load_devices(directory / "data.py").items()):
        try:
            inputs, labels = (np.asarray(a) for a in pair)
        except (TypeError, ValueError) as exc:
            raise DataError(f"device {name!r}: load_devices() must give (inputs, labels)") from exc
        if inputs.shape[1:] != spec.input.shape or len(inputs) != len(labels):
            raise DataError(f"device {name!r}: inputs of shape {inputs.shape} and {len(labels)} labels; model.json "
                            f"takes inputs of shape (n, {', '.join(map(str, spec.input.shape))}), one label each")
        classes = spec.head.outputs
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= classes:
            raise DataError(f"device {name!r}: labels must be integers in [0, {classes - 1}] "
                            f"({', '.join(spec.head.label_names)})")
        if not np.all(np.isfinite(inputs)):
            raise DataError(f"device {name!r}: inputs contain NaN or infinite values")
        devices.append(device_from_records(str(name), inputs, labels, config.seed + i))
    return Dataset(directory.name, spec.head.label_names, None, devices, spec.input), config
