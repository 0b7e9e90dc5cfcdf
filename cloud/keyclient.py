"""Clients of the key service: the aggregator's (public key, decrypt) and the operator's (register a job)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np
import requests

from cloud.db import Job, Round
from sdk.crypto.keys import PublicKey

RETRYABLE = (401, 408, 429)  # a refused token or a busy service says nothing about the sum


class KeyServiceError(RuntimeError):
    """The key service could not be reached or failed: worth trying again later."""


class KeyServiceRefusal(KeyServiceError):
    """The key service refused what was asked (a 4xx answer): final, asking again gets the same answer."""


@dataclass(frozen=True)
class Decryption:
    """What the key service answers for one sub-sum."""

    mean: np.ndarray
    total_weight: int
    contributors: int


def _request(method: str, url: str, token: str, timeout: float, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    try:
        response = requests.request(method, url, headers=headers, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise KeyServiceError(f"key service at {url} unreachable: {exc}") from exc
    if response.status_code == 200:
        return response
    detail = f"key service answered {response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE:
        raise KeyServiceRefusal(detail)
    raise KeyServiceError(detail)


class KeyServiceClient:
    """The aggregator's calls, with the aggregator's token."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        return _request(method, self.url + path, self._token, self.timeout, **kwargs)

    def health(self) -> str:
        """ok, unreachable, or how it answered (e.g. refused: 401)."""
        try:
            response = requests.get(self.url + "/public-key", headers={"Authorization": f"Bearer {self._token}"},
                                    timeout=3)
        except requests.RequestException:
            return "unreachable"
        return "ok" if response.status_code == 200 else f"refused: {response.status_code}"

    def public_key(self) -> PublicKey:
        return PublicKey.from_json(self._call("GET", "/public-key").text)

    def decrypt(self, aggregate: bytes, job: Job, round_: Round, part: int) -> Decryption:
        """Sub-sum `part` of a round, decrypted; KeyServiceRefusal when the key service refuses it for good."""
        query = {"job": job.id, "round": round_.id, "part": part, "params": json.dumps(job.crypto),
                 "min_contributors": job.config["min_devices"], "values": job.shared_values}
        body = self._call("POST", "/decrypt", params=query, data=aggregate,
                          headers={"Content-Type": "application/octet-stream"}).json()
        mean = np.frombuffer(base64.b64decode(body["mean"]), "<f4").copy()
        return Decryption(mean, int(body["total_weight"]), int(body["contributors"]))


def registration(job: dict) -> dict:
    """What the key service must know of a job (its admin API's JSON): parameters, values, minimum, sub-sums."""
    return {"crypto": job["crypto"], "values": job["shared_values"], "min_contributors": job["config"]["min_devices"],
            "subsums": job["config"]["subsums"]}


def register_job(url: str, admin_token: str, job: dict, timeout: float = 30.0) -> dict:
    """The operator tells the key service a job's parameters (PUT /jobs/<id>, the key service's admin token)."""
    return _request("PUT", f"{url.rstrip('/')}/jobs/{job['id']}", admin_token, timeout,
                    json=registration(job)).json()
