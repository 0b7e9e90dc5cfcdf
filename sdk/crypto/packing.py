"""Quantisation and slot packing: float update <-> non-negative integers <-> plaintexts.

A value x is clipped to [-clip, clip], scaled by weight / max_weight, shifted
to [0, 2 * clip] and stochastically rounded to an integer in [0, levels]. Slots
of `slot_bits` bits hold one integer each; slot j of a plaintext is bits
[j * slot_bits, (j + 1) * slot_bits). After the values come two more slots:
the contribution's weight and a count of 1, so that the decrypted aggregate
carries the total weight and the number of contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.crypto.errors import CodecError
from sdk.crypto.params import CryptoParams


@dataclass
class Quantised:
    """The slots of one contribution and what clipping did."""

    slots: np.ndarray  # uint64: values, then weight, then count (1)
    clipped_fraction: float


def quantise(
    update: np.ndarray, weight: int, params: CryptoParams, rng: np.random.Generator
) -> Quantised:
    """Clip, weight and stochastically round an update into slot integers."""
    x = np.asarray(update, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise CodecError("update is empty")
    if not np.all(np.isfinite(x)):
        raise CodecError("update contains NaN or infinite values")
    if not isinstance(weight, (int, np.integer)) or not 1 <= weight <= params.max_weight:
        raise CodecError(f"weight must be an integer in [1, {params.max_weight}], got {weight!r}")
    clipped = np.clip(x, -params.clip, params.clip)
    clipped_fraction = float(np.mean(clipped != x))
    scaled = (clipped * (weight / params.max_weight) + params.clip) / params.step
    floor = np.floor(scaled)
    q = floor + (rng.random(x.size) < (scaled - floor))
    q = np.clip(q, 0, params.levels).astype(np.uint64)
    slots = np.concatenate([q, np.array([weight, 1], np.uint64)])
    return Quantised(slots, clipped_fraction)


def dequantise_mean(sums: np.ndarray, params: CryptoParams) -> np.ndarray:
    """Weighted mean update from the slot sums of an aggregate.

    ``sums`` holds the value sums, then the total weight and the count.
    """
    values, total_weight, count = sums[:-2], int(sums[-2]), int(sums[-1])
    if count < 1 or total_weight < 1:
        raise CodecError("aggregate holds no contribution")
    weighted_sum = values.astype(np.float64) * params.step - count * params.clip
    return (weighted_sum * params.max_weight / total_weight).astype(np.float32)


def mean_error_bound(params: CryptoParams, count: int, total_weight: int) -> float:
    """Largest error of dequantise_mean against the weighted mean of the clipped updates.

    Each contribution's rounding moves its slot by less than one step, so the
    weighted sum is off by less than count * step, and the mean by less than
    count * step * max_weight / total_weight (= step when every weight is max_weight).
    """
    return count * params.step * params.max_weight / total_weight


def pack(slots: np.ndarray, params: CryptoParams) -> list[int]:
    """Slot integers -> plaintext integers, `slots_per_plaintext` slots each."""
    per, bits = params.slots_per_plaintext, params.slot_bits
    n_plain = -(-slots.size // per)
    padded = np.zeros(n_plain * per, np.uint64)
    padded[: slots.size] = slots
    shifts = np.arange(bits, dtype=np.uint64)
    bit_array = ((padded.reshape(n_plain, per, 1) >> shifts) & np.uint64(1)).astype(np.uint8)
    packed = np.packbits(bit_array.reshape(n_plain, per * bits), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack(plaintexts: list[int], count: int, params: CryptoParams) -> np.ndarray:
    """Plaintext integers -> the first `count` slot integers (uint64)."""
    per, bits = params.slots_per_plaintext, params.slot_bits
    width = (per * bits + 7) // 8
    rows = []
    for m in plaintexts:
        if m < 0 or m.bit_length() > per * bits:
            raise CodecError("plaintext does not fit the slot layout (wrong key or overflow)")
        rows.append(np.frombuffer(int(m).to_bytes(width, "little"), np.uint8))
    bit_array = np.unpackbits(np.stack(rows), axis=1, bitorder="little")[:, : per * bits]
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    slots = (bit_array.reshape(-1, per, bits).astype(np.uint64) * weights).sum(axis=2)
    return slots.reshape(-1)[:count]
