"""A client written from docs/protocol.md and docs/encrypted-updates.md alone, as another team would.

Its encoder uses only hashlib, struct, secrets, random, math and gmpy2's
powmod: nothing of the SDK. Devices enrol over HTTP, upload, and the service
must publish old + weighted mean of their updates within the documented
quantisation bound.
"""

import hashlib
import json
import math
import random
import secrets
import struct
import time

import gmpy2
import numpy as np
import requests

# --- the documented encoder ---------------------------------------------------------------


def derived(crypto: dict) -> dict:
    """levels, step, slot_bits and slots_per_plaintext from the plan's crypto fields."""
    levels = 2 ** crypto["quant_bits"] - 1
    slot_bits = (levels * crypto["max_contributors"]).bit_length() + crypto["guard_bits"]
    return {"levels": levels, "step": 2 * crypto["clip"] / levels, "slot_bits": slot_bits,
            "slots": (crypto["key_bits"] - 1) // slot_bits}


def quantise(update: list[float], weight: int, crypto: dict, rng: random.Random) -> list[int]:
    """Clip, scale by weight / max_weight, shift by clip, divide by step, round stochastically; then weight, 1."""
    d, clip = derived(crypto), crypto["clip"]
    slots = []
    for x in update:
        scaled = (min(max(x, -clip), clip) * (weight / crypto["max_weight"]) + clip) / d["step"]
        q = math.floor(scaled)
        q += rng.random() < scaled - q
        slots.append(min(max(q, 0), d["levels"]))
    return slots + [weight, 1]


def encode(update: list[float], weight: int, plan: dict, rng: random.Random) -> bytes:
    crypto = plan["crypto"]
    d = derived(crypto)
    n = int(json.loads(crypto["public_key"])["n"], 16)
    n2, key_bits = n * n, crypto["key_bits"]
    slots = quantise(update, weight, crypto, rng)
    count = -(-len(slots) // d["slots"])
    plaintexts = [sum(s << (j * d["slot_bits"]) for j, s in enumerate(slots[i * d["slots"]:(i + 1) * d["slots"]]))
                  for i in range(count)]
    ciphertexts = []
    for m in plaintexts:
        r = secrets.randbelow(n - 1) + 1
        while math.gcd(r, n) != 1:
            r = secrets.randbelow(n - 1) + 1
        ciphertexts.append((1 + n * m) * int(gmpy2.powmod(r, n, n2)) % n2)
    params_fp = hashlib.sha256(struct.pack(
        ">4sHHBBBHIId", b"FWCP", 2, key_bits, crypto["quant_bits"], crypto["guard_bits"], d["slot_bits"],
        d["slots"], crypto["max_contributors"], crypto["max_weight"], crypto["clip"])).digest()
    key_fp = hashlib.sha256(b"FWPK" + struct.pack(">H", key_bits) + n.to_bytes(key_bits // 8, "big")).digest()
    header = struct.pack(">4sHH32s32sQHBBHIII", b"FWEU", 2, 1, params_fp, key_fp, plan["round"]["id"], key_bits,
                         crypto["quant_bits"], d["slot_bits"], d["slots"], len(update), count, 1)
    return header + b"".join(c.to_bytes(2 * key_bits // 8, "big") for c in ciphertexts)


# --- the test -------------------------------------------------------------------------


def call(method: str, url: str, auth: str | None = None, content_type: str | None = None,
         **kwargs) -> requests.Response:
    headers = {"Authorization": auth} if auth else {}
    if content_type:
        headers["Content-Type"] = content_type
    return requests.request(method, url, headers=headers, timeout=60, **kwargs)


def shared_weights(base: str, auth: str, version: int, values: int) -> np.ndarray:
    body = call("GET", f"{base}/v1/weights/{version}", auth).content
    assert len(body) == 4 * values
    return np.array(struct.unpack(f"<{values}f", body), np.float64)


def test_a_client_built_from_the_docs_alone_joins_a_round(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir, max_devices=3, min_devices=3)  # the operator's part
    token = cloud.token(job["id"], max_uses=3)
    base = cloud.url
    auths = []
    for i in range(3):
        enrolled = call("POST", f"{base}/v1/enrol", json={"token": token, "name": f"third-party {i}"})
        assert enrolled.status_code == 201, enrolled.text
        auths.append(enrolled.json()["authorization"])
    plan = call("GET", f"{base}/v1/plan", auths[0]).json()
    assert plan["round"]["status"] == "open" and plan["round"]["model_version"] == plan["model_version"] == 1
    manifest = call("GET", f"{base}/v1/bundle/manifest.json", auths[0]).json()
    values = plan["shared_values"]
    assert sum(math.prod(t["shape"]) for t in manifest["shared"]["tensors"]) == values
    old = shared_weights(base, auths[0], 1, values)

    rng = np.random.default_rng(11)
    updates = [rng.normal(0, 0.05, values).tolist() for _ in auths]
    updates[2][:3] = [3.0, -2.0, 0.5]  # beyond clip 1: the service averages the clipped values
    windows = [120, 37, 5000]
    weights = [min(max(1, w), plan["crypto"]["max_weight"]) for w in windows]
    for i, (auth, update, weight) in enumerate(zip(auths, updates, weights)):
        payload = encode(update, weight, plan, random.Random(i))
        answer = call("PUT", f"{base}/v1/rounds/{plan['round']['id']}/update", auth, "application/octet-stream",
                      data=payload)
        assert answer.status_code == 200, answer.text
        assert answer.json()["contributors"] == i + 1

    deadline = time.time() + 60
    while call("GET", f"{base}/v1/plan", auths[0]).json()["model_version"] < 2:
        assert time.time() < deadline, "model version 2 was not published"
        time.sleep(0.2)
    new = shared_weights(base, auths[0], 2, values)

    clip = plan["crypto"]["clip"]
    mean = sum(w * np.clip(u, -clip, clip) for w, u in zip(weights, updates)) / sum(weights)
    bound = len(weights) * derived(plan["crypto"])["step"] * plan["crypto"]["max_weight"] / sum(weights)
    assert np.max(np.abs(new - (old + mean))) <= bound + 1e-6
    assert np.max(np.abs(mean)) > 100 * bound  # the check is not vacuous
