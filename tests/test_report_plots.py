"""The report's plots keep close reference lines apart and show every device, new users included;
its tables say which figures are device means and which fleet totals."""

import numpy as np

from device_sim.report import _plot_devices, _plot_rounds, _spread, write_report

KINDS = ("local_only", "global", "personalised", "centralised")


def make_report(subjects=6):
    rng = np.random.default_rng(0)

    def scores(a):
        return {"accuracy": a, "macro_f1": a - 0.03, "subsets": {}}

    per_device = {f"d{i}": {"subject": f"s{i:02d}", "train_windows": 90, "test_windows": 40, "subset_share": {},
                            **{k: scores(float(rng.uniform(0.8, 0.95))) for k in KINDS}} for i in range(subjects)}
    newcomers = {f"n{i}": {"subject": f"s{i:02d}", "personalised_on_windows": 30, "global": scores(0.84),
                           "personalised": scores(0.9)} for i in (90, 91)}
    return {"dataset": "synthetic", "engine": "encrypted", "devices": subjects, "new_user_subjects": ["s90", "s91"],
            "mean": {"local_only": 0.883, "global": 0.871, "personalised": 0.905, "centralised": 0.879},
            "mean_macro_f1": {k: 0.85 for k in KINDS}, "subsets": {},
            "new_users": {"global": 0.84, "personalised": 0.9, "executions_used": 2, "per_device": newcomers},
            "rounds": [{"round": i, "participants": ["a", "b"], "global_accuracy": 0.7 + 0.02 * i, "seconds": 4.0,
                        "train_s": 3.0, "crypto_s": 2.0, "bytes_up": {"a": 80000, "b": 80000}, "events": []}
                       for i in range(1, 9)],
            "per_device": per_device}


def test_reference_lines_are_told_apart_on_a_zoomed_axis(tmp_path):
    facts = _plot_rounds(make_report(), tmp_path / "rounds.png")
    bottom, top = facts["ylim"]
    assert 0.6 < bottom < 0.72 and 0.905 < top < 0.95  # zoomed to the data, not 0..1
    positions = sorted(facts["labels"].values())  # local-only 0.883 and centralised 0.879 lie 0.004 apart
    assert min(np.diff(positions)) >= 0.06 * (top - bottom) - 1e-9
    assert _spread([0.5, 0.5, 0.9], 0.1) == [0.5, 0.6, 0.9]


def test_device_plot_shows_new_users_with_a_legend_clear_of_the_bars(tmp_path):
    facts = _plot_devices(make_report(), tmp_path / "devices.png")
    assert facts["ticks"][-2:] == ["s90\n(new)", "s91\n(new)"] and len(facts["ticks"]) == 8
    assert facts["legend_clear_of_bars"]
    assert facts["xlabel"].startswith("subject")
    assert 0.7 <= facts["ylim"][0] <= 0.8  # starts near the lowest bar, on a tenth


def test_tables_say_means_and_totals(tmp_path):
    text = write_report(make_report(), tmp_path).read_text()
    assert "means over the training devices" in text
    assert "| round | devices | global accuracy (device mean) | seconds (wall) | training s (fleet total) " in text
    assert "| 1 | 2 | 0.720 | 4.0 | 3.0 | 2.0 | 156 |" in text  # KB up: both devices' 80,000 bytes
