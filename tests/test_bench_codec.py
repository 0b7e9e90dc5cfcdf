import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_codec_prints_the_figures_as_one_json_line():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_codec.py", "--json", "--sizes", "500,2000", "--naive", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("speedup_standard", "speedup_fast", "bytes_per_param", "agg_ratio_vs_numpy",
                "decrypt_batched_speedup"):
        assert report[key] > 0
    assert report["speedup_fast"] > report["speedup_standard"] > 1
    assert report["bytes_per_param"] < report["naive_phe"]["bytes_per_param"] / 50
    size = report["sizes"]["2000"]["standard"]
    assert size["max_abs_error"] < 1e-3  # decrypted mean is the true mean
