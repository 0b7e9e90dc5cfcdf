"""Real aggregation-service and key-service processes on loopback, for tests."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import requests

from device_sim.local_cloud import LocalCloud
from sdk.crypto.codec import UpdateEncoder
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

POSTGRES_ADMIN_URL = os.environ.get("FEDWEAR_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


class Cloud(LocalCloud):
    """LocalCloud plus the calls a device makes, asserting success."""

    def create_job(self, bundle: Path, **config) -> dict:
        body = {"name": "test job", "rounds": 3, "min_devices": 2, "max_devices": 5, "round_timeout_s": 120,
                "crypto": {"max_contributors": 50, "max_weight": 500, "randomiser": "short-exponent"}}
        body.update(config)
        return super().create_job(bundle, body)

    @property
    def operator_env(self) -> dict:
        """The environment of the operator's CLI: the aggregator's admin and the key service's operator tokens."""
        return {"FEDWEAR_URL": self.url, "FEDWEAR_ADMIN_TOKEN": self.admin_token,
                "FEDWEAR_KEYSERVICE_URL": self.keyservice_url, "FEDWEAR_KS_ADMIN_TOKEN": self.ks_admin_token}

    def token(self, job_id: str, **body) -> str:
        """An enrolment token; unlike the operator's default (single-use), unlimited unless `body` says."""
        return self.create_token(job_id, **{"max_uses": None, **body})

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
    running = Cloud(tmp_path, max_upload_bytes=4 * 1024 * 1024).start()
    yield running
    running.stop()
