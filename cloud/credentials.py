"""Device credentials: secrets (random, shown once, stored as SHA-256 hashes) and upload signatures."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

from cloud.api.errors import ApiError, bearer_token
from cloud.db import Device
from sdk.attestation import verify_upload

MAX_SIGNATURE_CHARS = 200  # a P-256 DER signature is at most 72 bytes: 96 base64 characters


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (no salt needed: secrets are 192-bit random)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def authenticate_device(db: Session) -> Device:
    """The device named by `Authorization: Bearer <device_id>.<secret>`, or ApiError 401."""
    device_id, _, secret = bearer_token().partition(".")
    device = db.get(Device, device_id) if device_id and secret else None
    if device is None or not hmac.compare_digest(device.secret_hash, hash_secret(secret)):
        raise ApiError(401, "unauthorized", "invalid device credentials")
    if device.revoked:
        raise ApiError(401, "device_revoked", "this device's credentials were revoked")
    return device


def check_upload_signature(device: Device, round_id: int, payload: bytes, signature: str) -> None:
    """ApiError 401 bad_signature unless `signature` is the device key's signature of this round's payload."""
    if device.device_key is None:
        raise ApiError(401, "bad_signature", "this device enrolled without a device_key, so it cannot sign")
    if not signature:
        raise ApiError(401, "bad_signature", "this job requires attestation: sign the upload (X-FedWear-Signature)")
    if len(signature) > MAX_SIGNATURE_CHARS or not verify_upload(device.device_key, round_id, payload, signature):
        raise ApiError(401, "bad_signature",
                       f"X-FedWear-Signature is not this device's signature of this payload for round {round_id}")
