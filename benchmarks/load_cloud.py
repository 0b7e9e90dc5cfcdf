"""Load on the aggregation service: many devices upload encrypted updates to one round at once.

For each worker count, starts a real key service and an aggregator under
gunicorn with that many worker processes on loopback, enrols the devices and
checks each in (GET /v1/plan, which selects it), then sends one distinct
encrypted update per device concurrently (a bounded number in flight, each
request with a timeout). Afterwards it checks the round: every
accepted update counted exactly once, and the published model equal to the
plaintext weighted FedAvg of the accepted updates within the codec's bound.
It also measures, on small rounds, the time from the last upload's answer to
the published model with publication at close and with publication at the
next tick of the round ticker (1 s), in the same run (median of 3 rounds each),
and the CPU each side spent per upload while the uploads ran (CpuMeter).
Last, with the services stopped, the machine's own ceiling for the ratio of
2 workers over 1: how much faster two processes do an upload's ciphertext
multiplications than one (machine_2_over_1).

The speed of a small virtual machine drifts by tens of percent within a
minute, so every worker count runs `--repeats` rounds, the counts taking
turns, and the ratios are medians over the turns (each turn's ratio listed).

Payloads: a few devices' updates are encrypted in full; every other device's
payload is one of them with each ciphertext multiplied by the same fresh
encryption of zero (distinct bytes, the same plaintext), so that a thousand
devices at 100,000 parameters do not need an hour of client encryption.

    python benchmarks/load_cloud.py --devices 200 --params 20000 --workers 1,2 --json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import gmpy2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402

from device_sim.local_cloud import LocalCloud  # noqa: E402
from sdk.crypto import wire  # noqa: E402
from sdk.crypto.codec import UpdateEncoder  # noqa: E402
from sdk.crypto.keys import PublicKey  # noqa: E402
from sdk.crypto.packing import mean_error_bound  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.crypto.randomisers import ShortExponentRandomiser  # noqa: E402

BASES = 4  # fully encrypted updates; the others are re-randomised copies of them
LATENCY_ROUNDS = 3  # rounds per way of publishing; their median is reported


def bundle_with_about(params: int, out: Path) -> int:
    """Exports a model whose shared part has about `params` values; returns the exact count.

    Up to 30,000 values the dense layer grows; beyond, the second convolution
    does (a dense layer that wide fails the bundle's gradient check at export).
    """
    from cloud.bundle_export import export_bundle
    from cloud.har_model import ModelConfig, build_keras_model

    base = ModelConfig()
    if params <= 30_000:
        per_unit = base.spec().features + 1 + base.num_classes
        config = ModelConfig(dense_units=max(1, base.dense_units + round((params - base.shared_layout.size) / per_unit)))
    else:
        first = ModelConfig(conv_filters=(64, 64)).shared_layout.size
        per_filter = ModelConfig(conv_filters=(64, 65)).shared_layout.size - first
        config = ModelConfig(conv_filters=(64, max(64, 64 + round((params - first) / per_filter))))
    export_bundle(build_keras_model(config), config.spec(), out, np.zeros(6), np.ones(6))
    return config.shared_layout.size


@dataclass
class CpuMeter:
    """CPU seconds spent while the uploads run: the aggregator's workers, PostgreSQL (its own processes and the
    connections to this database, not another's), this load client, and the whole machine (busy, of its cores)."""

    workers: list
    database: str | None
    started: dict | None = None

    def _postgres(self) -> list:
        """PostgreSQL's processes but the connections to another database ("postgres: 15/main: USER DB HOST(PORT) ...")."""
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            words = " ".join(process.info["cmdline"] or []).split()
            connection = len(words) > 4 and ("(" in words[4] or words[4] == "[local]")
            if process.info["name"] == "postgres" and (not connection or self.database in (None, words[3])):
                found.append(process)
        return found

    def sample(self) -> dict:
        def seconds(processes) -> float:
            total = 0.0
            for process in processes:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            return total

        machine = psutil.cpu_times()
        return {"workers": seconds(self.workers),
                "postgres": seconds(self._postgres()),
                "client": seconds([psutil.Process()]),
                "machine_busy": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)}

    def start(self) -> None:
        self.started = self.sample()

    def per_upload_ms(self, uploads: int, wall: float) -> dict:
        ended = self.sample()
        spent = {name: ended[name] - self.started[name] for name in ended}
        return {**{name: round(1000 * value / max(1, uploads), 1) for name, value in spent.items()},
                "machine_busy_cores": round(spent["machine_busy"] / wall, 2)}


@dataclass
class Fleet:
    """Devices' updates and weights (device i sends base i % BASES, re-randomised by its own encryption of zero)."""

    updates: list[np.ndarray]
    weights: list[int]
    bases: list[list]
    zeros: list
    params: CryptoParams
    public: PublicKey
    values: int

    @staticmethod
    def make(devices: int, values: int, params: CryptoParams, public: PublicKey) -> "Fleet":
        rng = np.random.default_rng(0)
        fast = ShortExponentRandomiser(public)
        updates = [rng.normal(0, 0.05, values).astype(np.float32) for _ in range(BASES)]
        weights = [int(w) for w in rng.integers(50, 1001, BASES)]
        bases = [wire.decode(UpdateEncoder(params, public, fast, seed=i).encode(u, w, round_id=0).payload,
                             params, public).ciphertexts for i, (u, w) in enumerate(zip(updates, weights))]
        return Fleet([updates[i % BASES] for i in range(devices)], [weights[i % BASES] for i in range(devices)],
                     bases, [1] * BASES + fast.take(max(0, devices - BASES)), params, public, values)

    def payload(self, i: int, round_id: int) -> bytes:
        """Device i's payload for a round (bytes: a thousand of 100,000 values take 660 MB, their integers far more)."""
        n2, zero = self.public.n_square, self.zeros[i]
        ciphertexts = [c * zero % n2 for c in self.bases[i % BASES]]
        return wire.encode(wire.KIND_CONTRIBUTION, self.params, self.public, round_id, self.values, 1, ciphertexts)


def one_round(cloud: LocalCloud, bundle: Path, fleet: Fleet, devices: int, concurrency: int, timeout: float,
              database: str | None = None) -> dict:
    """A job whose one round takes `devices` uploads; what happened to them."""
    job = cloud.create_job(bundle, {
        "name": "load", "rounds": 1, "min_devices": devices, "max_devices": devices, "round_timeout_s": 3600,
        "crypto": {"max_contributors": fleet.params.max_contributors, "max_weight": fleet.params.max_weight,
                   "randomiser": "short-exponent"}})
    token = cloud.create_token(job["id"], max_uses=None)
    session = requests.Session()
    auths = [{"Authorization": session.post(f"{cloud.url}/v1/enrol", json={"token": token},
                                            timeout=timeout).json()["authorization"]} for _ in range(devices)]
    # every device checks in before it trains, as the protocol has it; the round selects them all
    plans = [session.get(f"{cloud.url}/v1/plan", headers=auth, timeout=timeout).json() for auth in auths]
    if not all(plan["selected"] for plan in plans):
        raise RuntimeError("the round did not select every device")
    round_id = plans[0]["round"]["id"]
    payloads = [fleet.payload(i, round_id) for i in range(devices)]  # made before the clock starts
    answered_at = [0.0] * devices

    def upload(i: int):
        t0 = time.perf_counter()
        try:
            r = requests.put(f"{cloud.url}/v1/rounds/{round_id}/update", headers=auths[i], data=payloads[i],
                             timeout=timeout)
            ok = r.status_code == 200 and r.json().get("accepted") is True
        except requests.RequestException:
            ok = False
        answered_at[i] = time.perf_counter()
        return ok, (answered_at[i] - t0) * 1000

    meter = CpuMeter([psutil.Process(pid) for pid in cloud.worker_pids()], database)
    meter.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(upload, range(devices)))
    wall = time.perf_counter() - started
    cpu = meter.per_upload_ms(devices, wall)
    accepted = [i for i, (ok, _) in enumerate(results) if ok]
    deadline = time.time() + 600
    while len(accepted) == devices and time.time() < deadline and cloud.job(job["id"])["model_version"] < 2:
        time.sleep(0.02)
    published_at = time.perf_counter()
    state = cloud.job(job["id"])
    counted = state["rounds"][0]["contributors"]
    latencies = sorted(ms for _, ms in results)
    row = {"accepted": len(accepted), "lost": max(0, len(accepted) - counted),
           "double_counted": max(0, counted - len(accepted)),
           "uploads_per_s": round(len(accepted) / wall, 1), "wall_s": round(wall, 2),
           "p50_ms": round(statistics.median(latencies), 1),
           "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
           "cpu_ms_per_upload": cpu, "published": state["model_version"] >= 2, "max_abs_error": None, "error_bound": None,
           "last_upload_to_published_s": None}
    if row["published"]:
        row["last_upload_to_published_s"] = round(published_at - max(answered_at), 3)
        base = np.frombuffer(session.get(f"{cloud.url}/v1/weights/1", headers=auths[0]).content, "<f4")
        new = np.frombuffer(session.get(f"{cloud.url}/v1/weights/2", headers=auths[0]).content, "<f4")
        total = sum(fleet.weights[i] for i in accepted)
        fedavg = sum(fleet.weights[i] * fleet.updates[i].astype(np.float64) for i in accepted) / total
        row["max_abs_error"] = float(np.max(np.abs(new - base - fedavg)))
        row["error_bound"] = mean_error_bound(fleet.params, len(accepted), total)
    return row


def _sums_per_s(n_square: int, ciphertexts: list[int], seconds: float) -> float:
    """How many times a second one process multiplies an update's ciphertexts into a sum (as an upload does)."""
    n2, values = gmpy2.mpz(n_square), [gmpy2.mpz(c) for c in ciphertexts]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        [a * b % n2 for a, b in zip(values, values)]
        done += 1
    return done / (time.perf_counter() - started)


def machine_2_over_1(fleet: Fleet, repeats: int, seconds: float = 2.0) -> list[float]:
    """This machine's own ceiling for 2 workers over 1, `repeats` times: two processes' rate of an upload's
    multiplications over one process's just before, with nothing else running."""
    args = (int(fleet.public.n_square), [int(c) for c in fleet.bases[0]], seconds)
    ratios = []
    with ProcessPoolExecutor(2) as pool:
        for _ in range(repeats):
            one = pool.submit(_sums_per_s, *args).result()
            two = sum(future.result() for future in [pool.submit(_sums_per_s, *args) for _ in range(2)])
            ratios.append(round(two / one, 2))
    return ratios


def database_name(url: str | None) -> str | None:
    """The PostgreSQL database a URL names (None for SQLite)."""
    return None if url is None or url.startswith("sqlite") else url.rsplit("/", 1)[-1].split("?")[0]


@click.command()
@click.option("--devices", default=200, show_default=True)
@click.option("--params", default=20000, show_default=True)
@click.option("--workers", default="1,2", show_default=True, help="gunicorn worker counts to compare")
@click.option("--database-url", default=None, help="Default: a SQLite file in a temporary folder.")
@click.option("--concurrency", default=64, show_default=True, help="uploads in flight at once")
@click.option("--latency-devices", default=10, show_default=True,
              help="devices of the round that times publication at close against the next tick")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per request.")
@click.option("--repeats", default=3, show_default=True,
              help="rounds per worker count, the counts taking turns; ratios are the median of each turn's")
@click.option("--json", "as_json", is_flag=True)
def main(devices: int, params: int, workers: str, database_url: str | None, concurrency: int,
         latency_devices: int, timeout: float, repeats: int, as_json: bool) -> None:
    if not 2 <= devices <= 10_000:
        raise click.BadParameter("devices must be in [2, 10000]")
    if repeats < 1:
        raise click.BadParameter("repeats must be at least 1")
    counts = [int(w) for w in workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        values = bundle_with_about(params, tmp / "bundle")
        runs, latency = [], {}
        fleet = None
        started = time.perf_counter()
        for turn in range(repeats):  # the worker counts take turns, so that a slower spell of the machine hits each
            for count in counts:
                # one work directory for every run: the key service keeps its key, so the payloads stay valid
                with LocalCloud(tmp / "cloud", database_url, max_upload_bytes=16 * 1024 * 1024,
                                workers=count) as cloud:
                    if fleet is None:
                        plan_params = CryptoParams(key_bits=2048, max_contributors=max(devices, latency_devices, 2),
                                                   max_weight=1000, randomiser="short-exponent")
                        public = PublicKey.from_json(requests.get(cloud.keyservice.health,
                                                                  headers=cloud.keyservice.headers).text)
                        fleet = Fleet.make(max(devices, latency_devices), values, plan_params, public)
                        encrypt_s = time.perf_counter() - started
                    runs.append({"workers": count, "turn": turn,
                                 **one_round(cloud, tmp / "bundle", fleet, devices, concurrency, timeout,
                                             database_name(database_url))})
        for at_close in (True, False):
            with LocalCloud(tmp / "cloud", database_url, max_upload_bytes=16 * 1024 * 1024, workers=1,
                            tick_seconds=1.0, publish_at_close=at_close) as cloud:
                seconds = [one_round(cloud, tmp / "bundle", fleet, latency_devices, concurrency,
                                     timeout)["last_upload_to_published_s"] for _ in range(LATENCY_ROUNDS)]
                latency["at_close" if at_close else "next_tick"] = statistics.median(seconds)
    rate = {(run["turn"], run["workers"]): run["uploads_per_s"] for run in runs}
    turns = [rate[turn, 2] / rate[turn, 1] for turn in range(repeats)] if {1, 2} <= set(counts) else []
    machine = machine_2_over_1(fleet, repeats)
    result = {
        "devices": devices, "params": values, "payload_bytes": len(fleet.payload(0, 1)),
        "client_encrypt_s": round(encrypt_s, 1), "database": "sqlite" if database_url is None else "postgresql",
        "runs": runs,
        "uploads_per_s": {str(count): statistics.median(rate[turn, count] for turn in range(repeats))
                          for count in counts},
        "speedup_2_over_1": round(statistics.median(turns), 2) if turns else None,
        "speedup_2_over_1_turns": [round(ratio, 2) for ratio in turns],
        "machine_2_over_1": statistics.median(machine),
        "machine_2_over_1_turns": machine,
        "publish_latency_s": {"devices": latency_devices, "tick_s": 1.0, "rounds": LATENCY_ROUNDS, **latency},
    }
    print(json.dumps(result, indent=None if as_json else 2))


if __name__ == "__main__":
    main()
