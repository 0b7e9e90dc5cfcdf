import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_bridge_prints_java_and_python_encryption_times_as_one_json_line():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_bridge.py", "--json", "--sizes", "400", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for language in ("java_encrypt_s", "python_encrypt_s"):
        assert set(report[language]["400"]) == {"standard", "short-exponent", "pool"}
        assert all(seconds > 0 for seconds in report[language]["400"].values())
    step = 2 / (2**16 - 1)
    assert all(error <= step for error in report["max_abs_error"].values())  # the timed payloads decrypt right
