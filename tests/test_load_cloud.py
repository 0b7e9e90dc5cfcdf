import json
import subprocess
import sys

from tests.conftest import ROOT


def test_load_benchmark_loses_and_double_counts_nothing():
    proc = subprocess.run(
        [sys.executable, "benchmarks/load_cloud.py", "--devices", "12", "--params", "3000", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["accepted"] == 12 and result["lost"] == 0 and result["double_counted"] == 0
    assert result["published"] and result["max_abs_error"] <= result["error_bound"]
    assert result["p99_ms"] >= result["p50_ms"] > 0
