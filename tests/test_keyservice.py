"""The key service over HTTP: the operator registers a job, the aggregator only asks for decryptions of it,
each sub-sum once, only of enough contributions, checked; every refusal a 4xx."""

import json
from pathlib import Path

import numpy as np
import requests

from sdk.crypto import wire
from sdk.crypto.codec import EncryptedSum, UpdateEncoder
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

VALUES = 30
PARAMS = CryptoParams(max_contributors=10, max_weight=100)


def ks(cloud) -> str:
    return cloud.keyservice_url


def aggregator(cloud) -> dict:
    return {"Authorization": f"Bearer {cloud.keyservice.env['FEDWEAR_KEYSERVICE_TOKEN']}"}


def operator(cloud) -> dict:
    return {"Authorization": f"Bearer {cloud.ks_admin_token}"}


def register(cloud, job: str, params: CryptoParams = PARAMS, minimum: int = 3, subsums: int = 2,
             headers: dict | None = None, **body) -> requests.Response:
    payload = {"crypto": params.to_dict(), "values": VALUES, "min_contributors": minimum, "subsums": subsums, **body}
    return requests.put(f"{ks(cloud)}/jobs/{job}", json=payload, headers=headers or operator(cloud))


def decrypt(cloud, job: str, aggregate: bytes, params: CryptoParams = PARAMS, minimum: int = 3, part: int = 0,
            round_id: int = 1, headers: dict | None = None, values: int = VALUES) -> requests.Response:
    args = {"job": job, "round": round_id, "part": part, "params": json.dumps(params.to_dict()),
            "min_contributors": minimum, "values": values}
    return requests.post(f"{ks(cloud)}/decrypt", data=aggregate, params=args, headers=headers or aggregator(cloud))


def public_key(cloud) -> PublicKey:
    return PublicKey.from_json(requests.get(f"{ks(cloud)}/public-key", headers=aggregator(cloud)).text)


def aggregate_of(public: PublicKey, count: int, round_id: int = 1, scale: float = 0.1, crafted: list | None = None):
    """A sum of `count` honest contributions, plus the crafted slot vectors given."""
    encoder = UpdateEncoder(PARAMS, public, seed=count)
    total = EncryptedSum(PARAMS, public, VALUES, round_id=round_id)
    for i in range(count):
        total.add(encoder.encode(np.full(VALUES, scale * (i + 1)), 10, round_id=round_id).payload)
    for slots in crafted or []:
        total.add(encoder.encrypt_slots(np.asarray(slots, np.uint64), round_id=round_id))
    return total.to_bytes()


def test_only_the_operator_registers_a_job_and_only_once(cloud):
    assert register(cloud, "job1", headers=aggregator(cloud)).status_code == 401
    assert requests.get(f"{ks(cloud)}/jobs/job1", headers=operator(cloud)).status_code == 404
    first = register(cloud, "job1")
    assert first.status_code == 200, first.text
    assert register(cloud, "job1").json() == first.json()  # the same again: idempotent
    changed = register(cloud, "job1", minimum=2)
    assert changed.status_code == 409 and changed.json()["error"] == "already_registered"
    assert requests.get(f"{ks(cloud)}/jobs/job1", headers=operator(cloud)).json()["min_contributors"] == 3
    assert requests.get(f"{ks(cloud)}/jobs/job1", headers=aggregator(cloud)).status_code == 401


def test_junk_registrations_and_requests_are_4xx(cloud):
    for params, body in [({**PARAMS.to_dict(), "key_bits": 3072}, {}),
                         ({**PARAMS.to_dict(), "max_contributors": 2.5}, {}),
                         ({**PARAMS.to_dict(), "clip": "wide"}, {}),
                         ({**PARAMS.to_dict(), "extra": 1}, {}),
                         (PARAMS.to_dict(), {"values": 1.5}),
                         (PARAMS.to_dict(), {"subsums": 0})]:
        payload = {"crypto": params, "values": VALUES, "min_contributors": 3, "subsums": 2, **body}
        answer = requests.put(f"{ks(cloud)}/jobs/junk", json=payload, headers=operator(cloud))
        assert answer.status_code == 400, (params, body, answer.text)
    assert requests.put(f"{ks(cloud)}/jobs/junk", data="[" * 100000, headers=operator(cloud)).status_code == 400
    assert requests.put(f"{ks(cloud)}/jobs/a.b", json={}, headers=operator(cloud)).status_code == 400
    assert register(cloud, "j2").status_code == 200
    aggregate = aggregate_of(public_key(cloud), 3)
    for query in [{"round": 2**70}, {"round": "1.5"}, {"part": -1}, {"params": "{"}, {"params": "[1]"},
                  {"params": json.dumps({**PARAMS.to_dict(), "max_contributors": 2.5})}, {"job": "../x"}]:
        args = {"job": "j2", "round": 1, "part": 0, "params": json.dumps(PARAMS.to_dict()),
                "min_contributors": 3, "values": VALUES, **query}
        answer = requests.post(f"{ks(cloud)}/decrypt", data=aggregate, params=args, headers=aggregator(cloud))
        assert 400 <= answer.status_code < 500, (query, answer.text)
    answer = decrypt(cloud, "j2", aggregate, CryptoParams(key_bits=3072, max_contributors=10, max_weight=100))
    assert answer.status_code == 409 and answer.json()["error"] == "registration_differs"


def test_decrypts_registered_jobs_only_with_their_parameters_and_minimum(cloud):
    public = public_key(cloud)
    three = aggregate_of(public, 3)
    assert decrypt(cloud, "nobody", three).status_code == 404
    assert register(cloud, "j3").status_code == 200
    for asked in [dict(minimum=2), dict(params=CryptoParams(max_contributors=10, max_weight=7, quant_bits=3)),
                  dict(values=VALUES + 1)]:
        refused = decrypt(cloud, "j3", three, **asked)
        assert refused.status_code == 409 and refused.json()["error"] == "registration_differs", asked
    two = decrypt(cloud, "j3", aggregate_of(public, 2, round_id=5), round_id=5)
    assert two.status_code == 422 and "at least 3" in two.json()["message"]
    assert decrypt(cloud, "j3", three, round_id=2).status_code == 422  # the bytes are bound to round 1
    assert decrypt(cloud, "j3", three, headers=operator(cloud)).status_code == 401
    assert decrypt(cloud, "j3", three, part=2).status_code == 422  # registered with 2 sub-sums
    answer = decrypt(cloud, "j3", three)
    assert answer.status_code == 200 and answer.json()["contributors"] == 3
    bad = decrypt(cloud, "j3", b"junk", round_id=9)
    assert bad.status_code == 422 and "truncated" in bad.json()["message"]


def test_an_aggregator_claiming_many_rounds_leaves_no_file_per_round(cloud):
    """Junk sub-sums of made-up rounds are refused and leave nothing behind: a job's lock files are one per
    registered sub-sum, whatever round ids the aggregator sends."""
    assert register(cloud, "j5").status_code == 200
    for round_id in range(100, 140):
        assert decrypt(cloud, "j5", b"junk", round_id=round_id, part=round_id % 2).status_code == 422
    assert decrypt(cloud, "j5", aggregate_of(public_key(cloud), 3, round_id=7), round_id=7).status_code == 200
    job_dir = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "jobs" / "j5"
    assert sorted(p.name for p in job_dir.iterdir() if p.is_file()) == [
        "decrypting-0.lock", "decrypting-1.lock", "registration.json"]
    assert [p.name for p in (job_dir / "decrypted").iterdir()] == ["7-0.json"]


def test_each_subsum_is_decrypted_once(cloud):
    public = public_key(cloud)
    assert register(cloud, "j4").status_code == 200
    first_bytes, other_bytes = aggregate_of(public, 3), aggregate_of(public, 4)
    first = decrypt(cloud, "j4", first_bytes)
    assert first.status_code == 200
    again = decrypt(cloud, "j4", first_bytes)
    assert again.status_code == 200 and again.json() == first.json()
    other = decrypt(cloud, "j4", other_bytes)
    assert other.status_code == 409 and other.json()["error"] == "already_decrypted"
    assert decrypt(cloud, "j4", other_bytes, part=1).status_code == 200  # another sub-sum of the round
    log = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "decryptions.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["job"], e["part"], e["contributors"]) for e in entries] == [("j4", 0, 3), ("j4", 1, 4)]
    cloud.keyservice.kill()  # the records survive a restart
    cloud.keyservice.start()
    assert decrypt(cloud, "j4", other_bytes).status_code == 409
    assert decrypt(cloud, "j4", first_bytes).json() == first.json()


def test_crafted_sums_are_refused_with_the_reason(cloud):
    public = public_key(cloud)
    assert register(cloud, "j5", subsums=8).status_code == 200
    honest = [0] * VALUES + [10, 1]
    levels = PARAMS.levels
    crafted = {
        "count slot 0": [0] * VALUES + [10, 0],
        "count slot 1000": [0] * VALUES + [10, 1000],
        "weight slot max": [0] * VALUES + [levels, 1],
        "values above their slots": [levels * 5] * VALUES + [10, 1],
    }
    for part, (name, slots) in enumerate(crafted.items()):
        answer = decrypt(cloud, "j5", aggregate_of(public, 3, crafted=[slots]), part=part)
        assert answer.status_code == 422, (name, answer.text)
        assert any(word in answer.json()["message"] for word in ("count slot", "weight slot", "value slots")), name
    ones = wire.encode(wire.KIND_AGGREGATE, PARAMS, public, 1, VALUES, 4, [1] * PARAMS.plaintexts_for(VALUES))
    answer = decrypt(cloud, "j5", ones, part=4)
    assert answer.status_code == 422 and "count slot holds 0" in answer.json()["message"]
    kept = decrypt(cloud, "j5", aggregate_of(public, 3, crafted=[honest]), part=5)
    assert kept.status_code == 200 and kept.json()["contributors"] == 4
