"""Binary wire format of encrypted contributions and aggregates (docs/wire-format.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import gmpy2

from sdk.crypto.errors import FingerprintError, FormatVersionError, PayloadError
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

MAGIC = b"FWEU"
FORMAT_VERSION = 1
KIND_CONTRIBUTION = 1
KIND_AGGREGATE = 2
_HEADER = struct.Struct(">4sHH32s32sHBBHIII")
HEADER_BYTES = _HEADER.size


@dataclass
class Payload:
    """A parsed payload: its header fields and ciphertexts."""

    kind: int
    values: int
    contributors: int
    ciphertexts: list


def encode(kind: int, params: CryptoParams, public: PublicKey, values: int, contributors: int,
           ciphertexts: list) -> bytes:
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, kind, params.fingerprint(), public.fingerprint(), params.key_bits,
        params.quant_bits, params.slot_bits, params.slots_per_plaintext, values, len(ciphertexts),
        contributors,
    )
    width = params.ciphertext_bytes
    return header + b"".join(int(c).to_bytes(width, "big") for c in ciphertexts)


def decode(data: bytes, params: CryptoParams, public: PublicKey, values: int | None = None,
           kind: int | None = None) -> Payload:
    """Parses and checks a payload against the round's parameters and key.

    Raises a PayloadError subclass naming the first problem found.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise PayloadError(f"payload truncated: {len(data)} bytes, the header alone is {HEADER_BYTES}")
    (magic, version, got_kind, params_fp, key_fp, key_bits, quant_bits, slot_bits, slots, n_values,
     n_cts, contributors) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PayloadError("not a FedWear encrypted payload (bad magic)")
    if version != FORMAT_VERSION:
        raise FormatVersionError(f"payload format version {version} is not supported (expected {FORMAT_VERSION})")
    if got_kind not in (KIND_CONTRIBUTION, KIND_AGGREGATE) or (kind is not None and got_kind != kind):
        raise PayloadError(f"payload kind {got_kind} is not the expected {kind}")
    if params_fp != params.fingerprint():
        raise FingerprintError("payload was made with other crypto parameters (parameter fingerprint differs)")
    if key_fp != public.fingerprint():
        raise FingerprintError("payload was encrypted under another public key (key fingerprint differs)")
    layout = (params.key_bits, params.quant_bits, params.slot_bits, params.slots_per_plaintext)
    if (key_bits, quant_bits, slot_bits, slots) != layout:
        raise PayloadError("payload header's slot layout contradicts its parameter fingerprint")
    if values is not None and n_values != values:
        raise PayloadError(f"payload holds {n_values} values, the model has {values}")
    if n_cts != params.plaintexts_for(n_values):
        raise PayloadError(f"payload declares {n_cts} ciphertexts, {n_values} values need "
                           f"{params.plaintexts_for(n_values)}")
    if got_kind == KIND_CONTRIBUTION and contributors != 1:
        raise PayloadError("a contribution must count exactly one contributor")
    if not 1 <= contributors <= params.max_contributors:
        raise PayloadError(f"payload counts {contributors} contributors, allowed 1..{params.max_contributors}")
    width = params.ciphertext_bytes
    expected = HEADER_BYTES + n_cts * width
    if len(data) < expected:
        raise PayloadError(f"payload truncated: {len(data)} bytes, its header says {expected}")
    if len(data) > expected:
        raise PayloadError(f"payload too long: {len(data)} bytes, its header says {expected}")
    n_square = public.n_square
    view = memoryview(data)
    from_bytes = gmpy2.mpz.from_bytes
    ciphertexts = [
        from_bytes(view[start : start + width]) for start in range(HEADER_BYTES, expected, width)
    ]
    for i, c in enumerate(ciphertexts):
        if not 0 < c < n_square:
            raise PayloadError(f"ciphertext {i} is out of range (must be in (0, n^2))")
    return Payload(got_kind, n_values, contributors, ciphertexts)
