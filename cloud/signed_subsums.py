"""Signed sub-sums: what the aggregator sends the key service for a job that requires attestation, and what
the key service checks before it decrypts one (docs/protocol.md, Device attestation).

Instead of a sub-sum's aggregate, the aggregator sends the sub-sum's contributions, each with its device's id
and signature. The key service verifies every signature against the device key the job's operator
registered with it, refuses a device or payload given twice (in the sub-sum or in another sub-sum of the
round it already decrypted), multiplies the payloads itself and so counts the contributors itself: a sum
the aggregator made up, or a count it forged, is never decrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sdk.attestation import verify_signature
from sdk.crypto.codec import EncryptedSum
from sdk.crypto.errors import PayloadError
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
LISTED_PROBLEMS = 5  # a refusal names this many failing contributions, then counts the rest


class SignedContribution(BaseModel):
    """One contribution as the aggregator accepted it: its device, the device's signature, the payload."""

    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=ID_PATTERN, description="the aggregator's id of the device")
    signature: str = Field(max_length=400, description="its X-FedWear-Signature, as uploaded")
    payload: bytes = Field(description="the payload, base64")

    @field_validator("payload", mode="before")
    @classmethod
    def _base64(cls, value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("payload must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("payload is not base64") from exc

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


class SignedSubsum(BaseModel):
    """The body of POST /decrypt for a job that requires attestation."""

    model_config = ConfigDict(extra="forbid")
    contributions: list[SignedContribution] = Field(max_length=1_000_000)

    def identity(self) -> str:
        """SHA-256 over the sorted (device, payload SHA-256) pairs: the same contributions in any order."""
        pairs = sorted(f"{c.device_id}:{c.payload_sha256}" for c in self.contributions)
        return hashlib.sha256("\n".join(pairs).encode()).hexdigest()


def body(rows: Iterable[tuple[str, str, bytes]]) -> bytes:
    """The JSON body of a signed sub-sum from its (device id, signature, payload) rows."""
    return json.dumps({"contributions": [
        {"device_id": d, "signature": s, "payload": base64.b64encode(p).decode()} for d, s, p in rows
    ]}).encode()


class SubsumRefused(ValueError):
    """A signed sub-sum the key service refuses to decrypt; the message says why (answered 422)."""


@dataclass(frozen=True)
class Checked:
    """A signed sub-sum that passed: the product of its payloads, and what the key service records of it."""

    aggregate: bytes
    contributions: list[dict]  # {"device_id", "payload_sha256"} each


def _problems(subsum: SignedSubsum, device_key: Callable[[str], str | None], decrypted: list[dict],
              round_id: int) -> list[str]:
    """Why contributions cannot count, one line each (empty when every one verifies)."""
    used_devices = {c["device_id"] for c in decrypted}
    used_payloads = {c["payload_sha256"] for c in decrypted}
    seen_devices: set[str] = set()
    seen_payloads: dict[str, str] = {}
    problems = []
    for c in subsum.contributions:
        digest, device = c.payload_sha256, c.device_id
        key = device_key(device)
        if device in seen_devices:
            problems.append(f"device {device} is given twice")
        elif digest in seen_payloads:
            problems.append(f"device {device}'s payload is device {seen_payloads[digest]}'s too")
        elif device in used_devices or digest in used_payloads:
            problems.append(f"device {device}'s contribution is in a sub-sum of this round already decrypted")
        elif key is None:
            problems.append(f"device {device} has no device key registered for this job")
        elif not verify_signature(key, round_id, bytes.fromhex(digest), c.signature):
            problems.append(f"device {device}'s signature is not its registered key's signature of this payload "
                            f"for round {round_id}")
        seen_devices.add(device)
        seen_payloads.setdefault(digest, device)
    return problems


def check(subsum: SignedSubsum, device_key: Callable[[str], str | None], decrypted: Iterable[dict],
          round_id: int, params: CryptoParams, public: PublicKey, values: int, minimum: int) -> Checked:
    """The product of a signed sub-sum's payloads, if every contribution verifies; SubsumRefused naming the
    failing ones otherwise. `decrypted`: the {"device_id", "payload_sha256"} of the round's sub-sums already
    decrypted; `minimum`: the fewest contributions the key service decrypts."""
    count = len(subsum.contributions)
    if count < minimum:
        raise SubsumRefused(f"the sub-sum holds {count} contributions; at least {minimum} verified "
                            "ones are needed before it may be decrypted")
    problems = _problems(subsum, device_key, list(decrypted), round_id)
    if problems:
        more = f"; and {len(problems) - LISTED_PROBLEMS} more" if len(problems) > LISTED_PROBLEMS else ""
        raise SubsumRefused(f"{len(problems)} of {count} contributions fail verification: "
                            + "; ".join(problems[:LISTED_PROBLEMS]) + more)
    product = EncryptedSum(params, public, values, round_id)
    for c in subsum.contributions:
        try:
            product.add(c.payload)
        except PayloadError as exc:
            raise SubsumRefused(f"device {c.device_id}'s payload: {exc}") from exc
    return Checked(product.to_bytes(), [{"device_id": c.device_id, "payload_sha256": c.payload_sha256}
                                        for c in subsum.contributions])
