"""Cross-language test vectors for the Java bridge, made by the Python SDK.

    python android_bridge/tools/make_vectors.py [OUT_DIR]

writes windows.json, codec.json and decoding.json (default: android_bridge/src/test/resources/vectors). Every
input is drawn from fixed seeds, so running it again gives the same bytes; a test
(tests/test_bridge_vectors.py) regenerates the vectors and compares them with the committed ones.

- windows.json: a recorded synthetic stream (jittered, repeated timestamps, a gap, unlabelled
  samples) and the windows the SDK cuts from it under two window specs.
- codec.json: a fixed Paillier key (with p and q, for the Java test decryptor), parameter and key
  fingerprints, an update with the uniform draws of its stochastic rounding and the slots and
  plaintexts they give, standard and short-exponent randomisers from given units and exponents,
  a contribution payload made with given randomisers, and a randomiser-pool file.
- decoding.json: transition counts of a synthetic wearer's labelled recordings, class probabilities
  of its windows (some below the 1e-6 floor) with their recording ids, and the decoded probabilities.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

import gmpy2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from device_sim import synthetic  # noqa: E402
from sdk.crypto import randomisers  # noqa: E402
from sdk.crypto.codec import UpdateEncoder  # noqa: E402
from sdk.crypto.keys import PrivateKey, PublicKey  # noqa: E402
from sdk.crypto.packing import pack, quantise  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.decoding import TransitionModel, decode, transition_counts  # noqa: E402
from sdk.windowing import WindowSpec, make_windows  # noqa: E402

DEFAULT_OUT = ROOT / "android_bridge" / "src" / "test" / "resources" / "vectors"
ROUND_ID = 4242


class Draws:
    """Stands in for numpy's Generator in quantise: hands out given uniform draws in order."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def random(self, size: int) -> np.ndarray:
        assert size == len(self.values)
        return self.values


class Given:
    """A randomiser source that hands out given randomisers."""

    def __init__(self, values: list) -> None:
        self.values = list(values)

    def take(self, count: int) -> list:
        out, self.values = self.values[:count], self.values[count:]
        return out


def fixed_key(bits: int, seed: int) -> tuple[PublicKey, PrivateKey]:
    """A deterministic key pair: primes after seeded random numbers with their top two bits set."""
    rng = np.random.default_rng(seed)
    half = bits // 2
    primes = []
    while len(primes) < 2:
        start = int.from_bytes(rng.bytes(half // 8), "big") | (3 << (half - 2))
        prime = int(gmpy2.next_prime(start))
        if prime.bit_length() == half and prime not in primes:
            primes.append(prime)
    p, q = primes
    public = PublicKey(p * q)
    assert public.bits == bits
    return public, PrivateKey(public, p, q)


def windows_vectors() -> dict:
    rng = np.random.default_rng(11)
    t, v, labels = synthetic.execution(synthetic.subject_traits(rng), rng)
    keep = t < 4.0
    t, v, labels = t[keep], v[keep], labels[keep].astype(np.int64)
    t = np.where(t > 2.5, t + 0.8, t)  # a gap of more than 0.5 s
    labels[(t > 1.0) & (t < 1.3)] = -1  # samples without a label
    specs = {"default": WindowSpec(), "short": WindowSpec(length=16, rate_hz=25.0, overlap=0.75, max_gap_s=0.3)}
    out = {"timestamps": t.tolist(), "values": v.tolist(), "labels": labels.tolist(), "specs": {}}
    for name, spec in specs.items():
        w = make_windows(t, v, labels, spec)
        out["specs"][name] = {
            "length": spec.length, "rate_hz": spec.rate_hz, "overlap": spec.overlap, "max_gap_s": spec.max_gap_s,
            "data": w.data.astype(np.float64).tolist(), "labels": w.labels.tolist(), "start_s": w.start_s.tolist(),
            "label_share": [None if np.isnan(s) else s for s in w.label_share.tolist()],
        }
    return out


def decoding_vectors() -> dict:
    device = synthetic.generate(subjects=1, executions=3, seed=12).devices[0]
    classes = int(device.labels.max()) + 1
    counts = transition_counts(device.labels, device.execution, classes)
    probs = np.random.default_rng(13).dirichlet(np.full(classes, 0.5), size=len(device.labels))
    probs[::7, 0] = 1e-9  # below the floor
    recordings = device.execution.astype(np.int64)
    return {"counts": counts.tolist(), "probs": probs.tolist(), "recordings": recordings.tolist(),
            "decoded": decode(probs, recordings, TransitionModel.from_counts(counts)).tolist()}


def params_entry(params: CryptoParams) -> dict:
    return {**params.to_dict(), "slot_bits": params.slot_bits, "slots_per_plaintext": params.slots_per_plaintext,
            "fingerprint": params.fingerprint().hex()}


def standard_randomisers(public: PublicKey, units: list[int]) -> list[int]:
    with mock.patch.object(randomisers, "_unit_below", side_effect=[gmpy2.mpz(u) for u in units]):
        return [int(r) for r in randomisers.StandardRandomiser(public).take(len(units))]


def short_exponent_randomisers(public: PublicKey, unit: int, exponents: list[int], window_bits: int,
                               exponent_bits: int) -> list[int]:
    with mock.patch.object(randomisers, "_unit_below", return_value=gmpy2.mpz(unit)):
        source = randomisers.ShortExponentRandomiser(public, window_bits=window_bits, exponent_bits=exponent_bits)
    with mock.patch.object(randomisers.secrets, "randbits", side_effect=exponents):
        return [int(r) for r in source.take(len(exponents))]


def codec_vectors() -> dict:
    public, private = fixed_key(2048, 1)
    public3072, _ = fixed_key(3072, 2)
    rng = np.random.default_rng(7)
    units = [int(x) % int(public.n) for x in (int.from_bytes(rng.bytes(256), "big") for _ in range(6))]
    params = CryptoParams(quant_bits=12, clip=0.5, max_contributors=50, max_weight=500, randomiser="short-exponent",
                          guard_bits=2)
    update = rng.normal(0, 0.3, 300).astype(np.float32)
    update[:4] = [0.0, 0.5, -0.5, 2.0]
    draws = rng.random(update.size)
    weight = 321
    quantised = quantise(update, weight, params, Draws(draws))
    plaintexts = pack(quantised.slots, params)
    given = standard_randomisers(public, units[: len(plaintexts)])
    encoder = UpdateEncoder(params, public, randomiser=Given(given))
    encoder._rng = Draws(draws)
    payload = encoder.encode(update, weight, round_id=ROUND_ID).payload
    exponents = [int.from_bytes(rng.bytes(128), "big") for _ in range(3)]
    # The default table (8-bit windows, key_bits / 2 exponent bits) takes 32k products to build; the
    # vectors check 8-bit windows on 256-bit exponents and 5-bit windows on the default exponents.
    tables = ((8, 256), (5, public.bits // 2))
    with tempfile.TemporaryDirectory() as pool_dir:
        pool = randomisers.RandomiserPool(Path(pool_dir) / "pool", public)
        pool.fill(2, Given(given[:2]))
        pool_bytes = (Path(pool_dir) / "pool").read_bytes()
    return {
        "key": {"n": format(int(public.n), "x"), "p": format(private.phe.p, "x"), "q": format(private.phe.q, "x"),
                "json": public.to_json(), "fingerprint": public.fingerprint().hex()},
        "key_3072": {"json": public3072.to_json(), "fingerprint": public3072.fingerprint().hex()},
        "params": {"default": params_entry(CryptoParams()), "round": params_entry(params),
                   "key_3072": params_entry(CryptoParams(key_bits=3072, quant_bits=20, clip=2.5,
                                                         max_contributors=7, max_weight=1000, guard_bits=1))},
        "quantisation": {"params": "round", "update": update.astype(np.float64).tolist(), "weight": weight,
                         "uniforms": draws.tolist(), "slots": quantised.slots.tolist(),
                         "clipped_fraction": quantised.clipped_fraction,
                         "plaintexts": [format(m, "x") for m in plaintexts]},
        "standard": {"units": [format(u, "x") for u in units[:3]],
                     "randomisers": [format(r, "x") for r in standard_randomisers(public, units[:3])]},
        "short_exponent": [
            {"unit": format(units[5], "x"), "window_bits": w, "exponent_bits": e,
             "exponents": [format(a % (1 << e), "x") for a in exponents],
             "randomisers": [format(r, "x") for r in
                             short_exponent_randomisers(public, units[5], [a % (1 << e) for a in exponents], w, e)]}
            for w, e in tables
        ],
        "payload": {"params": "round", "round_id": ROUND_ID, "randomisers": [format(r, "x") for r in given],
                    "hex": payload.hex()},
        "pool": {"hex": pool_bytes.hex(), "randomisers": [format(r, "x") for r in given[:2]]},
    }


def write_vectors(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in (("windows.json", windows_vectors), ("codec.json", codec_vectors),
                       ("decoding.json", decoding_vectors)):
        path = out_dir / name
        path.write_text(json.dumps(make(), separators=(",", ":")) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_vectors(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT):
        print(f"{path}: {path.stat().st_size} bytes")
