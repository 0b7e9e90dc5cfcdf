"""Java-encrypted contributions in the Python codec: summed, range-checked, decrypted by the key service's code."""

import json
from dataclasses import replace

import numpy as np
import pytest

from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder
from sdk.crypto.errors import CodecError
from sdk.crypto.keys import PublicKey, generate_keypair
from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams
from tests import bridge_java

VALUES = 500
ROUND = 17


@pytest.fixture(scope="module")
def classpath():
    return bridge_java.build()


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(2048)


def java_encrypt(classpath, tmp_path, params, public, update, weight, round_id, name):
    crypto = tmp_path / f"{name}.json"
    crypto.write_text(json.dumps({**params.to_dict(), "public_key": public.to_json()}))
    update_file = tmp_path / f"{name}.f32"
    update_file.write_bytes(update.astype("<f4").tobytes())
    out = tmp_path / f"{name}.bin"
    proc = bridge_java.run_tool(classpath, "Encrypt", "--crypto", crypto, "--update", update_file, "--weight", weight,
                                "--round", round_id, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def test_java_and_python_contributions_decrypt_together_to_the_weighted_mean(classpath, keys, tmp_path):
    public, private = keys
    params = CryptoParams(max_contributors=10, max_weight=200, guard_bits=1)
    rng = np.random.default_rng(5)
    updates = [rng.normal(0, 0.5, VALUES).astype(np.float32) for _ in range(3)]
    weights = [120, 35, 200]
    # The randomiser is the device's choice (not part of the fingerprint): one Java device each way.
    payloads = [java_encrypt(classpath, tmp_path, replace(params, randomiser=mode), public, updates[i], weights[i],
                             ROUND, mode) for i, mode in enumerate(("standard", "short-exponent"))]
    payloads.append(UpdateEncoder(params, public, seed=1).encode(updates[2], weights[2], round_id=ROUND).payload)
    total = EncryptedSum(params, public, VALUES, ROUND)
    for payload in payloads:
        total.add(payload)
    result = AggregateDecryptor(params, private).decrypt(total.to_bytes(), min_contributors=3, values=VALUES,
                                                         round_id=ROUND)
    assert (result.contributors, result.total_weight) == (3, sum(weights))
    clipped = [np.clip(u.astype(np.float64), -params.clip, params.clip) for u in updates]
    want = sum(w * u for w, u in zip(weights, clipped)) / sum(weights)
    error = np.max(np.abs(result.mean - want))
    assert error <= mean_error_bound(params, 3, sum(weights)) + 1e-6
    assert error > 0  # stochastic rounding happened on both sides


def test_a_java_payload_is_bound_to_its_round_and_its_key(classpath, keys, tmp_path):
    public, _ = keys
    params = CryptoParams(max_contributors=10, max_weight=200)
    payload = java_encrypt(classpath, tmp_path, params, public, np.zeros(VALUES, np.float32), 10, ROUND, "bound")
    with pytest.raises(CodecError) as other_round:
        EncryptedSum(params, public, VALUES, ROUND + 1).add(payload)
    assert other_round.value.code == "wrong_round"
    with pytest.raises(CodecError) as other_key:
        EncryptedSum(params, PublicKey(public.n + 2), VALUES, ROUND).add(payload)
    assert other_key.value.code == "key_mismatch"
