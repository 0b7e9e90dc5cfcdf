import json
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "device_sim", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )


def test_baseline_on_synthetic_data_prints_one_json_line(tmp_path):
    proc = run_cli("baseline", "--dataset", "synthetic", "--folds", "2", "--epochs", "6", "--json",
                   "--out", str(tmp_path / "full.json"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("accuracy_keras", "accuracy_tflite", "macro_f1_keras", "macro_f1_tflite", "test_subjects"):
        assert key in result
    assert len(result["test_subjects"]) == 8
    # held-out synthetic wearers differ in placement, arm swing and recline; chance is 0.2
    assert result["accuracy_keras"] > 0.45 and result["accuracy_tflite"] > 0.45
    full = json.loads((tmp_path / "full.json").read_text())
    assert len(full["per_device"]) == 8


def test_real_watch_data_tflite_training_tracks_keras(spswhar_path):
    """A shorter run than the documented one (15 epochs instead of 40)."""
    proc = run_cli("baseline", "--data", str(spswhar_path), "--device", "watch", "--epochs", "15", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["test_subjects"]) == 18
    assert result["accuracy_tflite"] > 0.8 and result["accuracy_keras"] > 0.8
    assert abs(result["accuracy_tflite"] - result["accuracy_keras"]) < 0.03


def test_missing_data_gives_a_clear_error(tmp_path):
    proc = run_cli("baseline", "--data", str(tmp_path / "none"), "--json")
    assert proc.returncode != 0
    assert "not an sp-sw-har dataset" in proc.stderr and "Traceback" not in proc.stderr


def test_fleet_run_command_ends_with_summary_and_report(tmp_path):
    proc = run_cli("run", "--dataset", "synthetic", "--subjects", "5", "--rounds", "2", "--local-epochs", "1",
                   "--personal-epochs", "2", "--baseline-epochs", "2", "--new-users", "1",
                   "--conv-filters", "16,16,16", "--dense-units", "16", "--train-overlap", "0.8", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"report: {tmp_path / 'report.md'}"
    assert any(line.strip().startswith("personalised:") for line in lines)
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("local_only", "global", "personalised", "centralised"):
        assert 0 <= report["mean"][key] <= 1
    assert report["new_users"]["global"] is not None and report["new_users"]["personalised"] is not None
    assert report["window_overlap"] == {"training": 0.8, "test": 0.5}
    assert all(row["train_windows"] > 2 * row["test_windows"] for row in report["per_device"].values())
    assert (tmp_path / "per_device.png").exists()
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert [t["name"] for t in manifest["shared"]["tensors"]][:6] == [
        "conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias", "conv3/kernel", "conv3/bias"]


def test_fleet_run_rejects_bad_events_and_model_shapes():
    proc = run_cli("run", "--leave", "two:1")
    assert proc.returncode != 0 and "expected ROUND:COUNT" in proc.stderr
    proc = run_cli("run", "--conv-filters", "64,0")
    assert proc.returncode != 0 and "widths must be positive" in proc.stderr
    proc = run_cli("run", "--conv-filters", ",".join(["8"] * 13))
    assert proc.returncode != 0 and "leave no step" in proc.stderr and "Traceback" not in proc.stderr
