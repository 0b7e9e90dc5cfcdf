import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPSWHAR = Path(os.environ.get("FEDWEAR_SPSWHAR", ROOT.parent / "shared" / "data" / "sp-sw-har"))


@pytest.fixture(scope="session")
def spswhar_path() -> Path:
    if not (SPSWHAR / "DATA" / "subjects_info.csv").is_file():
        pytest.skip(f"sp-sw-har data not found at {SPSWHAR} (set FEDWEAR_SPSWHAR)")
    return SPSWHAR


@pytest.fixture(scope="session")
def model_config():
    from cloud.har_model import ModelConfig

    return ModelConfig()


@pytest.fixture(scope="session")
def norm():
    return (
        np.array([0.5, -1.0, 9.0, 0.0, 0.0, 0.1], np.float32),
        np.array([3.0, 3.0, 3.0, 1.0, 1.0, 1.5], np.float32),
    )


@pytest.fixture(scope="session")
def keras_and_bundle(tmp_path_factory, model_config, norm):
    """A freshly initialised Keras model and its exported bundle directory."""
    from cloud.bundle_export import export_bundle
    from cloud.har_model import build_keras_model

    model = build_keras_model(model_config, seed=3)
    out = tmp_path_factory.mktemp("bundle")
    export_bundle(model, model_config.spec(["a", "b", "c", "d", "e"]), out, *norm)
    return model, out


@pytest.fixture(scope="session")
def bundle_dir(keras_and_bundle):
    return keras_and_bundle[1]


pytest_plugins = ["tests.cloud_servers"]
