"""Device attestation: an EC P-256 key pair made at enrolment, and signed uploads (docs/protocol.md).

The device sends its public key (base64 DER SubjectPublicKeyInfo) when it enrols and signs every
upload: ECDSA-SHA256 over "FWSG" | u64 big-endian round id | SHA-256(payload), sent base64 DER in
the X-FedWear-Signature header. The private key never leaves the device's storage directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sdk.storage import write_private

SIGNATURE_HEADER = "X-FedWear-Signature"
DEVICE_KEY_FILE = "device-key.pem"
_ECDSA = ec.ECDSA(hashes.SHA256())


def upload_message(round_id: int, payload: bytes) -> bytes:
    """The 44 bytes an upload's signature covers."""
    return signed_message(round_id, hashlib.sha256(payload).digest())


def signed_message(round_id: int, payload_sha256: bytes) -> bytes:
    """The signed bytes from the payload's SHA-256 alone (what a checker holding only digests needs)."""
    return b"FWSG" + struct.pack(">Q", round_id) + payload_sha256


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not base64") from exc


def load_public_key(device_key: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of an enrolment's `device_key`; ValueError naming the problem otherwise."""
    try:
        key = serialization.load_der_public_key(_b64decode(device_key, "device_key"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"device_key is not a DER SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("device_key must be an EC P-256 (secp256r1) public key")
    return key


def verify_upload(device_key: str, round_id: int, payload: bytes, signature: str) -> bool:
    """Whether `signature` (base64 DER) is the device key's signature of this round's payload."""
    return verify_signature(device_key, round_id, hashlib.sha256(payload).digest(), signature)


def verify_signature(device_key: str, round_id: int, payload_sha256: bytes, signature: str) -> bool:
    """Whether `signature` (base64 DER) is the device key's signature of the payload with this SHA-256
    for this round: a contribution's stored `payload_sha256` and `signature` suffice to check it."""
    if not 0 <= round_id < 2**64 or len(payload_sha256) != 32:
        return False
    try:
        load_public_key(device_key).verify(_b64decode(signature, "signature"),
                                           signed_message(round_id, payload_sha256), _ECDSA)
    except (ValueError, InvalidSignature):
        return False
    return True


class DeviceKey:
    """A device's signing key, kept as a PEM PKCS8 file (mode 0600) in its storage directory."""

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        self._private = private

    @classmethod
    def load_or_create(cls, path: str | Path) -> "DeviceKey":
        """The key stored at `path`, made and stored first when there is none."""
        path = Path(path)
        if path.exists():
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} does not hold an EC private key")
            return cls(private)
        private = ec.generate_private_key(ec.SECP256R1())
        write_private(path, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        return cls(private)

    def public_key(self) -> str:
        """The enrolment's `device_key`: base64 DER SubjectPublicKeyInfo."""
        der = self._private.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    def sign_upload(self, round_id: int, payload: bytes) -> str:
        """The X-FedWear-Signature value of this payload for this round."""
        return base64.b64encode(self._private.sign(upload_message(round_id, payload), _ECDSA)).decode()
