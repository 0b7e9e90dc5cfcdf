import json
import subprocess
import sys

from tests.conftest import ROOT


def test_scale_benchmark_reports_rounds_memory_and_growth():
    proc = subprocess.run(
        [sys.executable, "benchmarks/scale_fleet.py", "--devices", "3,4", "--per-round", "2", "--rounds", "2",
         "--backend", "threads", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(r["backend"], r["devices"]) for r in result["results"]] == [("threads", 3), ("threads", 4)]
    for r in result["results"]:
        assert len(r["round_seconds"]) == 2 and r["seconds_per_round"] == r["round_seconds"][1]
        assert r["peak_fleet_mb"] > 100 and r["peak_services_mb"] > 20  # the simulator imports TensorFlow
    growth = result["growth"]["threads"]
    seconds = [r["seconds_per_round"] for r in result["results"]]
    assert growth["ratio"] == round(seconds[1] / seconds[0], 3) and growth["to_devices"] == 4


def test_scale_benchmark_needs_enough_devices_for_a_round():
    proc = subprocess.run([sys.executable, "benchmarks/scale_fleet.py", "--devices", "5", "--per-round", "10"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "at least the 10 devices per round" in proc.stderr
