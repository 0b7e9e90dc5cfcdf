import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_model_prints_one_json_line_of_figures():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_model.py", "--json", "--steps", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["shared_params"] == 15781 and result["personal_params"] == 4485
    assert 10 < result["bundle_kb"] < 2000
    assert 1 < result["int8_kb"] < result["bundle_kb"] / 3
    for key in ("infer_ms_per_window", "train_shared_ms_per_batch32", "tf_train_ms_per_batch32",
                "int8_infer_ms_per_window", "int8_infer_ms_per_window_batched"):
        assert result[key] > 0
    assert result["tf_to_tflite_step_ratio"] > 0
