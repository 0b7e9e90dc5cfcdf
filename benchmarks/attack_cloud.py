"""Attacks on a fresh key service and aggregation service, each tried as an attacker would.

Starts both services on loopback (SQLite by default, `--database-url` for
PostgreSQL), with the operator's default enrolment limits, runs every attack in
ATTACKS against them and prints, per attack, whether the defence held and what
was seen, then a summary: 5xx answers and unhandled errors in the service log
(server_errors), jobs left with a round stuck closing (halted_jobs), accepted
uploads the rounds lost or counted twice (lost, double), Sybil attacks that
recovered a victim's update (sybil_recoveries) and poisoning that went
unnoticed (undetected_poisoning).

    python benchmarks/attack_cloud.py --json
    python benchmarks/attack_cloud.py --json --database-url postgresql://127.0.0.1:5432/fedwear_attack

Each attack is a small function taking the Arena and returning an Outcome; add
one by appending it to ATTACKS.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402

from benchmarks.load_cloud import bundle_with_about  # noqa: E402
from cloud.settings import Settings  # noqa: E402
from sdk.attestation import SIGNATURE_HEADER, DeviceKey  # noqa: E402
from tests.cloud_servers import Cloud, encoder_for  # noqa: E402

SHARED_VALUES = 3000  # a small model: the attacks are about the services, not the model's size


@dataclass
class Outcome:
    """What one attack did and whether the services held."""

    attack: str
    defended: bool
    seen: str
    sybil_recoveries: int = 0
    undetected_poisoning: int = 0


class Arena:
    """The running services, the bundle, and the attacker's means: HTTP with every 5xx counted."""

    def __init__(self, cloud: Cloud, bundle: Path, work: Path) -> None:
        self.cloud, self.bundle, self.work = cloud, bundle, work
        self.server_errors = 0
        self.http = requests.Session()
        self.http.hooks["response"].append(self._count_server_errors)
        self.jobs: list[str] = []
        self.accepted: set[tuple[str, int]] = set()  # (device, round id) of every upload the service accepted
        self._addresses = itertools.count(1)

    def _count_server_errors(self, response, *_args, **_kwargs) -> None:
        if response.status_code >= 500:
            self.server_errors += 1

    def job(self, **config) -> dict:
        job = self.cloud.create_job(self.bundle, **config)
        self.jobs.append(job["id"])
        return job

    def key(self) -> DeviceKey:
        return DeviceKey.load_or_create(self.work / "keys" / f"{secrets.token_hex(6)}.pem")

    def fresh_address(self) -> str:
        """A loopback address of its own, as if each honest device enrolled from its own network."""
        n = next(self._addresses)
        return f"127.0.{1 + n // 250}.{1 + n % 250}"

    def enrol(self, token: str, key: DeviceKey | None = None, source: str | None = None,
              body: dict | None = None) -> tuple[int, dict, dict]:
        """POST /v1/enrol from `source` (default: a fresh loopback address): status, headers, JSON answer."""
        url = urlsplit(self.cloud.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60,
                                          source_address=(source or self.fresh_address(), 0))
        sent = body or {"token": token, **({"device_key": key.public_key()} if key else {})}
        try:
            conn.request("POST", "/v1/enrol", json.dumps(sent), {"Content-Type": "application/json"})
            response = conn.getresponse()
            status, headers, answer = response.status, dict(response.getheaders()), json.loads(response.read())
        finally:
            conn.close()
        if status >= 500:
            self.server_errors += 1
        return status, headers, answer

    def device(self, token: str, key: DeviceKey | None = None) -> dict:
        status, _, answer = self.enrol(token, key)
        if status != 201:
            raise RuntimeError(f"an honest enrolment was refused: {status} {answer}")
        return {"Authorization": answer["authorization"]}

    def devices(self, job: dict, count: int, keys: bool = False) -> list[dict]:
        token = self.cloud.token(job["id"], max_uses=count)
        return [self.device(token, self.key() if keys else None) for _ in range(count)]

    def plan(self, device: dict) -> dict:
        return self.http.get(f"{self.cloud.url}/v1/plan", headers=device, timeout=60).json()

    @staticmethod
    def payload(plan: dict, seed: int, round_id: int | None = None, weight: int = 10) -> bytes:
        update = np.random.default_rng(seed).normal(0, 0.01, plan["shared_values"])
        return encoder_for(plan, seed=seed).encode(update, weight, round_id=round_id or plan["round"]["id"]).payload

    def upload(self, device: dict, round_id: int, payload: bytes, signature: str | None = None) -> requests.Response:
        headers = {**device, **({SIGNATURE_HEADER: signature} if signature is not None else {})}
        response = self.http.put(f"{self.cloud.url}/v1/rounds/{round_id}/update", headers=headers, data=payload,
                                 timeout=120)
        if response.status_code == 200:
            self.accepted.add((device["Authorization"], round_id))
        return response

    def rounds(self, job_id: str) -> list[dict]:
        return self.http.get(f"{self.cloud.url}/admin/jobs/{job_id}", headers=self.cloud.admin, timeout=60).json()[
            "rounds"]


def codes(*responses: requests.Response) -> list[str]:
    return [f"{r.status_code} {r.json().get('error', '')}".strip() for r in responses]


# Sybils -------------------------------------------------------------------------------------------

def sybils_share_one_token(arena: Arena) -> Outcome:
    """The issue's attack: two Sybils, one token, zero-weight updates beside one victim in a round of
    three; the published mean is then the victim's update. The token the operator hands out by
    default enrols one device."""
    job = arena.job(min_devices=3, max_devices=3)
    victim = arena.devices(job, 1)[0]
    token = arena.cloud.create_token(job["id"])  # the operator's default
    enrolled = [arena.enrol(token) for _ in range(2)]
    sybils = [{"Authorization": answer["authorization"]} for status, _, answer in enrolled if status == 201]
    seen = f"enrolments with one default token: {[status for status, _, _ in enrolled]}"
    if len(sybils) < 2:
        return Outcome("sybils_share_one_token", True, seen + "; the second Sybil was refused (token_used)")
    plan = arena.plan(victim)
    update = np.random.default_rng(7).normal(0, 0.01, plan["shared_values"])
    round_id = plan["round"]["id"]
    arena.upload(victim, round_id, encoder_for(plan, 7).encode(update, 100, round_id=round_id).payload)
    for i, sybil in enumerate(sybils):
        zero = encoder_for(plan, 8 + i).encode(np.zeros(plan["shared_values"]), 1, round_id=round_id).payload
        arena.upload(sybil, round_id, zero)
    arena.cloud.wait_for_version(victim, 2)
    before, after = (np.frombuffer(arena.http.get(f"{arena.cloud.url}/v1/weights/{v}", headers=victim).content,
                                   "<f4") for v in (1, 2))
    correlation = float(np.corrcoef(after - before, update)[0, 1])
    return Outcome("sybils_share_one_token", False, seen + f"; correlation with the victim's update {correlation:.4f}",
                   sybil_recoveries=int(correlation > 0.99))


def sybil_farm_from_one_address(arena: Arena) -> Outcome:
    """An unlimited token (the operator's explicit choice) and 40 enrolments from one address."""
    job = arena.job()
    token = arena.cloud.token(job["id"], max_uses=None)
    answers = [arena.enrol(token, source="127.0.0.9") for _ in range(40)]
    enrolled = sum(status == 201 for status, _, _ in answers)
    limited = [(headers, body) for status, headers, body in answers if status == 429]
    limit = Settings.enrolments_per_address
    held = (enrolled <= limit and len(limited) == 40 - enrolled
            and all(int(h.get("Retry-After", 0)) >= 1 and b["error"] == "enrolment_rate_limited" for h, b in limited))
    return Outcome("sybil_farm_from_one_address", held,
                   f"{enrolled} of 40 enrolled this minute (limit {limit}), {len(limited)} answered 429 "
                   "with Retry-After")


def sybil_farm_from_many_addresses(arena: Arena) -> Outcome:
    """The same unlimited token from 80 addresses: the per-token limit holds."""
    job = arena.job()
    token = arena.cloud.token(job["id"], max_uses=None)
    statuses = [arena.enrol(token)[0] for _ in range(80)]
    limit = Settings.enrolments_per_token
    enrolled = statuses.count(201)
    return Outcome("sybil_farm_from_many_addresses", enrolled <= limit and statuses.count(429) == 80 - enrolled,
                   f"{enrolled} of 80 enrolled this minute from 80 addresses (limit {limit} per token)")


def guessing_tokens(arena: Arena) -> Outcome:
    """Guessing enrolment tokens from one address: refused ones count towards the limit too."""
    statuses = [arena.enrol(f"enr_{secrets.token_urlsafe(24)}", source="127.0.0.10")[0] for _ in range(30)]
    limit = Settings.enrolments_per_address
    return Outcome("guessing_tokens", statuses == [401] * limit + [429] * (30 - limit),
                   f"30 guesses: {statuses.count(401)} answered 401, then {statuses.count(429)} answered 429")


# Attestation --------------------------------------------------------------------------------------

def unsigned_uploads_to_an_attested_job(arena: Arena) -> Outcome:
    """A job that requires attestation: no key at enrolment, then uploads unsigned, signed by another key,
    for another round, and another device's bytes with its signature."""
    job = arena.job(require_attestation=True, min_devices=2, max_devices=3)
    token = arena.cloud.token(job["id"], max_uses=3)
    keyless = arena.enrol(token)
    keys = [arena.key() for _ in range(2)]
    first, second = (arena.device(token, key) for key in keys)
    plan = arena.plan(first)
    round_id = plan["round"]["id"]
    payload = arena.payload(plan, 1)
    signature = keys[0].sign_upload(round_id, payload)
    refused = [arena.upload(first, round_id, payload),
               arena.upload(first, round_id, payload, arena.key().sign_upload(round_id, payload)),
               arena.upload(first, round_id, payload, keys[0].sign_upload(round_id + 1, payload))]
    signed = arena.upload(first, round_id, payload, signature)
    copied = arena.upload(second, round_id, payload, signature)
    held = (keyless[0] == 400 and keyless[2]["error"] == "device_key_required"
            and all(r.status_code == 401 and r.json()["error"] == "bad_signature" for r in (*refused, copied))
            and signed.status_code == 200 and arena.rounds(job["id"])[0]["contributors"] == 1)
    return Outcome("unsigned_uploads_to_an_attested_job", held,
                   f"keyless enrolment {keyless[0]} {keyless[2]['error']}; unsigned, other key, other round: "
                   f"{codes(*refused)}; signed {signed.status_code}; a copy with its signature {codes(copied)}")


# Replays and copies -------------------------------------------------------------------------------

def replay_into_the_next_round(arena: Arena) -> Outcome:
    """Round 1's payloads sent again into round 2, by their sender and by another device."""
    job = arena.job(min_devices=2, max_devices=2)
    a, b, c = arena.devices(job, 3)
    plan = arena.plan(a)
    first = [arena.payload(plan, 11), arena.payload(plan, 12)]
    arena.upload(a, plan["round"]["id"], first[0])
    arena.upload(b, plan["round"]["id"], first[1])
    plan2 = arena.cloud.wait_for_version(a, 2)
    replays = [arena.upload(a, plan2["round"]["id"], first[0]), arena.upload(c, plan2["round"]["id"], first[1])]
    held = all(r.status_code == 400 and r.json()["error"] == "wrong_round" for r in replays)
    return Outcome("replay_into_the_next_round", held and arena.rounds(job["id"])[1]["contributors"] == 0,
                   f"round-1 payloads into round 2: {codes(*replays)}")


def copy_of_another_devices_payload(arena: Arena) -> Outcome:
    """Device B uploads device A's exact bytes to be counted twice."""
    job = arena.job(min_devices=2, max_devices=5)
    a, b = arena.devices(job, 2)
    plan = arena.plan(a)
    payload = arena.payload(plan, 21)
    arena.upload(a, plan["round"]["id"], payload)
    copied = arena.upload(b, plan["round"]["id"], payload)
    return Outcome("copy_of_another_devices_payload",
                   copied.status_code == 409 and arena.rounds(job["id"])[0]["contributors"] == 1,
                   f"the copy: {codes(copied)}")


def crafted_payloads(arena: Arena) -> Outcome:
    """Garbled payloads: cut short, padded, wrong magic, a count slot of 3, ciphertexts out of range."""
    job = arena.job(min_devices=2, max_devices=5)
    device = arena.devices(job, 1)[0]
    plan = arena.plan(device)
    good = arena.payload(plan, 31)
    crafted = [good[:200], good + b"\0" * 7, b"XXXX" + good[4:], good[:94] + (3).to_bytes(4, "big") + good[98:],
               good[:98] + bytes(reversed(good[98:]))]
    answers = [arena.upload(device, plan["round"]["id"], p) for p in crafted]
    return Outcome("crafted_payloads", all(r.status_code == 400 for r in answers)
                   and arena.rounds(job["id"])[0]["contributors"] == 0, f"answers: {codes(*answers)}")


# The HTTP surface ---------------------------------------------------------------------------------

def slow_body(arena: Arena) -> Outcome:
    """One device sends its upload at a few bytes a second; another is served meanwhile."""
    job = arena.job(min_devices=2, max_devices=5)
    slow, quick = arena.devices(job, 2)
    plan = arena.plan(slow)
    round_id, payload, other = plan["round"]["id"], arena.payload(plan, 41), arena.payload(plan, 42)
    url = urlsplit(arena.cloud.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall((f"PUT /v1/rounds/{round_id}/update HTTP/1.1\r\nHost: {url.hostname}\r\n"
                      f"Authorization: {slow['Authorization']}\r\nContent-Length: {len(payload)}\r\n"
                      "Connection: close\r\n\r\n").encode() + payload[:4])
        time.sleep(1.0)
        started = time.perf_counter()
        quick_answer = arena.upload(quick, round_id, other)
        waited = time.perf_counter() - started
        sock.sendall(payload[4:])
        sock.settimeout(60)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    slow_ok = answer.startswith(b"HTTP/1.1 200")
    if slow_ok:
        arena.accepted.add((slow["Authorization"], round_id))
    return Outcome("slow_body", quick_answer.status_code == 200 and waited < 5 and slow_ok,
                   f"another upload answered {quick_answer.status_code} in {waited:.2f} s while the slow body "
                   f"trickled; the slow one then {answer[:12].decode(errors='replace')}")


def chunked(data: bytes, size: int = 4096):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def chunked_json_over_the_limit(arena: Arena) -> Outcome:
    """A 4 MiB JSON body sent chunked (no Content-Length) to enrolment."""
    big = json.dumps({"token": "x", "name": "y" * (4 << 20)}).encode()
    try:
        answer = arena.http.post(f"{arena.cloud.url}/v1/enrol", data=chunked(big), timeout=60,
                                 headers={"Content-Type": "application/json"})
        seen, held = codes(answer), answer.status_code == 413
    except requests.ConnectionError:
        seen, held = "the service closed the connection before reading it all", True
    return Outcome("chunked_json_over_the_limit", held, f"answer: {seen}")


def deeply_nested_json(arena: Arena) -> Outcome:
    """JSON nested 20,000 deep (40 KB, under the size limit), sized and chunked."""
    nested = b"[" * 20000 + b"]" * 20000
    answers = [arena.http.post(f"{arena.cloud.url}/v1/enrol", data=body, timeout=60,
                               headers={"Content-Type": "application/json"}) for body in (nested, chunked(nested))]
    return Outcome("deeply_nested_json", all(r.status_code == 400 for r in answers), f"answers: {codes(*answers)}")


def huge_round_ids(arena: Arena) -> Outcome:
    """Round ids of 2^31, 2^63 and 2^64 + 1 in upload, report and weights URLs."""
    job = arena.job()
    device = arena.devices(job, 1)[0]
    answers = [arena.http.request(method, f"{arena.cloud.url}{path}", headers=device, json={"windows": 1})
               for big in (2**31, 2**63, 2**64 + 1)
               for method, path in (("PUT", f"/v1/rounds/{big}/update"), ("POST", f"/v1/rounds/{big}/report"),
                                    ("GET", f"/v1/weights/{big}"))]
    return Outcome("huge_round_ids", all(r.status_code == 404 for r in answers),
                   f"{len(answers)} calls: {sorted(set(codes(*answers)))}")


def nul_bytes(arena: Arena) -> Outcome:
    """NUL bytes in an enrolment name, a token, a bearer token and an admin URL's id."""
    job = arena.job()
    token = arena.cloud.token(job["id"], max_uses=None)
    enrolments = [arena.enrol(token, body={"token": token, "name": "watch\u0000"}),
                  arena.enrol(token, body={"token": "enr_\u0000x"})]
    answers = [arena.http.get(f"{arena.cloud.url}/v1/plan", headers={"Authorization": "Bearer a\0b.secret"}),
               arena.http.get(f"{arena.cloud.url}/admin/jobs/{job['id']}%00", headers=arena.cloud.admin)]
    statuses = [status for status, _, _ in enrolments] + [r.status_code for r in answers]
    return Outcome("nul_bytes", statuses == [400] * 4, f"answers: {statuses}")


def made_up_http_methods(arena: Arena) -> Outcome:
    """Requests with made-up methods and paths: /metrics must not grow a series for each."""
    def batch(count: int) -> int:
        for _ in range(count):
            arena.http.request(f"M{secrets.token_hex(4).upper()}", f"{arena.cloud.url}/made-up/{secrets.token_hex(6)}")
        return len(arena.http.get(f"{arena.cloud.url}/metrics").content)

    start = len(arena.http.get(f"{arena.cloud.url}/metrics").content)
    first, then = batch(10), batch(500)  # the first few may add the "other" method's series once
    return Outcome("made_up_http_methods", then - first < 256,
                   f"/metrics {start} bytes, {first} after 10 made-up methods, {then} after 500 more")


def another_jobs_round(arena: Arena) -> Outcome:
    """A device probes a round of another job: answered as a missing round, nothing learnt."""
    job, other = arena.job(), arena.job()
    device = arena.devices(job, 1)[0]
    foreign = arena.http.post(f"{arena.cloud.url}/v1/rounds/{other['rounds'][0]['id']}/report", headers=device,
                              json={"windows": 1})
    missing = arena.http.post(f"{arena.cloud.url}/v1/rounds/999999/report", headers=device, json={"windows": 1})
    same = foreign.json()["error"] == missing.json()["error"] == "round_not_found"
    return Outcome("another_jobs_round", foreign.status_code == missing.status_code == 404 and same,
                   f"foreign {codes(foreign)}, missing {codes(missing)}")


def wrong_dashboard_user(arena: Arena) -> Outcome:
    """The dashboard with the admin token as password but another user name."""
    url, password = f"{arena.cloud.url}/dashboard", arena.cloud.admin_token
    wrong = [arena.http.get(url, auth=(user, password)) for user in ("root", "", "admin ")]
    right = arena.http.get(url, auth=("admin", password))
    return Outcome("wrong_dashboard_user", all(r.status_code == 401 for r in wrong) and right.status_code == 200,
                   f"wrong user names: {[r.status_code for r in wrong]}; admin: {right.status_code}")


ATTACKS: list[Callable[[Arena], Outcome]] = [
    sybils_share_one_token, sybil_farm_from_one_address, sybil_farm_from_many_addresses, guessing_tokens,
    unsigned_uploads_to_an_attested_job, replay_into_the_next_round, copy_of_another_devices_payload,
    crafted_payloads, slow_body, chunked_json_over_the_limit, deeply_nested_json, huge_round_ids, nul_bytes,
    made_up_http_methods, another_jobs_round, wrong_dashboard_user,
]

LIMITED = (sybil_farm_from_one_address, sybil_farm_from_many_addresses, guessing_tokens)  # on the rate limit


def summary(arena: Arena, outcomes: list[Outcome], settle_s: float = 10.0) -> dict:
    """Counts over every job of the run, after the rounds that closed have had `settle_s` to publish."""
    deadline = time.time() + settle_s
    while time.time() < deadline and any(r["status"] == "closing" for j in arena.jobs for r in arena.rounds(j)):
        time.sleep(0.5)
    rounds = {j: arena.rounds(j) for j in arena.jobs}
    counted = {r["id"]: r["contributors"] for rs in rounds.values() for r in rs}
    accepted = {round_id: 0 for round_id in counted}
    for _, round_id in arena.accepted:
        accepted[round_id] += 1
    log = arena.cloud.aggregator.log.read_text() + arena.cloud.keyservice.log.read_text()
    return {
        "attacks": len(outcomes),
        "server_errors": arena.server_errors + log.count("unhandled error") + log.count("Traceback"),
        "halted_jobs": sum(any(r["status"] == "closing" for r in rs) for rs in rounds.values()),
        "undetected_poisoning": sum(o.undetected_poisoning for o in outcomes),
        "sybil_recoveries": sum(o.sybil_recoveries for o in outcomes),
        "lost": sum(max(0, accepted[r] - counted[r]) for r in counted),
        "double": sum(max(0, counted[r] - accepted[r]) for r in counted),
        "undefended": [o.attack for o in outcomes if not o.defended],
    }


@click.command()
@click.option("--database-url", default=None, help="Default: a SQLite file in a temporary folder.")
@click.option("--only", multiple=True, help="Run only the attacks of these names (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def main(database_url: str | None, only: tuple[str, ...], as_json: bool) -> None:
    chosen = [attack for attack in ATTACKS if not only or attack.__name__ in only]
    unknown = set(only) - {attack.__name__ for attack in ATTACKS}
    if unknown:
        raise click.BadParameter(f"no attack named {', '.join(sorted(unknown))}", param_hint="--only")
    limits = {"FEDWEAR_ENROLMENTS_PER_ADDRESS": str(Settings.enrolments_per_address),
              "FEDWEAR_ENROLMENTS_PER_TOKEN": str(Settings.enrolments_per_token)}  # the operator's defaults
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle_with_about(SHARED_VALUES, work / "bundle")
        cloud = Cloud(work / "cloud", database_url, max_upload_bytes=4 * 1024 * 1024, env=limits).start()
        try:
            arena = Arena(cloud, work / "bundle", work)
            outcomes = []
            for attack in chosen:
                if attack in LIMITED:
                    inside_one_minute()
                outcomes.append(attack(arena))
                if not as_json:
                    print(f"{outcomes[-1].attack:38} {'held' if outcomes[-1].defended else 'NOT HELD'}: "
                          f"{outcomes[-1].seen}")
            result = {"outcomes": [asdict(o) for o in outcomes], "summary": summary(arena, outcomes)}
        finally:
            cloud.stop()
    if as_json:
        print(json.dumps(result))
    else:
        print(json.dumps(result["summary"], indent=2))


def inside_one_minute() -> None:
    """Enrolment limits count per clock minute: an attack on them (a second or two) must not straddle two."""
    if time.time() % 60 > 50:
        time.sleep(60.5 - time.time() % 60)


if __name__ == "__main__":
    main()
