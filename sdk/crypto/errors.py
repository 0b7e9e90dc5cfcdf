"""Exceptions of the encrypted-update codec.

Every refusal of a payload is its own class with the error `code` (and HTTP
`status`) that the aggregation service answers with; docs/protocol.md lists
them in one table.
"""


class CodecError(ValueError):
    """Base class: an update, payload or aggregate cannot be used."""


class PayloadError(CodecError):
    """A payload is refused; subclasses name the reason with `code` and `status`."""

    code: str
    status: int = 400


class TruncatedError(PayloadError):
    """The payload is shorter than its header, or than its header says."""

    code = "truncated"


class BadMagicError(PayloadError):
    """The payload does not start with the magic bytes `FWEU`."""

    code = "bad_magic"


class UnsupportedVersionError(PayloadError):
    """The payload's wire-format version is not the one this code reads."""

    code = "unsupported_version"


class WrongKindError(PayloadError):
    """A contribution where an aggregate is expected, or the other way round."""

    code = "wrong_kind"


class ParamsMismatchError(PayloadError):
    """The payload was made with other crypto parameters (parameter fingerprint)."""

    code = "params_mismatch"


class KeyMismatchError(PayloadError):
    """The payload was encrypted under another public key (key fingerprint)."""

    code = "key_mismatch"


class LayoutMismatchError(PayloadError):
    """The header's layout fields contradict the fingerprinted parameters."""

    code = "layout_mismatch"


class WrongRoundError(PayloadError):
    """The header's round id is not the round the payload is sent to."""

    code = "wrong_round"


class WrongValueCountError(PayloadError):
    """The payload holds another number of values than the model's shared weights."""

    code = "wrong_value_count"


class WrongCiphertextCountError(PayloadError):
    """The ciphertext count does not match the value count and slot layout."""

    code = "wrong_ciphertext_count"


class BadContributorCountError(PayloadError):
    """A contribution that does not count exactly one contributor, or an aggregate out of range."""

    code = "bad_contributor_count"


class TooLongError(PayloadError):
    """The payload is longer than its header says."""

    code = "too_long"


class CiphertextOutOfRangeError(PayloadError):
    """A ciphertext is not in (0, n^2)."""

    code = "ciphertext_out_of_range"


class DuplicatePayloadError(PayloadError):
    """The same payload bytes were already accepted from another device of the job."""

    code = "duplicate_payload"
    status = 409


class SumFullError(PayloadError):
    """The sum already holds max_contributors contributions; one more could overflow a slot."""

    code = "sum_full"
    status = 409


def payload_errors() -> list[type[PayloadError]]:
    """Every payload refusal class, in the order of the table in docs/protocol.md."""
    return PayloadError.__subclasses__()


class PoolExhaustedError(CodecError):
    """The randomiser pool has fewer unused randomisers than an encryption needs."""
