"""Three hospitals with scikit-learn's breast-cancer data: a non-IID split, each silo's client in its own
process against the real aggregation and key services, and the fleet's report per silo."""

import json
import subprocess
import sys

import numpy as np

from device_sim import breast_cancer
from device_sim.partitions import within_subject
from tests.conftest import ROOT


def test_silos_split_by_tumour_size_so_their_label_mixes_differ():
    ds = breast_cancer.load(silos=3, seed=0)
    assert [d.device_id for d in ds.devices] == ["hospital-a", "hospital-b", "hospital-c"]
    assert sum(len(d) for d in ds.devices) == 569 and ds.input_spec().shape == (30,)
    radius = [float(np.median(d.windows[:, 0])) for d in ds.devices]
    malignant = [float(np.mean(d.labels == 0)) for d in ds.devices]
    assert radius == sorted(radius) and malignant == sorted(malignant)  # small, middle, large tumours
    assert malignant[2] - malignant[0] > 0.3
    train, test = within_subject(ds.devices[0])
    assert abs(len(train) / len(ds.devices[0]) - 0.6) < 0.02 and not set(train.execution) & set(test.execution)
    again = breast_cancer.load(silos=3, seed=0)
    assert all(np.array_equal(a.windows, b.windows) for a, b in zip(ds.devices, again.devices))


def test_cross_silo_run_writes_the_fleet_report_per_silo(tmp_path):
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "device_sim", "run", "--dataset", "breast-cancer", "--silos", "3",
                            "--rounds", "3", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-3000:]
    report = json.loads((out / "report.json").read_text())
    silos = ["hospital-a", "hospital-b", "hospital-c"]
    assert sorted(report["per_device"]) == silos and report["new_user_subjects"] == []
    for row in report["per_device"].values():
        assert all(0.5 < row[kind]["accuracy"] <= 1 for kind in ("local_only", "global", "personalised", "centralised"))
        # records in no time order: a silo uses its personal head, as a device without recordings, undecoded
        assert row["personal_weight"] == 1.0 and row["personalised"] == row["personal_head"]
        assert "decoded" not in row["personalised"]
    assert report["decoded"] is None
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3] and all(r["published"] for r in report["rounds"])
    for r in report["rounds"]:
        assert sorted(r["participants"]) == silos and all(r["bytes_up"][s] > 0 for s in silos)
        pids = r["processes"]
        assert sorted(pids) == silos and len(set(pids.values())) == 3 and run.pid not in pids.values()
    assert report["rounds"][0]["processes"] == report["rounds"][-1]["processes"]  # one process per silo, kept
    assert "| hospital-a |" in (out / "report.md").read_text()
