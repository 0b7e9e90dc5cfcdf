"""One malicious device against one sum and against sub-sums (benchmarks/poison_bound.py, small)."""

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from poison_bound import run  # noqa: E402


def test_one_device_spoils_at_most_its_sub_sum_and_pulls_the_mean_within_the_bound():
    result = run(devices=12, values=20, minimum=3, subsums=4)
    assert result["groups"] == [4, 3, 3, 3]
    for name, modes in result["attacks"].items():
        subsums = modes["subsums"]
        assert subsums["status"] == "published" and len(subsums["dropped"]) <= 1, name
        if not subsums["dropped"]:  # the crafted contribution passed every check: its pull is bounded
            assert subsums["linf_from_kept_honest"] <= subsums["influence_bound"], name
    single = {name: modes["single"]["status"] for name, modes in result["attacks"].items()}
    assert single["count_forged_1000"] == single["count_forged_0"] == "failed"  # one sum: one device fails a round
    assert result["attacks"]["huge_weight"]["subsums"]["dropped"]  # a sub-sum's weight bound is tighter
    assert result["junk_4mib_refusal_s"] >= 0
