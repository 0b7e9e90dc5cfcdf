"""Randomisers computed ahead: pool first, computed when short, never one used twice."""

import numpy as np
import pytest

from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder
from sdk.crypto.keys import generate_keypair
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams
from sdk.crypto.randomisers import ShortExponentRandomiser
from sdk.precompute import PoolFirstRandomiser

PARAMS = CryptoParams(max_contributors=4, max_weight=100, randomiser="short-exponent")


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(2048)


@pytest.fixture(scope="module")
def live(keys):
    return ShortExponentRandomiser(keys[0])


def test_takes_from_the_pool_first_then_computes_and_says_which(keys, live, tmp_path):
    source = PoolFirstRandomiser(tmp_path, keys[0], "short-exponent", live)
    fill = source.fill(max_count=5, max_seconds=60)
    assert (fill.added, fill.size, fill.stopped_by) == (5, 5, "")
    stored = set(int(r) for r in source.pool.take(5))
    source.pool.fill(5, _Fixed(sorted(stored)))  # the same five, back in the file, to follow them
    first = source.take(3)
    assert source.last == "pool" and source.stored == 2
    second = source.take(4)
    assert source.last == "mixed" and source.stored == 0
    third = source.take(2)
    assert source.last == "computed"
    handed = [int(r) for r in first + second + third]
    assert len(set(handed)) == 9  # none twice
    assert set(handed) & stored == stored  # every stored one used, once


def test_prefetched_randomisers_leave_the_file_before_the_take(keys, live, tmp_path):
    source = PoolFirstRandomiser(tmp_path, keys[0], "short-exponent", live)
    source.fill(max_count=6, max_seconds=60)
    source.prefetch(4)
    restarted = PoolFirstRandomiser(tmp_path, keys[0], "short-exponent", live)  # as after a crash mid-round
    source._wait()
    assert source.stored == restarted.stored == 2
    taken = source.take(5)  # the four prefetched, then one from the file
    assert source.last == "pool" and source.stored == 1
    assert not set(int(r) for r in taken) & set(int(r) for r in restarted.take(1))


def test_the_pool_survives_a_restart_and_stays_bounded(keys, live, tmp_path):
    source = PoolFirstRandomiser(tmp_path, keys[0], "short-exponent", live)
    source.fill(max_count=4, max_seconds=60)
    assert source.fill(max_count=4, max_seconds=60).added == 0  # already full
    used = set(int(r) for r in source.take(1))
    restarted = PoolFirstRandomiser(tmp_path, keys[0], "short-exponent", live)
    assert restarted.stored == 3
    assert not used & set(int(r) for r in restarted.take(3))
    timed_out = restarted.fill(max_count=1000, max_seconds=0)
    assert (timed_out.added, timed_out.stopped_by) == (0, "time limit")
    other_key, _ = generate_keypair(2048)
    assert PoolFirstRandomiser(tmp_path, other_key, "short-exponent", live).stored == 0  # a pool per key


def test_pooled_randomisers_encrypt_updates_that_decrypt_to_their_mean(keys, live, tmp_path):
    public, private = keys
    updates = np.random.default_rng(0).normal(0, 0.1, (2, 300))
    total = EncryptedSum(PARAMS, public, 300, round_id=7)
    for i, update in enumerate(updates):
        source = PoolFirstRandomiser(tmp_path / str(i), public, "short-exponent", live)
        source.fill(PARAMS.plaintexts_for(300), 60)
        total.add(UpdateEncoder(PARAMS, public, source, seed=i).encode(update, 10, round_id=7).payload)
        assert source.last == "pool"
    mean = AggregateDecryptor(PARAMS, private).decrypt(total.to_bytes(), min_contributors=2).mean
    assert np.max(np.abs(mean - updates.mean(axis=0))) < mean_error_bound(PARAMS, 2, 20)


class _Fixed:
    def __init__(self, values):
        self.values = values

    def take(self, count):
        return self.values[:count]
