"""Crypto parameters of a round, their slot layout and fingerprint."""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
from dataclasses import asdict, dataclass

from sdk.crypto.errors import CodecError

KEY_SIZES = (2048, 3072)
RANDOMISERS = ("standard", "short-exponent")
FORMAT_VERSION = 2  # of the wire format and of the fingerprints (docs/encrypted-updates.md)
FINGERPRINT_MAGIC = b"FWCP"
_FINGERPRINT_INPUT = struct.Struct(">4sHHBBBHIId")  # 29 bytes


@dataclass(frozen=True)
class CryptoParams:
    """What devices, aggregator and key service agree on for one round.

    Values are clipped to [-clip, clip] and quantised to `quant_bits` bits; a
    contribution's weight (its number of samples) is at most `max_weight`.
    Each slot has room for the sum of `max_contributors` contributions, plus
    `guard_bits` high bits that stay zero in an honest sum.
    """

    key_bits: int = 2048
    quant_bits: int = 16
    clip: float = 1.0
    max_contributors: int = 1000
    max_weight: int = 1000
    guard_bits: int = 0
    randomiser: str = "standard"

    def __post_init__(self) -> None:
        for name in ("key_bits", "quant_bits", "max_contributors", "max_weight", "guard_bits"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), numbers.Integral):
                raise CodecError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if self.key_bits not in KEY_SIZES:
            raise CodecError(f"key_bits must be one of {KEY_SIZES}, got {self.key_bits}")
        if not 2 <= self.quant_bits <= 32:
            raise CodecError(f"quant_bits must be in [2, 32], got {self.quant_bits}")
        if not (isinstance(self.clip, numbers.Real) and math.isfinite(self.clip) and self.clip > 0):
            raise CodecError(f"clip must be a positive number, got {self.clip}")
        if not 1 <= self.max_contributors <= 1_000_000:
            raise CodecError(f"max_contributors must be in [1, 1000000], got {self.max_contributors}")
        if not 1 <= self.max_weight <= self.levels:
            raise CodecError(f"max_weight must be in [1, {self.levels}] at {self.quant_bits} bits")
        if not 0 <= self.guard_bits <= 8:
            raise CodecError(f"guard_bits must be in [0, 8], got {self.guard_bits}")
        if self.randomiser not in RANDOMISERS:
            raise CodecError(f"randomiser must be one of {RANDOMISERS}, got {self.randomiser!r}")

    def weight_of(self, samples: int) -> int:
        """A contribution's weight: its number of samples, at least 1 and at most max_weight."""
        return int(min(max(1, samples), self.max_weight))

    @property
    def levels(self) -> int:
        """Largest quantised value: 2^quant_bits - 1."""
        return (1 << self.quant_bits) - 1

    @property
    def step(self) -> float:
        """Quantisation step: 2 * clip / levels."""
        return 2 * self.clip / self.levels

    @property
    def slot_bits(self) -> int:
        """Bits per slot: room for max_contributors sums of `levels`, plus the guard bits."""
        return (self.levels * self.max_contributors).bit_length() + self.guard_bits

    @property
    def slots_per_plaintext(self) -> int:
        """Slots packed below n (n has exactly key_bits bits)."""
        return (self.key_bits - 1) // self.slot_bits

    @property
    def ciphertext_bytes(self) -> int:
        return 2 * self.key_bits // 8

    def plaintexts_for(self, values: int) -> int:
        """Plaintexts needed for `values` values plus the weight and count slots."""
        return -(-(values + 2) // self.slots_per_plaintext)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict) -> "CryptoParams":
        try:
            return CryptoParams(**raw)
        except TypeError as exc:
            raise CodecError(f"invalid crypto parameters: {exc}") from exc

    def fingerprint_input(self) -> bytes:
        """The 29 bytes the parameter fingerprint hashes (big-endian, docs/encrypted-updates.md).

        The randomiser is left out: it changes how a device encrypts, not what
        a ciphertext means, so devices may choose differently.
        """
        return _FINGERPRINT_INPUT.pack(
            FINGERPRINT_MAGIC, FORMAT_VERSION, self.key_bits, self.quant_bits, self.guard_bits,
            self.slot_bits, self.slots_per_plaintext, self.max_contributors, self.max_weight, float(self.clip),
        )

    def fingerprint(self) -> bytes:
        """SHA-256 of `fingerprint_input()`: what decoding depends on, parameters and slot layout."""
        return hashlib.sha256(self.fingerprint_input()).digest()
