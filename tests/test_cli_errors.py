"""Operators' mistakes get one clear line, never a traceback; help needs no token; the example job is valid."""

import json

import pytest
from click.testing import CliRunner

from cloud.api.schemas import JobConfig
from cloud.cli import admin
from device_sim.cli import main as sim
from tests.conftest import ROOT
from tests.test_cloud_ops import run_cloud_cli


def test_every_admin_subcommand_has_help_without_a_token():
    for name in admin.commands:
        result = CliRunner().invoke(admin, [name, "--help"], env={"FEDWEAR_ADMIN_TOKEN": ""})
        assert result.exit_code == 0 and "Usage:" in result.output, (name, result.output)


def test_admin_cli_errors_are_one_line(cloud, bundle_dir, tmp_path):
    env = {"FEDWEAR_URL": cloud.url, "FEDWEAR_ADMIN_TOKEN": cloud.admin_token}
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["create-job", "--bundle", str(bundle_dir), "--config", "@nosuch.json"], env,
         "Error: cannot read the job config nosuch.json: No such file or directory"),
        (["create-job", "--bundle", str(empty), "--config", "{}"], env,
         f"Error: {empty} is not a model bundle: model.tflite and manifest.json missing"),
        (["jobs"], {**env, "FEDWEAR_ADMIN_TOKEN": "wrong-token-of-16-chars"},
         "Error: 401 unauthorized: invalid token (check --token or FEDWEAR_ADMIN_TOKEN)"),
        (["jobs"], {**env, "FEDWEAR_URL": "http://127.0.0.1:9"},
         "Error: cannot reach the aggregation service at http://127.0.0.1:9 (ConnectionError); is it running?"),
        (["job", "nosuchjob"], env, "Error: 404 job_not_found: job nosuchjob does not exist"),
        (["jobs"], {**env, "FEDWEAR_ADMIN_TOKEN": ""}, "Error: set FEDWEAR_ADMIN_TOKEN or pass --token"),
    ]
    for args, environment, message in cases:
        proc = run_cloud_cli("admin", *args, env=environment)
        assert proc.returncode == 1 and proc.stderr.startswith(message), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--out", "{file}"], "{file} is a file; give a folder for the report"),
    (["--data", "{missing}"], "{missing}: not an sp-sw-har dataset (no subjects_info.csv here or in DATA/)"),
    (["--new-user-executions", "3"], "3 is not in the range 1<=x<=2"),
    (["--job", "abc"], "--job and --token go together"),
])
def test_simulator_refuses_bad_options_before_it_starts(tmp_path, args, message):
    names = {"file": tmp_path / "report.md", "missing": tmp_path / "nosuch"}
    (tmp_path / "report.md").write_text("")
    result = CliRunner().invoke(sim, ["run", *[a.format(**names) for a in args]])
    assert result.exit_code in (1, 2) and message.format(**names) in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_example_job_config_is_valid_and_documented():
    config = JobConfig.model_validate(json.loads((ROOT / "docs" / "job.json").read_text()))
    readme = (ROOT / "README.md").read_text()
    assert "docs/job.json" in readme
    for field in JobConfig.model_fields:  # every field of the JobConfig is named in the README
        assert f"`{field}`" in readme, field
    assert config.max_failed_rounds == 10
