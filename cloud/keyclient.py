"""Clients of the key service: the aggregator's (public key, decrypt) and the operator's (register a job and the
device keys of an attested job)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np
import requests

from cloud.db import Job, Round
from cloud.transitions import upload_values
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

    def decrypt(self, subsum: bytes, job: Job, round_: Round, part: int) -> Decryption:
        """Sub-sum `part` of a round, decrypted; KeyServiceRefusal when the key service refuses it for good.

        `subsum`: its aggregate, or for a job that requires attestation its signed contributions
        (cloud.signed_subsums.body)."""
        query = {"job": job.id, "round": round_.id, "part": part, "params": json.dumps(job.crypto),
                 "min_contributors": job.config["min_devices"], "values": upload_values(job)}
        kind = "application/json" if job.config.get("require_attestation") else "application/octet-stream"
        body = self._call("POST", "/decrypt", params=query, data=subsum, headers={"Content-Type": kind}).json()
        mean = np.frombuffer(base64.b64decode(body["mean"]), "<f4").copy()
        return Decryption(mean, int(body["total_weight"]), int(body["contributors"]))


def registration(job: dict) -> dict:
    """What the key service must know of a job (its admin API's JSON): parameters, values, minimum, sub-sums and
    whether it requires attestation."""
    return {"crypto": job["crypto"], "values": job["upload_values"], "min_contributors": job["config"]["min_devices"],
            "subsums": job["config"]["subsums"],
            "require_attestation": bool(job["config"].get("require_attestation", False))}


def register_job(url: str, admin_token: str, job: dict, timeout: float = 30.0) -> dict:
    """The operator tells the key service a job's parameters (PUT /jobs/<id>, the key service's admin token)."""
    return _request("PUT", f"{url.rstrip('/')}/jobs/{job['id']}", admin_token, timeout,
                    json=registration(job)).json()


def registered_job(url: str, admin_token: str, job_id: str, timeout: float = 30.0) -> dict:
    """A job's registration with the key service (GET /jobs/<id>, the key service's admin token)."""
    return _request("GET", f"{url.rstrip('/')}/jobs/{job_id}", admin_token, timeout).json()


def enrolled_keys(devices: dict) -> dict[str, str]:
    """{device id: device_key} of the unrevoked devices that enrolled with a key, from the admin API's device list
    (GET /admin/jobs/<id>/devices)."""
    return {d["id"]: d["device_key"] for d in devices["devices"] if d["device_key"] and not d["revoked"]}


def register_device(url: str, admin_token: str, job_id: str, device_id: str, device_key: str,
                    timeout: float = 30.0) -> dict:
    """The operator tells the key service a device's key for an attested job (PUT /jobs/<id>/devices/<device>)."""
    return _request("PUT", f"{url.rstrip('/')}/jobs/{job_id}/devices/{device_id}", admin_token, timeout,
                    json={"device_key": device_key}).json()
