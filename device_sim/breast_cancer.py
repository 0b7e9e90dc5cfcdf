"""Three "hospitals" with the Wisconsin breast-cancer data that scikit-learn ships (runs offline).

The 569 records (30 features of a breast mass's cell nuclei, computed from a
digitised fine-needle aspirate; malignant or benign; Wolberg, Street and
Mangasarian, UCI, 1995) are dealt to silos in a non-IID way, by a feature
range: the records are cut into equal ranges of ``mean radius`` (the tumour's
size), one range per silo, and each record goes to its range's silo with
probability ``home_share`` (default 0.7), else to one of the other silos at
random. Each hospital thus sees mostly tumours of one size, and so its own
mix of labels: with three silos, about 20% malignant in the small-tumour
hospital, about 30% in the middle one and about 63% in the large-tumour one
(each about 190 records).

Each silo's records are shuffled into five equal parts, its "executions":
the first three (60%) train, the last two test, as the fleet's within-subject
protocol splits executions.
"""

from __future__ import annotations

import numpy as np

from device_sim.dataset import Dataset, device_from_records
from sdk.model_spec import InputSpec

RANGE_FEATURE = "mean radius"

# The model the example trains: a small MLP; the personal layers branch after the first hidden layer.
MODEL_SPEC = {
    "layers": [{"type": "dense", "name": "hidden", "units": 16}, {"type": "relu"},
               {"type": "dense", "name": "features", "units": 8}, {"type": "relu"}],
    "personal": {"branch_from": "hidden_relu"},
}


def load(silos: int = 3, seed: int = 0, home_share: float = 0.7) -> Dataset:
    """The data as `silos` hospitals, each a DeviceData of feature vectors (see the module's docstring)."""
    from sklearn.datasets import load_breast_cancer

    if not 2 <= silos <= 10:
        raise ValueError(f"silos must be between 2 and 10, got {silos}")
    if not 1 / silos <= home_share <= 1:
        raise ValueError(f"home_share must be between 1/silos and 1, got {home_share}")
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target
    labels = tuple(str(name) for name in data.target_names)  # malignant = 0, benign = 1
    rng = np.random.default_rng(seed)
    size = x[:, list(data.feature_names).index(RANGE_FEATURE)]
    home = np.searchsorted(np.quantile(size, np.arange(1, silos) / silos), size, side="right")
    away = (home + rng.integers(1, silos, len(y))) % silos  # uniform among the other silos
    silo = np.where(rng.random(len(y)) < home_share, home, away)
    devices = [device_from_records(f"hospital-{chr(ord('a') + s)}", x[silo == s], y[silo == s], seed + s,
                                   metadata={"records": f"mostly the {RANGE_FEATURE} range {s + 1} of {silos}"})
               for s in range(silos)]
    names = tuple(str(f) for f in data.feature_names)
    return Dataset("breast-cancer", labels, None, devices, InputSpec("features", (len(names),), names=names))


def model_spec(dataset: Dataset) -> dict:
    """The example's model spec (JSON form) for the dataset's features and labels."""
    return {"input": dataset.input_spec().to_dict(), **MODEL_SPEC,
            "head": {"kind": "classification", "label_names": list(dataset.label_names)}}
