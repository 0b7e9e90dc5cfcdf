import numpy as np
import pytest

from device_sim import partitions, synthetic


def test_synthetic_is_deterministic_and_subjects_differ():
    a = synthetic.generate(subjects=3, executions=4, seed=7)
    b = synthetic.generate(subjects=3, executions=4, seed=7)
    assert np.array_equal(a.devices[0].windows, b.devices[0].windows)
    assert len(a.devices) == 3 and all(len(d.executions) == 4 for d in a.devices)
    gait = [d.metadata["gait_hz"] for d in a.devices]
    assert len(set(gait)) == 3
    assert set(np.concatenate([d.labels for d in a.devices]).tolist()) == set(range(5))
    c = synthetic.generate(subjects=3, executions=4, seed=8)
    assert not np.array_equal(a.devices[0].windows, c.devices[0].windows)


def test_within_subject_split_uses_earlier_executions_for_training():
    device = synthetic.generate(subjects=1, executions=10, seed=1).devices[0]
    train, test = partitions.within_subject(device)
    assert set(train.execution.tolist()) == set(range(6))
    assert set(test.execution.tolist()) == set(range(6, 10))
    assert len(train) + len(test) == len(device)


def test_within_subject_split_needs_two_executions():
    device = synthetic.generate(subjects=1, executions=1, seed=1).devices[0]
    with pytest.raises(ValueError, match="at least 2 executions"):
        partitions.within_subject(device)


def test_subject_folds_are_disjoint_and_cover_everyone():
    subjects = [f"s{i:02d}" for i in range(18)]
    folds = partitions.subject_folds(subjects, 3, seed=0)
    assert sorted(s for f in folds for s in f) == subjects
    assert [len(f) for f in folds] == [6, 6, 6]
    train, held = partitions.new_users(subjects, 3, seed=0)
    assert len(held) == 3 and not set(train) & set(held)
    with pytest.raises(ValueError):
        partitions.subject_folds(subjects, 1)


def test_windows_at_a_label_change_stay_within_one_execution():
    from device_sim.dataset import DeviceData

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    execution = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])  # 1 -> 2 crosses executions: not a change
    device = DeviceData("d", "s", "watch", np.zeros((9, 50, 6)), labels, execution)
    assert device.at_label_change().tolist() == [False, False, True, True, False, False, False, False, False]
    assert not DeviceData("d", "s", "watch", np.zeros((0, 50, 6)), labels[:0], execution[:0]).at_label_change().any()


def test_near_ties_follow_the_label_share_and_survive_selection():
    from device_sim.dataset import DeviceData

    share = np.array([1.0, 0.52, 0.6, 0.58, 1.0])
    device = DeviceData("d", "s", "watch", np.zeros((5, 50, 6)), np.zeros(5, int), np.zeros(5, int), {}, share)
    assert device.near_tie().tolist() == [False, True, False, True, False]
    assert device.select(np.array([False, True, True, False, False])).near_tie().tolist() == [True, False]
    assert DeviceData("d", "s", "watch", np.zeros((5, 50, 6)), np.zeros(5, int), np.zeros(5, int)).near_tie() is None


def test_denser_training_windows_come_from_the_same_executions():
    from device_sim.datasets import load_dataset

    standard = load_dataset("synthetic", subjects=2, seed=4)
    dense = load_dataset("synthetic", subjects=2, seed=4, overlap=0.8)
    assert dense.spec.overlap == 0.8 and dense.spec.length == standard.spec.length
    device, dense_device = standard.devices[0], dense.devices[0]
    train, test = partitions.within_subject(device)
    dense_train = partitions.same_executions(dense_device, train)
    assert dense_train.executions == train.executions
    assert 2 * len(train) < len(dense_train) < 3 * len(train)  # hop 10 instead of 25 samples
    assert not set(dense_train.executions) & set(test.executions)
    with pytest.raises(ValueError, match="cannot stand in"):
        partitions.same_executions(dense.devices[1], train)
