"""Runs repeat: the demo twice into one folder, and a fleet joining a job an operator made."""

import json
import re

from click.testing import CliRunner

from device_sim.cli import main
from tests.test_cloud_ops import run_cloud_cli

QUICK = ["--new-users", "2", "--baseline-epochs", "1", "--personal-epochs", "1", "--subjects", "4"]


def test_demo_twice_into_the_same_folder(tmp_path):
    out = tmp_path / "demo"
    jobs = []
    for _ in range(2):
        result = CliRunner().invoke(main, ["demo", "--rounds", "1", "--subjects", "4", "--out", str(out)])
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "report: " in result.output and "round   1: 2 devices" in result.output
        jobs.append(re.search(r"^job (\w+) on http", result.output, re.M).group(1))
    assert jobs[0] != jobs[1]  # a fresh job each time, in the same local services
    assert sorted(p.name for p in (out / "devices").iterdir()) == sorted(jobs)
    assert (out / "report.md").is_file()


def test_fleet_joins_an_operators_job_and_says_when_it_ended(cloud, tmp_path):
    bundle = tmp_path / "bundle"
    exported = CliRunner().invoke(main, ["export-bundle", "--subjects", "4", "--out", str(bundle)])
    assert exported.exit_code == 0, exported.output
    assert "labels 0=SEATED, 1=STANDING_UP" in exported.output
    env = cloud.operator_env
    config = json.dumps({"name": "operator's job", "rounds": 1, "min_devices": 2, "max_devices": 2})
    created = run_cloud_cli("admin", "create-job", "--bundle", str(bundle), "--config", config, env=env)
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]
    token = json.loads(run_cloud_cli("admin", "create-token", job_id, "--max-uses", "2", env=env).stdout)["token"]

    args = ["run", "--url", cloud.url, "--job", job_id, "--token", token, "--rounds", "3", *QUICK]
    no_admin = {"FEDWEAR_ADMIN_TOKEN": ""}  # joining needs no admin token
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "joined")], env=no_admin)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "round   1: 2 devices" in result.output
    assert f"job {job_id} is finished: no more rounds" in result.output
    assert cloud.job(job_id)["model_version"] == 2
    again = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "joined")], env=no_admin)
    assert again.exit_code == 1  # its devices are enrolled in the finished job
    assert f"Error: job {job_id} is finished: it opens no more rounds to join" in again.output
    used_up = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "other")], env=no_admin)
    assert used_up.exit_code == 1
    assert "Error: the service refused: 403 token_used: this enrolment token has been used up" in used_up.output
