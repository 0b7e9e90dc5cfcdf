"""Your data: one entry per device or site that takes part.

Replace the body of load_devices() with code that reads your own records.
It returns {device name: (inputs, labels)}:

- inputs: float array, (n, features) for feature vectors, or (n, steps,
  channels) for windows of a time series, as "input" in model.json says;
- labels: int array (n,), class indices in the order of "label_names" in
  model.json.

Each device's records are shuffled and cut into five parts: the first three
train, the last two test (local-only, global, personalised and centralised
models are all scored on them). Raw values are fine: the bundle normalises
inputs with the mean and standard deviation of the training records.

The example below, which runs as it is, deals the Wisconsin breast-cancer data
that scikit-learn ships to three sites by tumour size (mean radius), so that
each site sees mostly small, middle-sized or large tumours.
"""

import numpy as np


def load_devices() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target  # 30 features; 0 = malignant, 1 = benign
    size = x[:, 0]  # mean radius
    rng = np.random.default_rng(0)
    site = np.searchsorted(np.quantile(size, [1 / 3, 2 / 3]), size)  # 0, 1, 2: small, middle, large
    elsewhere = rng.random(len(y)) < 0.3  # three in ten records go to another site
    site[elsewhere] = (site[elsewhere] + rng.integers(1, 3, elsewhere.sum())) % 3
    return {f"site-{i + 1}": (x[site == i], y[site == i]) for i in range(3)}
