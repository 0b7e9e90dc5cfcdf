"""How far one malicious device moves the published model: one sum against sub-sums.

In one process, with the real codec, key pair, shard grouping, range checks
and weighted mean the services use (cloud.subsums, sdk.crypto): honest devices
send clipped, quantised updates; one attacker sends crafted slots (any
plaintext it likes under the public key). Each round is aggregated twice from
the same contributions, as one sum (`subsums` 1) and as sub-sums, and the
published update is compared with the honest devices' FedAvg (L2 and Linf),
and with the FedAvg of the honest devices the round kept, against the bound
on one sub-sum's pull (`influence_bound`). Also times how fast the key service's
decryptor refuses a 4 MiB junk aggregate (count slot first).

    python benchmarks/poison_bound.py --json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import gmpy2  # noqa: E402
import numpy as np  # noqa: E402

from cloud.lifecycle import SHARDS  # noqa: E402
from cloud.subsums import Outcome, answer_problem, combine, group_shards  # noqa: E402
from sdk.crypto import wire  # noqa: E402
from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder  # noqa: E402
from sdk.crypto.errors import CodecError  # noqa: E402
from sdk.crypto.keys import PrivateKey, generate_keypair  # noqa: E402
from sdk.crypto.packing import mean_error_bound  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.crypto.randomisers import ShortExponentRandomiser  # noqa: E402


def attacks(params: CryptoParams, values: int) -> dict[str, np.ndarray]:
    """The attacker's slot vectors (values, weight, count)."""
    mid, levels, mw = params.levels // 2, params.levels, params.max_weight

    def slots(value: int, weight: int, count: int = 1) -> np.ndarray:
        return np.array([value] * values + [weight, count], np.uint64)

    return {
        "max_values": slots(levels, mw),                # every value at +clip with the top weight: in range
        "values_of_ten_devices": slots(10 * levels, mw),  # each value slot as ten devices at +clip
        "huge_weight": slots(mid, 10 * mw),              # a weight of ten devices: shrinks the round's update
        "count_forged_1000": slots(mid, mw, 1000),
        "count_forged_0": slots(mid, mw, 0),
    }


def influence_bound(params: CryptoParams, attacked: Outcome, others: list[Outcome]) -> float:
    """Largest Linf pull of one kept sub-sum on the weighted mean, against the mean of the others.

    The attacked sub-sum's mean lies within clip + the quantisation bound (it
    passed the check) and its weight is at most max_weight per contribution;
    the others' mean lies within clip; so the pull is at most
    w_a * (2 * clip + eps) / (w_a + W_others) with w_a = max_weight * c_a.
    """
    w_a = params.max_weight * attacked.contributors
    rest = sum(o.total_weight for o in others)
    eps = mean_error_bound(params, attacked.contributors, attacked.contributors)
    return w_a * (2 * params.clip + eps) / (w_a + rest)


def publish(params, private, contributions, groups, values, minimum, round_id):
    """Decrypt, check and combine each group as the services do; (mean or None, outcomes)."""
    public = private.public
    decryptor = AggregateDecryptor(params, private)
    outcomes = []
    for part, members in enumerate(groups):
        total = EncryptedSum(params, public, values, round_id)
        for i in members:
            total.add(contributions[i])
        try:
            result = decryptor.decrypt(total.to_bytes(), minimum, values, round_id)
        except CodecError as exc:
            outcomes.append(Outcome(part, len(members), dropped=f"key service refuses: {exc}"))
            continue
        problem = answer_problem(result.mean, result.total_weight, result.contributors, len(members), values, params)
        outcomes.append(Outcome(part, len(members), result.total_weight, None if problem else result.mean, problem))
    kept = [o for o in outcomes if not o.dropped]
    return (combine(kept)[0] if kept else None), outcomes


def distances(published: np.ndarray | None, reference: np.ndarray) -> dict:
    """L2 and Linf of the published update from the honest one (a failed round publishes no update: zero)."""
    delta = (0.0 if published is None else published.astype(np.float64)) - reference
    return {"status": "failed" if published is None else "published", "l2": round(float(np.linalg.norm(delta)), 6),
            "linf": round(float(np.max(np.abs(delta))), 6)}


def junk_refusal_seconds(private: PrivateKey, size: int = 4 * 1024 * 1024) -> float:
    """Seconds the decryptor takes to refuse a well-formed aggregate of `size` bytes of random ciphertexts.

    Its header is valid (parameters, key, value count, 2 contributors): only
    decryption shows it is junk, and the count slot is decrypted first.
    """
    params, public = CryptoParams(), private.public
    count = (size - wire.HEADER_BYTES) // params.ciphertext_bytes
    values = count * params.slots_per_plaintext - 2
    state = gmpy2.random_state(1)
    junk = [gmpy2.mpz_random(state, public.n_square - 1) + 1 for _ in range(count)]
    aggregate = wire.encode(wire.KIND_AGGREGATE, params, public, 1, values, 2, junk)
    started = time.perf_counter()
    try:
        AggregateDecryptor(params, private).decrypt(aggregate, 2, values, 1)
    except CodecError:
        return time.perf_counter() - started
    raise AssertionError("junk aggregate was not refused")


def run(devices: int, values: int, minimum: int, subsums: int, seed: int = 0) -> dict:
    params = CryptoParams(max_contributors=max(devices + 1, 2), max_weight=1000)
    public, private = generate_keypair(2048)
    rng = np.random.default_rng(seed)
    encoder = UpdateEncoder(params, public, ShortExponentRandomiser(public), seed=seed)
    updates = [rng.normal(0, 0.05, values) for _ in range(devices)]
    weights = [int(w) for w in rng.integers(50, params.max_weight + 1, devices)]
    honest = [encoder.encode(u, w, round_id=1).payload for u, w in zip(updates, weights)]

    def fedavg(members) -> np.ndarray:
        clipped = [np.clip(updates[i], -params.clip, params.clip) for i in members]
        return sum(weights[i] * c for i, c in zip(members, clipped)) / sum(weights[i] for i in members)

    everyone = list(range(devices + 1))  # the attacker is the last contribution, in shard devices % SHARDS
    shard_of = {i: i % SHARDS for i in everyone}
    counts = {s: sum(1 for i in everyone if shard_of[i] == s) for s in range(SHARDS)}
    groups = {"single": [everyone],
              "subsums": [[i for i in everyone if shard_of[i] in g] for g in group_shards(counts, minimum, subsums)]}
    reference = fedavg(range(devices))
    results = {}
    for name, slots in attacks(params, values).items():
        contributions = honest + [encoder.encrypt_slots(slots, round_id=1)]
        results[name] = {}
        for mode, mode_groups in groups.items():
            published, outcomes = publish(params, private, contributions, mode_groups, values, minimum, 1)
            row = distances(published, reference)
            row["dropped"] = [o.dropped[:120] for o in outcomes if o.dropped]
            attacked = next(o for o, g in zip(outcomes, mode_groups) if devices in g)
            if published is not None and not attacked.dropped:
                others = [o for o in outcomes if o is not attacked and not o.dropped]
                kept_honest = [i for o, g in zip(outcomes, mode_groups) if o in others for i in g]
                if others:
                    pull = np.max(np.abs(published.astype(np.float64) - fedavg(kept_honest)))
                    row["linf_from_kept_honest"] = round(float(pull), 6)
                    row["influence_bound"] = round(influence_bound(params, attacked, others), 6)
            results[name][mode] = row
    return {"devices": devices, "attackers": 1, "values": values, "min_devices": minimum, "subsums": subsums,
            "groups": [len(g) for g in groups["subsums"]], "honest_update_l2": round(float(np.linalg.norm(reference)), 6),
            "honest_update_linf": round(float(np.max(np.abs(reference))), 6),
            "attacks": results,
            "junk_4mib_refusal_s": round(junk_refusal_seconds(private), 3)}


@click.command()
@click.option("--devices", default=20, show_default=True, help="honest devices; one attacker joins them")
@click.option("--values", default=200, show_default=True)
@click.option("--min-devices", default=5, show_default=True)
@click.option("--subsums", default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def main(devices: int, values: int, min_devices: int, subsums: int, as_json: bool) -> None:
    result = run(devices, values, min_devices, subsums)
    print(json.dumps(result, indent=None if as_json else 2))


if __name__ == "__main__":
    main()
