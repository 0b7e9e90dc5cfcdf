import hashlib
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phe import paillier

from sdk.crypto import errors, wire
from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder
from sdk.crypto.errors import CodecError, PoolExhaustedError, SumFullError
from sdk.crypto.keys import PrivateKey, PublicKey, generate_keypair
from sdk.crypto.packing import mean_error_bound, pack, unpack
from sdk.crypto.params import CryptoParams
from sdk.crypto.randomisers import RandomiserPool, ShortExponentRandomiser

SMALL = CryptoParams(max_contributors=6, max_weight=500)
ROUND = 7


@pytest.fixture(scope="session")
def keys():
    return generate_keypair(2048)


@pytest.fixture(scope="session")
def fast(keys):
    return ShortExponentRandomiser(keys[0])


def slots_strategy(params, values):
    return st.lists(
        st.integers(min_value=0, max_value=params.levels), min_size=values, max_size=values
    ).flatmap(
        lambda v: st.integers(min_value=1, max_value=params.max_weight).map(
            lambda w: np.array(v + [w, 1], np.uint64)
        )
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_sum_of_encrypted_quantised_updates_decrypts_exactly(keys, fast, data):
    public, private = keys
    params = SMALL
    k = data.draw(st.integers(min_value=2, max_value=params.max_contributors), label="K")
    values = data.draw(st.integers(min_value=1, max_value=200), label="values")
    contributions = [data.draw(slots_strategy(params, values)) for _ in range(k)]
    encoder = UpdateEncoder(params, public, fast)
    total = EncryptedSum(params, public, values, ROUND)
    for slots in contributions:
        total.add(encoder.encrypt_slots(slots, round_id=ROUND))
    result = AggregateDecryptor(params, private).decrypt(total.to_bytes(), 2, values)
    expected = np.sum(np.stack(contributions).astype(object), axis=0)
    assert result.value_sums.astype(object).tolist() == expected[:-2].tolist()
    assert result.total_weight == expected[-2] and result.contributors == k


@pytest.mark.parametrize("pattern", ["max", "min", "alternating"])
def test_extremes_at_max_contributors_never_carry(keys, fast, pattern):
    public, private = keys
    params = CryptoParams()  # 16 bits, 1000 contributors: the default layout
    values = params.slots_per_plaintext * 2  # the extra slots spill into a third plaintext
    top = params.levels
    pick = {
        "max": lambda i: np.full(values, top),
        "min": lambda i: np.zeros(values),
        "alternating": lambda i: np.where((np.arange(values) + i) % 2 == 0, top, 0),
    }[pattern]
    encoder = UpdateEncoder(params, public, fast)
    total = EncryptedSum(params, public, values, ROUND)
    expected = np.zeros(values, object)
    for i in range(params.max_contributors):
        v = pick(i).astype(np.uint64)
        total.add(encoder.encrypt_slots(np.concatenate([v, [params.max_weight, 1]]).astype(np.uint64), round_id=ROUND))
        expected += v.astype(object)
    result = AggregateDecryptor(params, private).decrypt(total.to_bytes(), 2, values)
    assert result.value_sums.astype(object).tolist() == expected.tolist()
    assert result.total_weight == params.max_weight * params.max_contributors
    assert result.contributors == params.max_contributors
    # one more is refused, and the sum is unchanged
    before = total.to_bytes()
    with pytest.raises(SumFullError, match="max_contributors = 1000") as full:
        total.add(encoder.encrypt_slots(np.concatenate([pick(0), [1, 1]]).astype(np.uint64), round_id=ROUND))
    assert total.to_bytes() == before and (full.value.code, full.value.status) == ("sum_full", 409)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(min_value=2, max_value=6),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    scale=st.sampled_from([0.01, 0.3, 2.0]),
)
def test_dequantised_mean_is_within_the_stated_bound(keys, fast, k, seed, scale):
    public, private = keys
    params = SMALL
    rng = np.random.default_rng(seed)
    updates = [rng.normal(0, scale, 300).astype(np.float32) for _ in range(k)]
    weights = [int(w) for w in rng.integers(1, params.max_weight + 1, k)]
    encoder = UpdateEncoder(params, public, fast, seed=seed)
    total = EncryptedSum(params, public, 300, ROUND)
    clipped_fractions = []
    for u, w in zip(updates, weights):
        encoded = encoder.encode(u, w, round_id=ROUND)
        clipped_fractions.append(encoded.clipped_fraction)
        total.add(encoded.payload)
    result = AggregateDecryptor(params, private).decrypt(total.to_bytes(), 2)
    clipped = [np.clip(u.astype(np.float64), -params.clip, params.clip) for u in updates]
    want = sum(w * u for w, u in zip(weights, clipped)) / sum(weights)
    bound = mean_error_bound(params, k, sum(weights))
    assert np.max(np.abs(result.mean - want)) <= bound + 1e-6
    for u, f in zip(updates, clipped_fractions):
        assert f == pytest.approx(np.mean(np.abs(u) > params.clip))


def test_bound_is_one_step_when_every_weight_is_max(keys):
    params = CryptoParams()
    assert mean_error_bound(params, 10, 10 * params.max_weight) == pytest.approx(params.step)


def test_phe_decrypts_a_codec_ciphertext_with_the_same_keys(keys):
    public, private = keys
    params = CryptoParams()
    slots = np.arange(params.slots_per_plaintext, dtype=np.uint64)
    slots[-2:] = [7, 1]
    payload = UpdateEncoder(params, public).encrypt_slots(slots, round_id=ROUND)
    c0 = wire.decode(payload, params, public).ciphertexts[0]
    encrypted = paillier.EncryptedNumber(private.phe.public_key, int(c0), exponent=0)
    assert private.phe.decrypt_encoded(encrypted).encoding == pack(slots, params)[0]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=0), min_size=0, max_size=6), st.randoms(use_true_random=False))
def test_batched_decryption_equals_phe_one_by_one(keys, plaintexts, rng):
    public, private = keys
    n = int(public.n)
    ciphertexts = [(1 + n * (m % n)) * pow(rng.randrange(1, n), n, n * n) % (n * n) for m in plaintexts]
    assert private.raw_decrypt_many(ciphertexts) == [private.phe.raw_decrypt(c) for c in ciphertexts] \
        == [m % n for m in plaintexts]


def make_sum(keys, fast, params=SMALL, values=50):
    public, _ = keys
    encoder = UpdateEncoder(params, public, fast)
    total = EncryptedSum(params, public, values, ROUND)
    total.add(encoder.encode(np.zeros(values), 10, round_id=ROUND).payload)
    good = encoder.encode(np.ones(values) * 0.1, 10, round_id=ROUND).payload
    return total, good


def _replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


V1_HEADER = struct.Struct(">4sHH32s32sHBBHIII")  # version 1: no round id, 90 bytes


def _v1(payload: bytes) -> bytes:
    """The same contribution in wire-format version 1, as an old SDK sent it."""
    fields = list(struct.unpack_from(">4sHH32s32sQHBBHIII", payload))
    del fields[5]  # the round id
    fields[1] = 1
    return V1_HEADER.pack(*fields) + payload[wire.HEADER_BYTES:]


@pytest.mark.parametrize(
    "mutate, error, message",
    [
        (lambda p: p[:5], errors.TruncatedError, "truncated"),
        (lambda p: p[:60], errors.TruncatedError, "the header alone is 98"),
        (lambda p: p[:-1], errors.TruncatedError, "truncated: .* bytes, its header says"),
        (lambda p: p + b"\0", errors.TooLongError, "too long: .* bytes, its header says"),
        (lambda p: b"XXXX" + p[4:], errors.BadMagicError, "bad magic"),
        (lambda p: _replace(p, 4, struct.pack(">H", 9)), errors.UnsupportedVersionError, "version 9"),
        (_v1, errors.UnsupportedVersionError, "version 1 is not supported .*upgrade the SDK"),
        (lambda p: _replace(p, 6, struct.pack(">H", 2)), errors.WrongKindError, "kind 2"),
        (lambda p: _replace(p, 8, b"\x01" * 32), errors.ParamsMismatchError, "other crypto parameters"),
        (lambda p: _replace(p, 40, b"\x02" * 32), errors.KeyMismatchError, "another public key"),
        (lambda p: _replace(p, 72, struct.pack(">Q", ROUND + 1)), errors.WrongRoundError,
         f"made for round {ROUND + 1}, not round {ROUND}"),
        (lambda p: _replace(p, 83, bytes([27])), errors.LayoutMismatchError, "slot layout"),
        (lambda p: _replace(p, 86, struct.pack(">I", 49)), errors.WrongValueCountError, "holds 49 values"),
        (lambda p: _replace(p, 90, struct.pack(">I", 2)), errors.WrongCiphertextCountError, "declares 2"),
        (lambda p: _replace(p, 94, struct.pack(">I", 2)), errors.BadContributorCountError, "exactly one"),
        (lambda p: _replace(p, wire.HEADER_BYTES, b"\xff" * 512), errors.CiphertextOutOfRangeError, "out of range"),
        (lambda p: _replace(p, wire.HEADER_BYTES, b"\x00" * 512), errors.CiphertextOutOfRangeError, "out of range"),
    ],
)
def test_bad_payloads_are_refused_and_leave_the_sum_unchanged(keys, fast, mutate, error, message):
    total, good = make_sum(keys, fast)
    before = total.to_bytes()
    with pytest.raises(error, match=message) as refused:
        total.add(mutate(good))
    assert refused.value.status == 400 and refused.value.code in [c.code for c in errors.payload_errors()]
    assert total.to_bytes() == before and total.contributors == 1
    assert total.add(good) == 2  # still usable
    with pytest.raises(TypeError, match="must be bytes"):
        total.add(good.decode("latin-1"))


def test_payload_under_another_key_is_refused(keys, fast):
    other_public, _ = generate_keypair(2048)
    total, _ = make_sum(keys, fast)
    foreign = UpdateEncoder(SMALL, other_public).encode(np.zeros(50), 1, round_id=ROUND).payload
    with pytest.raises(errors.KeyMismatchError, match="another public key"):
        total.add(foreign)


def test_key_service_refuses_small_or_inconsistent_aggregates(keys, fast):
    public, private = keys
    total, good = make_sum(keys, fast)
    decryptor = AggregateDecryptor(SMALL, private)
    with pytest.raises(CodecError, match="at least 2"):
        decryptor.decrypt(total.to_bytes(), 1)
    total.add(good)
    with pytest.raises(CodecError, match="at least 3"):
        decryptor.decrypt(total.to_bytes(), 3)
    forged = _replace(total.to_bytes(), 94, struct.pack(">I", 3))
    with pytest.raises(CodecError, match="count slot holds 2"):
        decryptor.decrypt(forged, 2)
    with pytest.raises(errors.WrongKindError, match="kind"):
        decryptor.decrypt(good, 1)  # a single contribution is never decrypted
    with pytest.raises(errors.WrongRoundError, match=f"not round {ROUND + 1}"):
        decryptor.decrypt(total.to_bytes(), 2, round_id=ROUND + 1)
    result = decryptor.decrypt(total.to_bytes(), 2, round_id=ROUND)
    assert (result.contributors, result.round_id) == (2, ROUND)


def test_stored_aggregate_resumes(keys, fast):
    public, private = keys
    total, good = make_sum(keys, fast)
    restored = EncryptedSum.from_bytes(total.to_bytes(), SMALL, public, 50, ROUND)
    restored.add(good)
    result = AggregateDecryptor(SMALL, private).decrypt(restored.to_bytes(), 2)
    assert result.contributors == 2
    assert np.allclose(result.mean, 0.05, atol=mean_error_bound(SMALL, 2, 20))


def test_pool_never_hands_out_a_randomiser_twice(keys, tmp_path):
    public, private = keys
    pool = RandomiserPool(tmp_path / "pool.bin", public)
    pool.fill(6)
    assert len(pool) == 6
    first = pool.take(2)
    reopened = RandomiserPool(tmp_path / "pool.bin", public)  # a process restart
    assert len(reopened) == 4
    rest = reopened.take(4)
    seen = [int(r) for r in first + rest]
    assert len(set(seen)) == 6
    with pytest.raises(PoolExhaustedError, match="holds 0, 1 needed"):
        reopened.take(1)
    # pooled randomisers make valid encryptions
    reopened.fill(3)
    payload = UpdateEncoder(SMALL, public, reopened).encode(np.full(20, 0.5), 100, round_id=ROUND).payload
    total = EncryptedSum(SMALL, public, 20, ROUND)
    total.add(payload)
    total.add(UpdateEncoder(SMALL, public).encode(np.full(20, 0.5), 100, round_id=ROUND).payload)
    mean = AggregateDecryptor(SMALL, private).decrypt(total.to_bytes(), 2).mean
    assert np.allclose(mean, 0.5, atol=mean_error_bound(SMALL, 2, 200))
    assert os.stat(tmp_path / "pool.bin").st_mode & 0o777 == 0o600


def test_pool_of_another_key_is_refused(keys, tmp_path):
    RandomiserPool(tmp_path / "pool.bin", keys[0])
    other, _ = generate_keypair(2048)
    with pytest.raises(CodecError, match="another key"):
        RandomiserPool(tmp_path / "pool.bin", other)


def test_private_key_file_is_owner_only_and_never_printed(keys, tmp_path):
    public, private = keys
    path = tmp_path / "key.json"
    private.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = PrivateKey.load(path)
    assert loaded.public == public
    text = repr(loaded) + str(loaded)
    assert format(private.phe.p, "x") not in text and str(private.phe.p) not in text
    os.chmod(path, 0o644)
    with pytest.raises(CodecError, match="chmod 600"):
        PrivateKey.load(path)
    with pytest.raises(FileExistsError):
        private.save(path)  # never overwrites


def test_public_key_and_params_serialise(keys):
    public, _ = keys
    assert PublicKey.from_json(public.to_json()) == public
    params = CryptoParams(key_bits=3072, quant_bits=12, randomiser="short-exponent")
    assert CryptoParams.from_dict(params.to_dict()) == params
    assert params.fingerprint() == CryptoParams.from_dict(params.to_dict()).fingerprint()
    assert params.fingerprint() != CryptoParams(key_bits=3072, quant_bits=13).fingerprint()
    with pytest.raises(CodecError, match="key_bits"):
        CryptoParams(key_bits=1024)
    with pytest.raises(CodecError, match="invalid crypto parameters"):
        CryptoParams.from_dict({"bogus": 1})


def test_fingerprints_hash_fixed_binary_layouts(keys):
    params = CryptoParams()
    layout = "46574350 0002 0800 10 00 1a 004e 000003e8 000003e8 3ff0000000000000"
    assert params.fingerprint_input() == bytes.fromhex(layout.replace(" ", ""))
    assert params.fingerprint() == hashlib.sha256(bytes.fromhex(layout.replace(" ", ""))).digest()
    assert CryptoParams(randomiser="short-exponent").fingerprint() == params.fingerprint()
    guarded = CryptoParams(guard_bits=2)
    assert (guarded.slot_bits, guarded.slots_per_plaintext) == (28, 73)
    assert guarded.fingerprint_input()[9:13] == bytes([2, 28, 0, 73]) and guarded.fingerprint() != params.fingerprint()
    assert CryptoParams(clip=0.5).fingerprint_input()[-8:] == struct.pack(">d", 0.5)
    public, _ = keys
    assert public.fingerprint_input() == b"FWPK" + struct.pack(">H", 2048) + int(public.n).to_bytes(256, "big")
    assert public.fingerprint() == hashlib.sha256(public.fingerprint_input()).digest()


def test_guard_bits_and_integer_fields_are_checked():
    with pytest.raises(CodecError, match="guard_bits must be in"):
        CryptoParams(guard_bits=9)
    with pytest.raises(CodecError, match="max_contributors must be an integer"):
        CryptoParams(max_contributors=2.5)


def test_default_layout_packs_78_values_per_plaintext():
    params = CryptoParams()
    assert (params.slot_bits, params.slots_per_plaintext) == (26, 78)
    slots = np.random.default_rng(0).integers(0, 1 << 26, 200).astype(np.uint64)
    assert unpack(pack(slots, params), 200, params).tolist() == slots.tolist()


def test_a_contributions_weight_is_its_sample_count_within_bounds():
    params = CryptoParams(max_weight=100)
    assert [params.weight_of(n) for n in (0, 1, 37, 100, 5000)] == [1, 1, 37, 100, 100]
