import json
import subprocess
import sys

from tests.conftest import ROOT


def test_load_benchmark_loses_and_double_counts_nothing_over_one_and_two_workers():
    proc = subprocess.run(
        [sys.executable, "benchmarks/load_cloud.py", "--devices", "12", "--params", "3000", "--workers", "1,2",
         "--latency-devices", "2", "--repeats", "2", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(run["turn"], run["workers"]) for run in result["runs"]] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for run in result["runs"]:
        assert run["accepted"] == 12 and run["lost"] == 0 and run["double_counted"] == 0
        assert run["published"] and run["max_abs_error"] <= run["error_bound"]
        assert run["p99_ms"] >= run["p50_ms"] > 0 and run["last_upload_to_published_s"] >= 0
    turns = result["speedup_2_over_1_turns"]
    assert len(turns) == 2 and abs(result["speedup_2_over_1"] - sum(turns) / 2) <= 0.01  # the median of two
    assert len(result["machine_2_over_1_turns"]) == 2 and 0 < result["machine_2_over_1"] <= 3
    assert result["publish_latency_s"]["at_close"] >= 0 and result["publish_latency_s"]["next_tick"] >= 0
