import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_device_runs_a_round_per_phase_without_tensorflow_on_the_device():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_device.py", "--json", "--models", "default", "--windows", "40",
         "--epochs", "1", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["models"]["default"]
    assert model["randomisers"] == {"pool": "pool", "no_pool": "computed"}
    assert not model["tensorflow_in_device"]
    assert 20 < model["peak_rss_mb"] < 400
    for key in ("encrypt_s_pool", "encrypt_s_no_pool", "train_s", "round_s"):
        assert model[key] > 0
    phases = model["phases"]["pool"]
    assert {"sync", "download", "train", "encrypt", "upload", "personalise", "predict"} <= set(phases)
    assert phases["download"]["bytes"] == 4 * model["shared_params"]  # the round's global weights
    assert phases["upload"]["bytes"] > 0 and phases["precompute"]["randomisers"] > 0
    assert model["encrypt_s_pool"] < model["encrypt_s_no_pool"]
