import numpy as np
import pytest

from device_sim import ucihar
from device_sim.dataset import DataError

SIGNALS = ucihar.SIGNALS


def write_uci(root, n_train=6, n_test=4, bad=None):
    """A tiny dataset in the published 'UCI HAR Dataset' layout."""
    base = root / "UCI HAR Dataset"
    (base / "train" / "Inertial Signals").mkdir(parents=True)
    (base / "test" / "Inertial Signals").mkdir(parents=True)
    (base / "activity_labels.txt").write_text(
        "1 WALKING\n2 WALKING_UPSTAIRS\n3 WALKING_DOWNSTAIRS\n4 SITTING\n5 STANDING\n6 LAYING\n"
    )
    rng = np.random.default_rng(0)
    for split, n, subjects in (("train", n_train, [1, 1, 1, 3, 3, 3]), ("test", n_test, [2, 2, 2, 2])):
        np.savetxt(base / split / f"subject_{split}.txt", subjects[:n], fmt="%d")
        np.savetxt(base / split / f"y_{split}.txt", rng.integers(1, 7, n), fmt="%d")
        for k, name in enumerate(SIGNALS):
            values = np.full((n, 128), 0.5 + k) + np.arange(n)[:, None] * 0.01
            np.savetxt(base / split / "Inertial Signals" / f"{name}_{split}.txt", values, fmt="%.6e")
    if bad:
        bad(base)
    return root


def test_published_layout_loads_with_units_converted(tmp_path):
    ds = ucihar.load(write_uci(tmp_path))
    assert ds.label_names[0] == "WALKING" and len(ds.label_names) == 6
    assert ds.spec.length == 128
    assert [d.subject for d in ds.devices] == ["subject01", "subject02", "subject03"]
    s1 = ds.devices[0]
    assert s1.windows.shape == (3, 128, 6)
    # total_acc_x is 0.5 g in the first row -> m/s^2; gyro stays rad/s
    assert np.isclose(s1.windows[0, 0, 0], 0.5 * ucihar.STANDARD_GRAVITY, rtol=1e-6)
    assert np.isclose(s1.windows[0, 0, 3], 3.5, rtol=1e-6)
    assert s1.labels.min() >= 0 and s1.labels.max() <= 5
    assert np.all(np.diff(s1.execution) >= 0)  # chronological blocks


def test_dataset_folder_or_its_parent_both_work(tmp_path):
    write_uci(tmp_path)
    assert len(ucihar.load(tmp_path / "UCI HAR Dataset").devices) == 3


def _drop(path):
    return lambda base: (base / path).unlink()


def _rewrite(path, text):
    return lambda base: (base / path).write_text(text)


@pytest.mark.parametrize(
    "bad, message",
    [
        (_drop("train/Inertial Signals/body_gyro_z_train.txt"), "body_gyro_z_train.txt: missing"),
        (_rewrite("train/Inertial Signals/total_acc_x_train.txt", "1 2 3\n" * 6), "expected 128 values"),
        (_rewrite("test/y_test.txt", "1\n2\n9\n1\n"), "y_test.txt, line 3: unknown label 9"),
        (_rewrite("test/subject_test.txt", ""), "subject_test.txt: empty file"),
        (_rewrite("train/y_train.txt", "1\n2\n"), "different row counts"),
        (_rewrite("activity_labels.txt", "WALKING\n"), "activity_labels.txt, line 1"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, bad, message):
    write_uci(tmp_path, bad=bad)
    with pytest.raises(DataError, match=message):
        ucihar.load(tmp_path)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="UCI Machine Learning Repository"):
        ucihar.load(tmp_path)
