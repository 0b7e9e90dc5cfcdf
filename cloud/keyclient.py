"""The aggregator's client of the key service."""

from __future__ import annotations

import base64
import json

import numpy as np
import requests

from cloud.db import Job, Round
from sdk.crypto.keys import PublicKey


class KeyServiceError(RuntimeError):
    """The key service refused or could not be reached."""


class KeyServiceClient:
    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout

    def _call(self, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        try:
            response = requests.request(method, self.url + path, headers={**self._headers, **(headers or {})},
                                        timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise KeyServiceError(f"key service at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise KeyServiceError(f"key service answered {response.status_code}: {response.text[:300]}")
        return response

    def health(self) -> str:
        """ok, unreachable, or how it answered (e.g. refused: 401)."""
        try:
            response = requests.get(self.url + "/public-key", headers=self._headers, timeout=3)
        except requests.RequestException:
            return "unreachable"
        return "ok" if response.status_code == 200 else f"refused: {response.status_code}"

    def public_key(self) -> PublicKey:
        return PublicKey.from_json(self._call("GET", "/public-key").text)

    def decrypt(self, aggregate: bytes, job: Job, round_: Round) -> tuple[np.ndarray, int, int]:
        """(mean update, total weight, contributors) of a round's aggregate."""
        params = {"params": json.dumps(job.crypto), "min_contributors": job.config["min_devices"],
                  "values": job.shared_values, "job": job.id, "round": round_.id}
        body = self._call("POST", "/decrypt", params=params, data=aggregate,
                          headers={"Content-Type": "application/octet-stream"}).json()
        mean = np.frombuffer(base64.b64decode(body["mean"]), "<f4").copy()
        return mean, int(body["total_weight"]), int(body["contributors"])
