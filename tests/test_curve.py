"""The label-efficiency curve on synthetic wearers: every subject a new wearer once, every k, resumable."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from device_sim.cli import main
from device_sim.curve import bootstrap_interval, rotation
from device_sim.partitions import within_subject
from device_sim import synthetic
from sdk.personalisation import BLEND_WEIGHTS, HeldOut, pick_weight

TINY = ["curve", "--subjects", "4", "--held-out", "2", "--seeds", "1", "--rounds", "1", "--local-epochs", "1",
        "--personal-epochs", "2", "--baseline-epochs", "2"]


def test_rotation_makes_every_subject_a_new_wearer_once_per_seed():
    subjects = [f"s{i:02d}" for i in range(18)]
    for seed in range(3):
        groups = rotation(subjects, 3, seed)
        assert len(groups) == 6 and all(len(g) == 3 for g in groups)
        assert sorted(s for g in groups for s in g) == subjects
    assert rotation(subjects, 3, 0) != rotation(subjects, 3, 1)
    with pytest.raises(ValueError, match="held_out"):
        rotation(subjects, 18, 0)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_agreement():
    rng = np.random.default_rng(1)
    spread, tight = rng.normal(0.8, 0.1, 18), rng.normal(0.8, 0.01, 18)
    low, high = bootstrap_interval(list(spread), 2000)
    assert low < np.mean(spread) < high
    tight_low, tight_high = bootstrap_interval(list(tight), 2000)
    assert tight_high - tight_low < (high - low) / 3


def held_out(global_right: float, personal_right: float, windows: int = 40) -> HeldOut:
    """Held-out heads whose argmax is right on the first share of the windows; the rest put 0.6 on a wrong class."""
    labels = np.zeros(windows, np.int64)

    def probs(right):
        p = np.tile([0.2, 0.6, 0.2], (windows, 1))
        p[: int(right * windows)] = [0.6, 0.2, 0.2]
        return p

    return HeldOut([probs(global_right)], [probs(personal_right)], [np.zeros(windows)], labels)


def test_the_personal_head_is_used_only_when_held_out_data_say_it_helps():
    assert pick_weight(held_out(0.6, 0.9)).personal_weight > 0
    assert pick_weight(held_out(0.9, 0.6)).personal_weight == 0  # worse: the global head
    assert pick_weight(held_out(0.8, 0.8)).personal_weight == 0  # cannot tell: the global head
    assert pick_weight(held_out(0.6, 0.9), by="accuracy").personal_weight in BLEND_WEIGHTS[1:]
    assert pick_weight(None).personal_weight == 0 and pick_weight(None).checked_on == 0


def test_curve_command_writes_every_k_and_reuses_folds(tmp_path):
    out = tmp_path / "curve"
    result = CliRunner().invoke(main, [*TINY, "--jobs", "2", "--out", str(out)])  # two folds side by side
    assert result.exit_code == 0, result.output
    curve = json.loads((out / "curve.json").read_text())
    for k in ("k1", "k2", "k3", "kall"):
        for key in ("personalised", "local_only", "global", "worse_than_global_2pts", "worse_than_global_5pts"):
            assert 0 <= curve["new_wearer"][k][key] <= 1, (k, key)
            assert key in curve["without_decoding"]["new_wearer"][k]
        low, high = curve["new_wearer"][k]["ci95"]["personalised"]
        assert low <= curve["new_wearer"][k]["personalised"] <= high
    assert curve["new_wearer"]["k0"]["subjects"] == 4  # every synthetic wearer was new once
    for key in ("personalised", "local_only", "global", "centralised"):
        assert 0 <= curve["within"]["all"][key] <= 1
    assert (out / "curve.png").stat().st_size > 1000 and "| new wearer, k = 2 |" in (out / "curve.md").read_text()

    folds = sorted((out / "folds").glob("*.json"))
    assert len(folds) == 2
    kept = {p: p.stat().st_mtime_ns for p in folds[1:]}
    folds[0].unlink()
    again = CliRunner().invoke(main, [*TINY, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert folds[0].exists() and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert again.output.count("fold") == 1  # only the missing fold ran
    # ... in this process this time, and it scored exactly as the fold run in a process of its own
    assert json.loads((out / "curve.json").read_text())["new_wearer"]["k2"] == curve["new_wearer"]["k2"]

    changed = CliRunner().invoke(main, [*TINY[:-6], "--rounds", "2", *TINY[-4:], "--out", str(out)])
    assert changed.exit_code != 0 and "other settings" in changed.output


def test_new_wearers_are_scored_on_executions_they_never_labelled():
    device = synthetic.generate(subjects=2, executions=6, seed=0).devices[0]
    labelled, test = within_subject(device)
    assert set(labelled.executions).isdisjoint(test.executions) and max(labelled.executions) < min(test.executions)


def test_the_head_choice_scores_held_out_recordings_on_the_windows_the_device_predicts_on(bundle_dir):
    """Trained on recordings cut densely, checked on the same recordings cut as the tests are."""
    from dataclasses import replace

    from device_sim.spswhar import SPEC
    from sdk.personalisation import held_out_heads
    from sdk.trainer import TFLiteTrainer

    sparse = synthetic.generate(subjects=1, executions=4, seed=2).devices[0]
    dense = synthetic.generate(subjects=1, executions=4, seed=2, spec=replace(SPEC, overlap=0.8)).devices[0]
    assert len(dense) > 2 * len(sparse) and dense.executions == sparse.executions
    trainer = TFLiteTrainer(bundle_dir)
    kept = trainer.get_weights("personal")
    held = held_out_heads(trainer, dense.windows, dense.labels, dense.execution, epochs=2,
                          check=(sparse.windows, sparse.labels, sparse.execution))
    assert np.array_equal(held.labels, sparse.labels)
    assert np.array_equal(np.concatenate(held.recordings), sparse.execution)
    np.testing.assert_allclose(np.concatenate(held.global_probs), trainer.predict_proba(sparse.windows, "global"),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.concatenate(held.personal_probs), np.concatenate(held.global_probs))  # it learnt
    assert np.array_equal(trainer.get_weights("personal"), kept)
    other = sparse.select(sparse.execution != sparse.executions[0])
    with pytest.raises(ValueError, match="recordings the training windows come from"):
        held_out_heads(trainer, dense.windows, dense.labels, dense.execution, epochs=1,
                       check=(other.windows, other.labels, other.execution))
