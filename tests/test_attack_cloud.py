"""The attack benchmark against fresh services on both databases: every attack held, nothing lost."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_every_attack_is_held_and_the_summary_is_clean(database_url):
    proc = subprocess.run([sys.executable, "benchmarks/attack_cloud.py", "--json", "--database-url", database_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    outcomes = {o["attack"]: o for o in result["outcomes"]}
    assert [name for name, o in outcomes.items() if not o["defended"]] == [], outcomes
    assert {"sybils_share_one_token", "unsigned_uploads_to_an_attested_job", "replay_into_the_next_round",
            "slow_body", "wrong_dashboard_user"} <= set(outcomes)
    assert result["summary"] == {"attacks": len(outcomes), "server_errors": 0, "halted_jobs": 0,
                                 "undetected_poisoning": 0, "sybil_recoveries": 0, "lost": 0, "double": 0,
                                 "undefended": []}
