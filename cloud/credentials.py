"""Device and token secrets: random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

from cloud.api.errors import ApiError, bearer_token
from cloud.db import Device


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
