"""Command line of the cloud: `python -m cloud --help`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import requests

from cloud.settings import ConfigError


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
    def __init__(self, url: str, token: str) -> None:
        if not token:
            raise click.ClickException("set FEDWEAR_ADMIN_TOKEN or pass --token")
        self.url, self.headers = url.rstrip("/"), {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = requests.request(method, self.url + path, headers=self.headers, timeout=120, **kwargs)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach {self.url}: {exc}") from exc
        body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
        if response.status_code >= 400:
            raise click.ClickException(f"{response.status_code} {body.get('error')}: {body.get('message')}")
        return body


@main.group()
@click.option("--url", default=lambda: os.environ.get("FEDWEAR_URL", "http://127.0.0.1:8080"), show_default="$FEDWEAR_URL")
@click.option("--token", default=lambda: os.environ.get("FEDWEAR_ADMIN_TOKEN", ""), show_default="$FEDWEAR_ADMIN_TOKEN")
@click.pass_context
def admin(ctx, url: str, token: str) -> None:
    """Operator commands against a running aggregation service."""
    ctx.obj = AdminClient(url, token)


@admin.command("create-job")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--config", "config_text", required=True, help="JobConfig as JSON, or @file.json")
@click.pass_obj
def create_job(client: AdminClient, bundle: Path, config_text: str) -> None:
    """Create a training job from a bundle directory."""
    if config_text.startswith("@"):
        config_text = Path(config_text[1:]).read_text()
    with open(bundle / "model.tflite", "rb") as model, open(bundle / "manifest.json", "rb") as manifest:
        body = client.call("POST", "/admin/jobs", files={"model": model, "manifest": manifest},
                           data={"config": config_text})
    click.echo(json.dumps(body, indent=2))


@admin.command("create-token")
@click.argument("job_id")
@click.option("--max-uses", type=int, default=1, show_default=True, help="0: unlimited")
@click.option("--expires-in", type=int, default=86400, show_default=True, help="seconds")
@click.pass_obj
def create_token(client: AdminClient, job_id: str, max_uses: int, expires_in: int) -> None:
    """Create an enrolment token (printed once)."""
    body = client.call("POST", f"/admin/jobs/{job_id}/tokens",
                       json={"max_uses": max_uses or None, "expires_in_s": expires_in})
    click.echo(json.dumps(body, indent=2))


@admin.command("jobs")
@click.pass_obj
def jobs(client: AdminClient) -> None:
    """List jobs."""
    click.echo(json.dumps(client.call("GET", "/admin/jobs"), indent=2))


@admin.command("job")
@click.argument("job_id")
@click.pass_obj
def job(client: AdminClient, job_id: str) -> None:
    """Show a job and its rounds."""
    click.echo(json.dumps(client.call("GET", f"/admin/jobs/{job_id}"), indent=2))


@admin.command("revoke-device")
@click.argument("device_id")
@click.pass_obj
def revoke_device(client: AdminClient, device_id: str) -> None:
    """Revoke a device's credentials."""
    click.echo(json.dumps(client.call("POST", f"/admin/devices/{device_id}/revoke"), indent=2))
