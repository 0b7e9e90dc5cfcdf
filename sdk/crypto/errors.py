"""Exceptions of the encrypted-update codec."""


class CodecError(ValueError):
    """Base class: an update, payload or aggregate cannot be used."""


class PayloadError(CodecError):
    """A payload is malformed: truncated, wrong length, bad ciphertext or header."""


class FormatVersionError(PayloadError):
    """A payload's wire-format version is not one this code reads."""


class FingerprintError(PayloadError):
    """A payload was made with other crypto parameters or another public key."""


class CapacityError(CodecError):
    """One more contribution would exceed the slots' headroom (max_contributors)."""


class PoolExhaustedError(CodecError):
    """The randomiser pool has fewer unused randomisers than an encryption needs."""
