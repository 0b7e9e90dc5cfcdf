"""The project template: `device_sim new DIR` writes a project whose fleet runs as it is; a project whose
data or job does not fit is refused with the device or field named."""

import json
import subprocess
import sys

import pytest

from device_sim.dataset import DataError
from device_sim.project import FILES, load_project, new_project
from tests.conftest import ROOT


def test_new_project_runs_its_fleet(tmp_path):
    project = tmp_path / "my-project"
    made = subprocess.run([sys.executable, "-m", "device_sim", "new", str(project)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in project.iterdir()) == sorted(FILES)
    run = subprocess.run([sys.executable, "-m", "device_sim", "run-project", str(project), "--rounds", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((project / "out" / "report.json").read_text())
    assert sorted(report["per_device"]) == ["site-1", "site-2", "site-3"] and len(report["rounds"]) == 2
    assert report["mean"]["global"] > 0.85 and report["mean"]["local_only"] > 0.85
    assert report["config"]["spec"] == json.loads((project / "model.json").read_text())
    again = subprocess.run([sys.executable, "-m", "device_sim", "new", str(project)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode != 0 and "not an empty folder" in again.stderr


def test_a_project_that_does_not_fit_is_refused_with_the_reason(tmp_path):
    project = tmp_path / "p"
    new_project(project)
    data = project / "data.py"
    data.write_text(data.read_text().replace("return {f\"site-{i + 1}\": (x[site == i], y[site == i])",
                                             "return {f\"site-{i + 1}\": (x[site == i][:, :29], y[site == i])"))
    with pytest.raises(DataError, match=r"device 'site-1': inputs of shape \(\d+, 29\).*takes inputs of shape \(n, 30\)"):
        load_project(project)
    new_project(tmp_path / "q")
    job = json.loads((tmp_path / "q" / "job.json").read_text())
    (tmp_path / "q" / "job.json").write_text(json.dumps({**job, "epochs": 3}))
    with pytest.raises(DataError, match=r"unknown fields \['epochs'\]"):
        load_project(tmp_path / "q")
    new_project(tmp_path / "r")
    spec = json.loads((tmp_path / "r" / "model.json").read_text())
    spec["layers"][0]["type"] = "lstm"
    (tmp_path / "r" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="type 'lstm' is not supported"):
        load_project(tmp_path / "r")
