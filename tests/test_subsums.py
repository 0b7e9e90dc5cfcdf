"""Sub-sums as pure functions: grouping shards, the range checks of a decrypted sum, the weighted mean; and the
codec's exactness at 10,000 contributions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.subsums import Outcome, answer_problem, combine, group_shards
from sdk.crypto.bounds import slot_problem
from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder
from sdk.crypto.keys import generate_keypair
from sdk.crypto.packing import dequantise_mean, mean_error_bound, quantise
from sdk.crypto.params import CryptoParams

PARAMS = CryptoParams(max_contributors=100, max_weight=50, quant_bits=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(0, 15), st.integers(0, 40), min_size=1), st.integers(1, 30), st.integers(1, 8))
def test_groups_cover_every_filled_shard_once_each_with_the_minimum(counts, minimum, target):
    total = sum(counts.values())
    if total < minimum:
        return
    groups = group_shards(counts, minimum, target)
    members = [shard for group in groups for shard in group]
    assert sorted(members) == sorted(s for s, c in counts.items() if c > 0)
    assert 1 <= len(groups) <= target
    assert all(sum(counts[s] for s in group) >= minimum for group in groups)


def test_even_shards_make_as_many_groups_as_asked_and_too_few_make_one():
    assert group_shards({i: 5 for i in range(16)}, 5, 4) == [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14],
                                                             [3, 7, 11, 15]]
    assert group_shards({0: 3, 1: 1, 2: 1, 3: 0}, 4, 3) == [[0, 1, 2]]
    assert len(group_shards({i: 1 for i in range(10)}, 2, 4)) == 4


def honest_slots(rng, count: int, params: CryptoParams, values: int = 12) -> np.ndarray:
    total = np.zeros(values + 2, np.uint64)
    for _ in range(count):
        update = rng.uniform(-3 * params.clip, 3 * params.clip, values)
        total += quantise(update, int(rng.integers(1, params.max_weight + 1)), params, rng).slots
    return total


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.integers(0, 13), st.integers(1, 10**6))
def test_honest_sums_pass_the_slot_check_and_any_slot_pushed_past_its_bound_fails(count, seed, slot, push):
    rng = np.random.default_rng(seed)
    sums = honest_slots(rng, count, PARAMS)
    assert slot_problem(sums, count, PARAMS) is None
    top = [PARAMS.levels * count] * 12 + [PARAMS.max_weight * count, count]
    forged = sums.copy()
    forged[slot] = np.uint64(top[slot] + push)
    assert slot_problem(forged, count, PARAMS) is not None
    assert slot_problem(sums, count + 1, PARAMS) is not None  # a count the sum does not hold


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_honest_answers_pass_and_lies_fail_the_answer_check(count, seed):
    rng = np.random.default_rng(seed)
    sums = honest_slots(rng, count, PARAMS)
    mean, weight = dequantise_mean(sums, PARAMS), int(sums[-2])
    assert answer_problem(mean, weight, count, count, 12, PARAMS) is None
    assert "counted" in answer_problem(mean, weight, count + 1, count, 12, PARAMS)
    assert "total weight" in answer_problem(mean, PARAMS.max_weight * count + 1, count, count, 12, PARAMS)
    pushed = mean.copy()
    pushed[0] = PARAMS.clip + 2 * mean_error_bound(PARAMS, count, weight) + 1e-3
    assert "clip" in answer_problem(pushed, weight, count, count, 12, PARAMS)
    assert "values" in answer_problem(mean[:-1], weight, count, count, 12, PARAMS)
    assert answer_problem(np.full(12, np.nan, np.float32), weight, count, count, 12, PARAMS) is not None


def test_the_weighted_mean_of_sub_sums_is_fedavg_of_their_contributions():
    rng = np.random.default_rng(4)
    parts = [(rng.normal(size=5), int(w)) for w in rng.integers(1, 1000, 4)]
    kept = [Outcome(i, 3, weight, mean.astype(np.float32)) for i, (mean, weight) in enumerate(parts)]
    mean, weight, count = combine(kept)
    expected = sum(w * m for m, w in parts) / sum(w for _, w in parts)
    assert weight == sum(w for _, w in parts) and count == 12
    assert np.allclose(mean, expected, atol=1e-6)


class NoRandomiser:
    """r = 1: ciphertexts (1 + n m) mod n^2, fast; the sum's arithmetic is the same as with random r."""

    def take(self, count: int) -> list:
        return [1] * count


def test_a_sum_of_10000_contributions_is_exact_at_the_top_of_every_slot():
    params = CryptoParams(max_contributors=10_000, max_weight=1000)
    public, private = generate_keypair(2048)
    encoder = UpdateEncoder(params, public, NoRandomiser(), seed=0)
    total = EncryptedSum(params, public, 4, round_id=7)
    rng = np.random.default_rng(0)
    slots = np.zeros(6, np.uint64)
    weighted = np.zeros(4)
    weights = 0
    for i in range(params.max_contributors):
        update = np.array([params.clip, -params.clip, rng.uniform(-1, 1), 5.0])  # the top and bottom of the range
        weight = params.max_weight if i % 2 else int(rng.integers(1, params.max_weight + 1))
        quantised = quantise(update, weight, params, rng)
        slots += quantised.slots
        weighted += weight * np.clip(update, -params.clip, params.clip)
        weights += weight
        total.add(encoder.encrypt_slots(quantised.slots, round_id=7))
    result = AggregateDecryptor(params, private).decrypt(total.to_bytes(), 2, 4, round_id=7)
    assert result.contributors == 10_000 and result.total_weight == weights == int(slots[-2])
    assert np.array_equal(result.value_sums, slots[:-2])  # every slot exact, none carried
    assert np.max(np.abs(result.mean - weighted / weights)) <= mean_error_bound(params, 10_000, weights) + 1e-6
