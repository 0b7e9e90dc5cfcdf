"""Binary wire format of encrypted contributions and aggregates, version 2 (docs/encrypted-updates.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import gmpy2

from sdk.crypto import errors
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import FORMAT_VERSION, CryptoParams

MAGIC = b"FWEU"
KIND_CONTRIBUTION = 1
KIND_AGGREGATE = 2
_HEADER = struct.Struct(">4sHH32s32sQHBBHIII")
HEADER_BYTES = _HEADER.size  # 98
_PREFIX = struct.Struct(">4sHH")  # magic, version, kind: read before the rest of the header


@dataclass
class Payload:
    """A parsed payload: its header fields and ciphertexts."""

    kind: int
    round_id: int
    values: int
    contributors: int
    ciphertexts: list


def encode(kind: int, params: CryptoParams, public: PublicKey, round_id: int, values: int, contributors: int,
           ciphertexts: list) -> bytes:
    if not 0 <= round_id < 1 << 64:
        raise errors.CodecError(f"round id must be in [0, 2^64), got {round_id}")
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, kind, params.fingerprint(), public.fingerprint(), round_id, params.key_bits,
        params.quant_bits, params.slot_bits, params.slots_per_plaintext, values, len(ciphertexts),
        contributors,
    )
    width = params.ciphertext_bytes
    return header + b"".join(int(c).to_bytes(width, "big") for c in ciphertexts)


def _check_prefix(data: bytes, kind: int | None) -> None:
    if len(data) < _PREFIX.size:
        raise errors.TruncatedError(f"payload truncated: {len(data)} bytes, the header alone is {HEADER_BYTES}")
    magic, version, got_kind = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise errors.BadMagicError("not a FedWear encrypted payload (bad magic)")
    if version != FORMAT_VERSION:
        raise errors.UnsupportedVersionError(
            f"payload format version {version} is not supported (this service reads version {FORMAT_VERSION}): "
            "upgrade the SDK that made it")
    if got_kind not in (KIND_CONTRIBUTION, KIND_AGGREGATE) or (kind is not None and got_kind != kind):
        raise errors.WrongKindError(f"payload kind {got_kind} is not the expected {kind}")
    if len(data) < HEADER_BYTES:
        raise errors.TruncatedError(f"payload truncated: {len(data)} bytes, the header alone is {HEADER_BYTES}")


def decode(data: bytes, params: CryptoParams, public: PublicKey, values: int | None = None,
           kind: int | None = None, round_id: int | None = None) -> Payload:
    """Parses and checks a payload against the round's parameters, key and (when given) round id.

    Raises the PayloadError subclass of the first problem found.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    _check_prefix(data, kind)
    (_, _, got_kind, params_fp, key_fp, got_round, key_bits, quant_bits, slot_bits, slots, n_values,
     n_cts, contributors) = _HEADER.unpack_from(data)
    if params_fp != params.fingerprint():
        raise errors.ParamsMismatchError(
            "payload was made with other crypto parameters (parameter fingerprint differs)")
    if key_fp != public.fingerprint():
        raise errors.KeyMismatchError("payload was encrypted under another public key (key fingerprint differs)")
    layout = (params.key_bits, params.quant_bits, params.slot_bits, params.slots_per_plaintext)
    if (key_bits, quant_bits, slot_bits, slots) != layout:
        raise errors.LayoutMismatchError("payload header's slot layout contradicts its parameter fingerprint")
    if round_id is not None and got_round != round_id:
        raise errors.WrongRoundError(f"payload was made for round {got_round}, not round {round_id}")
    if values is not None and n_values != values:
        raise errors.WrongValueCountError(f"payload holds {n_values} values, the model has {values}")
    if n_cts != params.plaintexts_for(n_values):
        raise errors.WrongCiphertextCountError(
            f"payload declares {n_cts} ciphertexts, {n_values} values need {params.plaintexts_for(n_values)}")
    if got_kind == KIND_CONTRIBUTION and contributors != 1:
        raise errors.BadContributorCountError("a contribution must count exactly one contributor")
    if not 1 <= contributors <= params.max_contributors:
        raise errors.BadContributorCountError(
            f"payload counts {contributors} contributors, allowed 1..{params.max_contributors}")
    width = params.ciphertext_bytes
    expected = HEADER_BYTES + n_cts * width
    if len(data) < expected:
        raise errors.TruncatedError(f"payload truncated: {len(data)} bytes, its header says {expected}")
    if len(data) > expected:
        raise errors.TooLongError(f"payload too long: {len(data)} bytes, its header says {expected}")
    n_square = public.n_square
    view = memoryview(data)
    from_bytes = gmpy2.mpz.from_bytes
    ciphertexts = [
        from_bytes(view[start : start + width]) for start in range(HEADER_BYTES, expected, width)
    ]
    for i, c in enumerate(ciphertexts):
        if not 0 < c < n_square:
            raise errors.CiphertextOutOfRangeError(f"ciphertext {i} is out of range (must be in (0, n^2))")
    return Payload(got_kind, got_round, n_values, contributors, ciphertexts)
