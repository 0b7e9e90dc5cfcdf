"""Encrypting an update (device), adding contributions (aggregator), decrypting the sum (key service)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.crypto import wire
from sdk.crypto.bounds import slot_problem
from sdk.crypto.errors import CodecError, SumFullError
from sdk.crypto.keys import PrivateKey, PublicKey
from sdk.crypto.packing import dequantise_mean, pack, quantise, unpack
from sdk.crypto.params import CryptoParams
from sdk.crypto.randomisers import RandomiserSource, make_randomiser


@dataclass
class EncryptedUpdate:
    """A contribution ready to upload, and what its encoding did."""

    payload: bytes
    clipped_fraction: float
    values: int


class UpdateEncoder:
    """Device side: update -> quantised slots -> packed plaintexts -> ciphertexts -> payload."""

    def __init__(self, params: CryptoParams, public: PublicKey,
                 randomiser: RandomiserSource | None = None, seed: int | None = None) -> None:
        if public.bits != params.key_bits:
            raise CodecError(f"public key has {public.bits} bits, the parameters say {params.key_bits}")
        self.params = params
        self.public = public
        self.randomiser = randomiser or make_randomiser(params.randomiser, public)
        self._rng = np.random.default_rng(seed)

    def encrypt_slots(self, slots: np.ndarray, *, round_id: int) -> bytes:
        """Encrypts prepared slot integers (values, weight, count) into a contribution payload for a round."""
        plaintexts = pack(np.asarray(slots, np.uint64), self.params)
        n, n2 = self.public.n, self.public.n_square
        randomisers = self.randomiser.take(len(plaintexts))
        ciphertexts = [(1 + n * m) * r % n2 for m, r in zip(plaintexts, randomisers)]
        return wire.encode(wire.KIND_CONTRIBUTION, self.params, self.public, round_id, len(slots) - 2, 1,
                           ciphertexts)

    def encode(self, update: np.ndarray, weight: int, *, round_id: int) -> EncryptedUpdate:
        """Clips, quantises (stochastic rounding), packs and encrypts a float update.

        `round_id` is the `round.id` of the plan the update is for (not its number).
        """
        quantised = quantise(update, weight, self.params, self._rng)
        payload = self.encrypt_slots(quantised.slots, round_id=round_id)
        return EncryptedUpdate(payload, quantised.clipped_fraction, quantised.slots.size - 2)


class EncryptedSum:
    """Aggregator side: a running homomorphic sum of one round's contributions, public key only.

    Memory is one update's ciphertexts. A payload is checked completely before
    it touches the sum (its header must name this round), so a rejected
    payload leaves the sum unchanged.
    """

    def __init__(self, params: CryptoParams, public: PublicKey, values: int, round_id: int) -> None:
        self.params = params
        self.public = public
        self.values = values
        self.round_id = round_id
        self.contributors = 0
        self._sum = [1] * params.plaintexts_for(values)  # encryptions of zero with r = 1

    def add(self, payload: bytes) -> int:
        """Adds one contribution; returns the number of contributions summed."""
        parsed = wire.decode(payload, self.params, self.public, self.values, wire.KIND_CONTRIBUTION, self.round_id)
        return self._multiply(parsed)

    def add_sum(self, aggregate: bytes) -> int:
        """Adds a stored aggregate of the same round (e.g. another shard); returns the contributions summed."""
        parsed = wire.decode(aggregate, self.params, self.public, self.values, wire.KIND_AGGREGATE, self.round_id)
        return self._multiply(parsed)

    def _multiply(self, parsed: wire.Payload) -> int:
        if self.contributors + parsed.contributors > self.params.max_contributors:
            raise SumFullError(
                f"sum already holds {self.contributors} of max_contributors = {self.params.max_contributors} "
                f"contributions; {parsed.contributors} more could overflow a slot"
            )
        n2 = self.public.n_square
        self._sum = [a * b % n2 for a, b in zip(self._sum, parsed.ciphertexts)]
        self.contributors += parsed.contributors
        return self.contributors

    def to_bytes(self) -> bytes:
        """The aggregate as a payload for the key service (or for storage)."""
        if self.contributors == 0:
            raise CodecError("aggregate holds no contribution")
        return wire.encode(wire.KIND_AGGREGATE, self.params, self.public, self.round_id, self.values,
                           self.contributors, self._sum)

    @staticmethod
    def from_bytes(data: bytes, params: CryptoParams, public: PublicKey, values: int,
                   round_id: int) -> "EncryptedSum":
        """Restores a stored aggregate of round `round_id` to keep adding to it."""
        parsed = wire.decode(data, params, public, values, wire.KIND_AGGREGATE, round_id)
        restored = EncryptedSum(params, public, values, round_id)
        restored._sum = parsed.ciphertexts
        restored.contributors = parsed.contributors
        return restored


@dataclass
class DecryptedAggregate:
    """What the key service learns: slot sums, total weight, contributor count and the round."""

    value_sums: np.ndarray
    total_weight: int
    contributors: int
    mean: np.ndarray
    round_id: int


class AggregateDecryptor:
    """Key-service side: decrypts aggregates, never single contributions."""

    def __init__(self, params: CryptoParams, private: PrivateKey) -> None:
        if private.public.bits != params.key_bits:
            raise CodecError(f"private key has {private.public.bits} bits, the parameters say {params.key_bits}")
        self.params = params
        self.private = private

    def decrypt(self, aggregate: bytes, min_contributors: int, values: int | None = None,
                round_id: int | None = None) -> DecryptedAggregate:
        """Decrypts an aggregate of at least `min_contributors` contributions (of round `round_id` when given).

        The ciphertext holding the count slot is decrypted first: a count that
        differs from the header's, or a carry out of the count slot, is refused
        before anything else is decrypted. The slot sums must then pass the
        range check of sdk.crypto.bounds.
        """
        parsed = wire.decode(aggregate, self.params, self.private.public, values, wire.KIND_AGGREGATE, round_id)
        if parsed.contributors < max(2, min_contributors):
            raise CodecError(
                f"aggregate sums {parsed.contributors} contributions; at least {max(2, min_contributors)} "
                "are needed before it may be decrypted"
            )
        per, count_slot = self.params.slots_per_plaintext, parsed.values + 1
        last = self.private.raw_decrypt(parsed.ciphertexts[-1])  # the count slot is the last slot
        tail = unpack([last], per, self.params)[count_slot % per:]
        if int(tail[0]) != parsed.contributors:
            raise CodecError(f"aggregate claims {parsed.contributors} contributions but its count slot holds "
                             f"{int(tail[0])}")
        if tail[1:].any():
            raise CodecError("slots after the count slot are not zero: a carry out of the count slot")
        plaintexts = self.private.raw_decrypt_many(parsed.ciphertexts[:-1]) + [last]
        sums = unpack(plaintexts, parsed.values + 2, self.params)
        problem = slot_problem(sums, parsed.contributors, self.params)
        if problem is not None:
            raise CodecError(f"aggregate out of range: {problem}")
        return DecryptedAggregate(sums[:-2], int(sums[-2]), int(sums[-1]), dequantise_mean(sums, self.params),
                                  parsed.round_id)
