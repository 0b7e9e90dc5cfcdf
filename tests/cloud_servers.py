"""Real aggregation-service and key-service processes on loopback, for tests."""

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

import numpy as np
import psycopg
import pytest
import requests

from sdk.crypto.codec import UpdateEncoder
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams
from tests.conftest import ROOT

ADMIN_TOKEN = "admin-" + secrets.token_hex(12)
KS_TOKEN = "keys-" + secrets.token_hex(12)
POSTGRES_ADMIN_URL = os.environ.get("FEDWEAR_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A `python -m cloud ...` child process with its log file."""

    def __init__(self, args: list[str], env: dict, health: str, log: Path, headers: dict | None = None):
        self.args, self.env, self.health, self.log, self.headers = args, env, health, log, headers or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "cloud", *self.args], cwd=ROOT,
                                         env={**os.environ, **self.env}, stdout=out, stderr=out)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.health, headers=self.headers, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.args[0]} did not start: {self.log.read_text()[-2000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class Cloud:
    """A key service and an aggregator, with helpers that talk to them like devices and operators."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        ks_port, port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = tmp / "aggregator"
        self.keyservice = Process(
            ["keyservice", "--port", str(ks_port)],
            {"FEDWEAR_KS_DATA_DIR": str(tmp / "keyservice"), "FEDWEAR_KEYSERVICE_TOKEN": KS_TOKEN},
            f"http://127.0.0.1:{ks_port}/public-key", tmp / "keyservice.log",
            {"Authorization": f"Bearer {KS_TOKEN}"},
        )
        self.aggregator = Process(
            ["serve", "--port", str(port)],
            {"FEDWEAR_DATA_DIR": str(self.data_dir), "FEDWEAR_DATABASE_URL": database_url,
             "FEDWEAR_ADMIN_TOKEN": ADMIN_TOKEN, "FEDWEAR_KEYSERVICE_TOKEN": KS_TOKEN,
             "FEDWEAR_KEYSERVICE_URL": f"http://127.0.0.1:{ks_port}", "FEDWEAR_TICK_SECONDS": "0.2",
             "FEDWEAR_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024)},
            f"{self.url}/healthz", tmp / "aggregator.log",
        )
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def start(self) -> "Cloud":
        self.keyservice.start()
        self.aggregator.start()
        return self

    def stop(self) -> None:
        self.aggregator.stop()
        self.keyservice.stop()

    def create_job(self, bundle: Path, **config) -> dict:
        body = {"name": "test job", "rounds": 3, "min_devices": 2, "max_devices": 5, "round_timeout_s": 120,
                "crypto": {"max_contributors": 50, "max_weight": 500, "randomiser": "short-exponent"}}
        body.update(config)
        with open(bundle / "model.tflite", "rb") as model, open(bundle / "manifest.json", "rb") as manifest:
            response = requests.post(f"{self.url}/admin/jobs", headers=self.admin,
                                     files={"model": model, "manifest": manifest}, data={"config": json.dumps(body)})
        assert response.status_code == 201, response.text
        return response.json()

    def token(self, job_id: str, **body) -> str:
        response = requests.post(f"{self.url}/admin/jobs/{job_id}/tokens", headers=self.admin,
                                 json={"max_uses": None, **body})
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def enrol(self, token: str) -> dict:
        response = requests.post(f"{self.url}/v1/enrol", json={"token": token})
        assert response.status_code == 201, response.text
        return {"Authorization": response.json()["authorization"]}

    def plan(self, device: dict) -> dict:
        response = requests.get(f"{self.url}/v1/plan", headers=device)
        assert response.status_code == 200, response.text
        return response.json()

    def upload(self, device: dict, round_id: int, payload: bytes) -> requests.Response:
        return requests.put(f"{self.url}/v1/rounds/{round_id}/update", headers=device, data=payload)

    def wait_for_version(self, device: dict, version: int, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            plan = self.plan(device)
            if plan["model_version"] >= version:
                return plan
            time.sleep(0.2)
        raise AssertionError(f"model v{version} not published: {self.aggregator.log.read_text()[-3000:]}")

    def weights(self, device: dict, version: int) -> np.ndarray:
        response = requests.get(f"{self.url}/v1/weights/{version}", headers=device)
        assert response.status_code == 200, response.text
        return np.frombuffer(response.content, "<f4")


def encoder_for(plan: dict, seed: int = 0) -> UpdateEncoder:
    crypto = dict(plan["crypto"])
    public = PublicKey.from_json(crypto.pop("public_key"))
    return UpdateEncoder(CryptoParams.from_dict(crypto), public, seed=seed)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = "fedwear_" + secrets.token_hex(6)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fedwear.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def cloud(tmp_path):
    """A key service and an aggregator on SQLite."""
    running = Cloud(tmp_path, f"sqlite:///{tmp_path / 'fedwear.db'}").start()
    yield running
    running.stop()
