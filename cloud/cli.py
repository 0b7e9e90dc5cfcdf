"""Command line of the cloud: `python -m cloud --help`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import requests

from cloud.settings import ConfigError
from sdk.bundle import BundleError, job_form_files


@click.group()
def main() -> None:
    """FedWear cloud: aggregation service, key service and operator commands."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
def serve(host: str, port: int) -> None:
    """Run the aggregation service (development server; see the README for gunicorn)."""
    from cloud.app import create_app

    try:
        app = create_app(background=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    app.run(host=host, port=port, threaded=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
def keyservice(host: str, port: int) -> None:
    """Run the key service (holds the private key; decrypts aggregates only)."""
    from cloud.keyservice import create_keyservice_app

    try:
        app = create_keyservice_app()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    app.run(host=host, port=port, threaded=True)


class AdminClient:
    """The operator's HTTP calls; the token is checked only when a call is made (so --help needs none)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        if not self.token:
            raise click.ClickException("set FEDWEAR_ADMIN_TOKEN or pass --token")
        try:
            response = requests.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"},
                                        timeout=120, **kwargs)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the aggregation service at {self.url} "
                                       f"({type(exc).__name__}); is it running? (--url or FEDWEAR_URL)") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": "error", "message": response.text[:200]}
            hint = " (check --token or FEDWEAR_ADMIN_TOKEN)" if response.status_code == 401 else ""
            raise click.ClickException(f"{response.status_code} {body.get('error')}: {body.get('message')}{hint}")
        return response


def _echo_json(body: dict) -> None:
    click.echo(json.dumps(body, indent=2))


def read_config(text: str) -> str:
    """A JobConfig given inline, or as @file.json."""
    if not text.startswith("@"):
        return text
    path = Path(text[1:])
    try:
        return path.read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read the job config {path}: {exc.strerror}") from exc


def open_bundle(bundle: Path) -> dict:
    """The bundle's files as multipart fields; a clear error when one is missing."""
    missing = [name for name in ("model.tflite", "manifest.json") if not (bundle / name).is_file()]
    if missing:
        raise click.ClickException(f"{bundle} is not a model bundle: {' and '.join(missing)} missing "
                                   "(make one with `python -m device_sim export-bundle`)")
    try:
        return job_form_files(bundle)
    except BundleError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
@click.option("--url", default=lambda: os.environ.get("FEDWEAR_URL", "http://127.0.0.1:8080"), show_default="$FEDWEAR_URL")
@click.option("--token", default=lambda: os.environ.get("FEDWEAR_ADMIN_TOKEN", ""), show_default="$FEDWEAR_ADMIN_TOKEN")
@click.pass_context
def admin(ctx, url: str, token: str) -> None:
    """Operator commands against a running aggregation service."""
    ctx.obj = AdminClient(url, token)


def keyservice_options(command):
    """--keyservice-url and --keyservice-admin-token: where and how the operator registers jobs with the key service."""
    command = click.option("--keyservice-admin-token", "ks_token", show_default="$FEDWEAR_KS_ADMIN_TOKEN",
                           default=lambda: os.environ.get("FEDWEAR_KS_ADMIN_TOKEN", ""),
                           help="the key service's operator token (not the aggregator's)")(command)
    return click.option("--keyservice-url", "ks_url", show_default="$FEDWEAR_KEYSERVICE_URL",
                        default=lambda: os.environ.get("FEDWEAR_KEYSERVICE_URL", "http://127.0.0.1:8765"))(command)


def register(job: dict, ks_url: str, ks_token: str) -> dict:
    """Registers a job (as the aggregator describes it) with the key service; its answer."""
    from cloud.keyclient import KeyServiceError, register_job

    if not ks_token:
        raise click.ClickException(f"job {job['id']} is not registered with the key service, so its rounds cannot "
                                   "be decrypted: set FEDWEAR_KS_ADMIN_TOKEN (or --keyservice-admin-token) and run "
                                   f"`python -m cloud admin register-job {job['id']}`")
    try:
        return register_job(ks_url, ks_token, job)
    except KeyServiceError as exc:
        raise click.ClickException(f"registering job {job['id']} with the key service: {exc}") from exc


@admin.command("create-job")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--config", "config_text", required=True, help="JobConfig as JSON, or @file.json (see docs/job.json)")
@keyservice_options
@click.pass_obj
def create_job(client: AdminClient, bundle: Path, config_text: str, ks_url: str, ks_token: str) -> None:
    """Create a training job from a bundle directory and register it with the key service."""
    config = read_config(config_text)
    job = client.call("POST", "/admin/jobs", files=open_bundle(bundle), data={"config": config})
    _echo_json(job)
    register(job, ks_url, ks_token)
    click.echo(f"job {job['id']} registered with the key service at {ks_url}", err=True)


@admin.command("register-job")
@click.argument("job_id")
@keyservice_options
@click.pass_obj
def register_job_command(client: AdminClient, job_id: str, ks_url: str, ks_token: str) -> None:
    """Register a job's parameters with the key service (once; create-job does it)."""
    _echo_json(register(client.call("GET", f"/admin/jobs/{job_id}"), ks_url, ks_token))


@admin.command("create-token")
@click.argument("job_id")
@click.option("--max-uses", type=click.IntRange(min=1), default=1, show_default=True,
              help="enrolments the token allows")
@click.option("--unlimited", is_flag=True, help="allow any number of enrolments (instead of --max-uses)")
@click.option("--expires-in", type=int, default=86400, show_default=True, help="seconds")
@click.pass_obj
def create_token(client: AdminClient, job_id: str, max_uses: int, unlimited: bool, expires_in: int) -> None:
    """Create an enrolment token (printed once); single-use unless told otherwise."""
    _echo_json(client.call("POST", f"/admin/jobs/{job_id}/tokens",
                           json={"max_uses": None if unlimited else max_uses, "expires_in_s": expires_in}))


@admin.command("jobs")
@click.pass_obj
def jobs(client: AdminClient) -> None:
    """List jobs."""
    _echo_json(client.call("GET", "/admin/jobs"))


def _when(text: str | None) -> str:
    return "-" if text is None else text.replace("T", " ")[:19]


def job_text(job: dict) -> list[str]:
    """A job as an operator reads it: status, open round, every round's times, events."""
    c = job["config"]
    lines = [f"job {job['id']} \"{job['name']}\": {job['status']}"
             + (f" ({job['status_reason']})" if job["status_reason"] else ""),
             f"created {_when(job['created_at'])}, model v{job['model_version']}, "
             f"{job['rounds_published']} of {c['rounds']} rounds published, {job['rounds_failed']} failed, "
             f"{job['rounds_extended']} extended, {job['devices']} devices enrolled",
             f"rounds need {c['min_devices']}-{c['max_devices']} devices within {c['round_timeout_s']:g} s; "
             f"at the deadline: {c['on_deadline']} (up to {c['max_extensions']} extensions); "
             f"stops after {c.get('max_failed_rounds', '-')} failed rounds in a row", "",
             f"{'round':>5} {'status':<9} {'devices':>7} {'opened':<19} {'deadline':<19} {'ext':>3} "
             f"{'closed':<19} {'published':<19} note"]
    budget = job.get("privacy_budget")
    if budget:
        lines.insert(3, f"differential privacy: epsilon {budget['epsilon']:.2f} spent over {budget['released_rounds']} "
                        f"released rounds ({budget['epsilon_planned']:.2f} after all) at delta {budget['delta']:g}")
    for r in job["rounds"]:
        lines.append(f"{r['number']:>5} {r['status']:<9} {r['contributors']:>7} {_when(r['opened_at']):<19} "
                     f"{_when(r['deadline']):<19} {r['extensions']:>3} {_when(r['closed_at']):<19} "
                     f"{_when(r['published_at']):<19} {r['error'] or ''}")
    lines += ["", "events:"] + [f"  {_when(e['at'])} {e['kind']}" + (f" (round {e['round']})" if e["round"] else "")
                                + (f": {e['reason']}" if e["reason"] else "") for e in job["events"]]
    return lines


@admin.command("job")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The admin API's JSON instead of text.")
@click.pass_obj
def job(client: AdminClient, job_id: str, as_json: bool) -> None:
    """Show a job: status, rounds with deadlines, extensions and timestamps, events."""
    body = client.call("GET", f"/admin/jobs/{job_id}")
    if as_json:
        _echo_json(body)
    else:
        click.echo("\n".join(job_text(body)))


def _one_call(name: str, method: str, path: str, doc: str, argument: str = "job_id",
              takes_reason: bool = False) -> None:
    """Adds an admin command that makes one call, with an optional --reason, and prints the JSON answer."""

    def command(client: AdminClient, reason: str = "", **ids) -> None:
        _echo_json(client.call(method, path.format(**ids), **({"json": {"reason": reason}} if takes_reason else {})))

    command.__doc__ = doc
    command = click.argument(argument)(click.pass_obj(command))
    if takes_reason:
        command = click.option("--reason", default="", help="Recorded in the job's events.")(command)
    admin.command(name)(command)


_one_call("stop", "POST", "/admin/jobs/{job_id}/stop", takes_reason=True,
          doc="Stop a job: the open round may still finish, no new round opens.")
_one_call("abort", "POST", "/admin/jobs/{job_id}/abort", takes_reason=True, doc="Abort a job: its open round fails now.")
_one_call("delete-job", "DELETE", "/admin/jobs/{job_id}",
          doc="Delete a stopped, aborted or finished job with its devices, rounds and files.")
_one_call("revoke-token", "POST", "/admin/tokens/{token_id}/revoke", argument="token_id",
          doc="Revoke an enrolment token (its id, as create-token printed it).")
_one_call("revoke-device", "POST", "/admin/devices/{device_id}/revoke", argument="device_id",
          doc="Revoke a device's credentials.")
_one_call("devices", "GET", "/admin/jobs/{job_id}/devices", doc="A job's devices and enrolment tokens.")


@admin.command("fail-round")
@click.argument("job_id")
@click.argument("number", type=int)
@click.option("--reason", required=True, help="Recorded as the round's error.")
@click.pass_obj
def fail_round(client: AdminClient, job_id: str, number: int, reason: str) -> None:
    """Fail an open or closing round (by number); the next one opens unless the job is stopping."""
    _echo_json(client.call("POST", f"/admin/jobs/{job_id}/rounds/{number}/fail", json={"reason": reason}))


@admin.command("download")
@click.argument("job_id")
@click.argument("version", type=int)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File for the shared weights (little-endian float32).")
@click.pass_obj
def download(client: AdminClient, job_id: str, version: int, out: Path) -> None:
    """Download a model version's shared weights."""
    data = client.request("GET", f"/admin/jobs/{job_id}/weights/{version}").content
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    click.echo(f"{out}: {len(data) // 4} weights")
