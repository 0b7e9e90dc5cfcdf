"""Starts a real key service and aggregation service as local processes on loopback.

Used by the fleet simulator and the load benchmark when no cloud URL is given;
both services are the same code an operator runs (`python -m cloud ...`, or
gunicorn with several workers). Creating a job registers it with the key
service, as its operator would.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from cloud.keyclient import register_job
from sdk.bundle import job_form_files

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """One `python -m MODULE ...` child process (`cloud` unless told), its log file and its health URL."""

    def __init__(self, args: list[str], env: dict, health: str, log: Path, headers: dict | None = None,
                 module: str = "cloud"):
        self.args, self.env, self.health, self.log, self.headers = args, env, health, log, headers or {}
        self.module = module
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "ServiceProcess":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, *self.args], cwd=PROJECT_ROOT,
                                         env={**os.environ, **self.env}, stdout=out, stderr=out)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"'{self.args[0]}' exited; its log: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.health, headers=self.headers, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"'{self.args[0]}' did not become healthy in {timeout} s; log: {self.log}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class CloudAdmin:
    """An operator's calls to a running aggregation service (no admin token: joining a job only).

    Creating a job also registers it with the key service, which needs the
    key service's URL and operator token (default: FEDWEAR_KEYSERVICE_URL and
    FEDWEAR_KS_ADMIN_TOKEN).
    """

    def __init__(self, url: str, admin_token: str = "", keyservice_url: str | None = None,
                 ks_admin_token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.keyservice_url = keyservice_url or os.environ.get("FEDWEAR_KEYSERVICE_URL", "http://127.0.0.1:8765")
        self.ks_admin_token = ks_admin_token if ks_admin_token is not None else os.environ.get(
            "FEDWEAR_KS_ADMIN_TOKEN", "")

    def start(self) -> "CloudAdmin":
        """Checks that the service answers, and takes the admin token when there is one."""
        try:
            requests.get(f"{self.url}/healthz", timeout=10)
        except requests.RequestException as exc:
            raise ValueError(f"cannot reach the aggregation service at {self.url} ({type(exc).__name__}); "
                             "is it running?") from exc
        if self.admin_token:
            self._admin("GET", "/admin/jobs")
        return self

    def stop(self) -> None:
        """Nothing to stop: the service runs elsewhere."""

    def _admin(self, method: str, path: str, **kwargs) -> dict:
        if not self.admin_token:
            raise ValueError("an admin token is needed to create jobs (set FEDWEAR_ADMIN_TOKEN)")
        response = requests.request(method, self.url + path, headers=self.admin, timeout=120, **kwargs)
        if response.status_code == 401:
            raise ValueError(f"{self.url} refused the admin token (401): check FEDWEAR_ADMIN_TOKEN")
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def create_job(self, bundle: Path, config: dict) -> dict:
        """Creates the job on the aggregator, then registers it with the key service (the operator's token)."""
        if not self.ks_admin_token:
            raise ValueError("the key service must learn a new job's parameters from its operator: set "
                             "FEDWEAR_KS_ADMIN_TOKEN (and FEDWEAR_KEYSERVICE_URL) to create jobs")
        job = self._admin("POST", "/admin/jobs", files=job_form_files(bundle), data={"config": json.dumps(config)})
        register_job(self.keyservice_url, self.ks_admin_token, job)
        return job

    def create_token(self, job_id: str, max_uses: int | None = 1, expires_in_s: int = 86400) -> str:
        """A new enrolment token: single-use by default, as the CLI's; max_uses=None: unlimited."""
        return self._admin("POST", f"/admin/jobs/{job_id}/tokens",
                           json={"max_uses": max_uses, "expires_in_s": expires_in_s})["token"]

    def job(self, job_id: str) -> dict:
        return self._admin("GET", f"/admin/jobs/{job_id}")


class LocalCloud(CloudAdmin):
    """A key service and an aggregator under `work_dir`, with an operator's helpers.

    `workers`: None runs the aggregator under the development server (one
    process); a number runs it under gunicorn with that many worker processes.
    """

    def __init__(self, work_dir: Path, database_url: str | None = None, tick_seconds: float = 0.2,
                 max_upload_bytes: int = 64 * 1024 * 1024, workers: int | None = None,
                 publish_at_close: bool = True, env: dict | None = None) -> None:
        """`env`: more FEDWEAR_* settings of the aggregator. Its virtual devices all enrol from this machine's
        address, so the enrolment rate limits are raised unless `env` sets them."""
        work_dir.mkdir(parents=True, exist_ok=True)
        admin_token = "adm_" + secrets.token_urlsafe(18)
        ks_token, ks_admin_token = "ks_" + secrets.token_urlsafe(18), "ksa_" + secrets.token_urlsafe(18)
        ks_port, port = free_port(), free_port()
        super().__init__(f"http://127.0.0.1:{port}", admin_token, f"http://127.0.0.1:{ks_port}", ks_admin_token)
        self.data_dir = work_dir / "aggregator"
        self.keyservice = ServiceProcess(
            ["keyservice", "--port", str(ks_port)],
            {"FEDWEAR_KS_DATA_DIR": str(work_dir / "keyservice"), "FEDWEAR_KEYSERVICE_TOKEN": ks_token,
             "FEDWEAR_KS_ADMIN_TOKEN": self.ks_admin_token},
            f"{self.keyservice_url}/public-key", work_dir / "keyservice.log",
            {"Authorization": f"Bearer {ks_token}"},
        )
        env = {"FEDWEAR_DATA_DIR": str(self.data_dir),
               "FEDWEAR_DATABASE_URL": database_url or f"sqlite:///{work_dir / 'fedwear.db'}",
               "FEDWEAR_ADMIN_TOKEN": admin_token, "FEDWEAR_KEYSERVICE_TOKEN": ks_token,
               "FEDWEAR_KEYSERVICE_URL": self.keyservice_url, "FEDWEAR_TICK_SECONDS": str(tick_seconds),
               "FEDWEAR_MAX_UPLOAD_BYTES": str(max_upload_bytes),
               "FEDWEAR_PUBLISH_AT_CLOSE": "1" if publish_at_close else "0",
               "FEDWEAR_ENROLMENTS_PER_ADDRESS": "1000000", "FEDWEAR_ENROLMENTS_PER_TOKEN": "1000000", **(env or {})}
        if workers is None:
            self.aggregator = ServiceProcess(["serve", "--port", str(port)], env, f"{self.url}/healthz",
                                             work_dir / "aggregator.log")
        else:
            self.aggregator = ServiceProcess(
                ["-c", "cloud/gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "cloud.app:create_app(background=True)"],
                {**env, "FEDWEAR_WORKERS": str(workers)}, f"{self.url}/healthz", work_dir / "aggregator.log",
                module="gunicorn")

    def worker_pids(self) -> list[int]:
        """The aggregator's gunicorn worker processes (empty under the development server)."""
        import psutil

        if self.aggregator.module != "gunicorn":
            return []
        return [child.pid for child in psutil.Process(self.aggregator.proc.pid).children()]

    def start(self) -> "LocalCloud":
        self.keyservice.start()
        try:
            self.aggregator.start()
        except RuntimeError:
            self.keyservice.stop()
            raise
        return self

    def stop(self) -> None:
        self.aggregator.stop()
        self.keyservice.stop()

    def __enter__(self) -> "LocalCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
