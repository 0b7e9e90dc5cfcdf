"""The same federated job in FedWear and in Flower 1.42, side by side on this machine.

The job: the sp-sw-har watch devices of the fleet simulator's default run (15
training subjects, the within-subject training partitions), 10 rounds of 5
local epochs, the same bundle and initial weights, the same TFLite trainer and
local update (FedWear's sdk/), the same hyper-parameters, per-round seeds and
weighting of contributions. It runs as:

- FedWear, encrypted: `device_sim run`'s fleet on its Ray backend (one task
  per core, as Flower's simulation has one actor per core), real key service
  and aggregator processes on loopback, Paillier-encrypted updates over HTTP.
  Each device computes its randomisers ahead, before its first round, as a
  phone does while charging (not in the round's time; `*_precompute_s` gives
  it per device); `fedwear_encrypted_live` computes them at upload instead.
  By default the key service decrypts each round in 4 sub-sums (range-checked
  apart, so that a crafted contribution costs its sub-sum, not the round; the
  aggregator learns those partial sums); `fedwear_encrypted_one_sum` decrypts
  the round's sum alone, so that the aggregator learns what SecAgg+'s server
  learns: the sum of every client's update, nothing finer;
- FedWear, plaintext: the fleet's plaintext engine (FedAvg in numpy, one process);
- Flower FedAvg and Flower SecAgg+: Flower's own ServerApp, strategy
  (FedAvg), SecAgg+ workflow and client mod, on Flower's simulation engine
  (Ray actors, one per core). Flower needs numpy >= 1.26, so it runs in its own
  virtual environment, made on first use from benchmarks/flower/requirements.txt
  in the cache (~/.cache/fedwear or FEDWEAR_CACHE); the job goes to it as files.

Every process stays on loopback: the listening sockets of every process each run
starts are sampled and reported (`listening_outside_loopback`).

    python benchmarks/compare_peers.py --json

Seconds per round: mean of rounds 2-10 (`*_s`, standard error `*_s_se`) and of all rounds (`*_all_s`);
FedWear's from its devices' check-in to the fleet learning of the published
model (the plan's long-poll), Flower's from
configuring the round to its aggregate. Local training: mean seconds per
client and round. Bytes: per client and round, what it sends (FedWear: the
encrypted payload; Flower: its messages' content as Flower serialises it).
Accuracy: the final global model on every device's test windows (mean over
devices), scored by the same code for all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from device_sim.fetch import cache_dir  # noqa: E402

FLOWER = ROOT / "benchmarks" / "flower"
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


class ListeningSockets:
    """Samples, in the background, every address that this process's descendants listen on."""

    def __init__(self, every_s: float = 2.0) -> None:  # rarely: reading every process's sockets costs CPU
        self.every_s, self.addresses = every_s, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for proc in psutil.Process().children(recursive=True):
                try:
                    self.addresses |= {c.laddr.ip for c in proc.net_connections("inet")
                                       if c.status == psutil.CONN_LISTEN}
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            self._stop.wait(self.every_s)

    def __enter__(self) -> "ListeningSockets":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def outside_loopback(self) -> list[str]:
        return sorted(a for a in self.addresses if a not in LOOPBACK)


def _mean(values) -> float:
    return round(float(statistics.mean(values)), 3)


def _round_summary(seconds: list[float]) -> dict:
    """Mean of rounds 2 onwards with its standard error, mean of all rounds, and every round."""
    later = seconds[1:] or seconds
    return {"s": _mean(later), "s_se": round(statistics.stdev(later) / math.sqrt(len(later)), 3)
            if len(later) > 1 else None, "all_s": _mean(seconds), "round_seconds": [round(s, 3) for s in seconds]}


def flower_python() -> Path:
    """Flower's virtual environment, made from benchmarks/flower/requirements.txt on first use."""
    requirements = FLOWER / "requirements.txt"
    env = cache_dir() / f"flower-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]}"
    python, ready = env / "bin" / "python", env / ".installed"
    if not ready.exists():
        click.echo(f"creating Flower's environment in {env} (once; a few minutes)", err=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)
        ready.touch()
    return python


def fedwear(dataset, engine: str, rounds: int, epochs: int, backend: str, out: Path, precompute: bool = True,
            subsums: int | None = None):
    """One FedWear run; (the fleet, its summary)."""
    from device_sim.fleet import Fleet, FleetConfig

    config = FleetConfig(rounds=rounds, local_epochs=epochs, engine=engine, backend=backend, precompute=precompute,
                         subsums=subsums)
    fleet = Fleet(dataset, config, out, show_progress=False, log=lambda *_: None)
    fleet.train()
    records, devices = fleet.rounds, len(fleet.participants)
    summary = {**_round_summary([r["seconds"] for r in records]),
               "train_s": _mean(r["train_s"] / len(r["participants"]) for r in records),
               "accuracy": records[-1]["global_accuracy"]}
    if engine == "encrypted":
        summary["bytes_up"] = round(_mean(b for r in records for b in r["bytes_up"].values()))
        summary["bytes_down"] = round(_mean(b for r in records for b in r["bytes_down"].values()))
        summary["crypto_s"] = _mean(r["crypto_s"] / devices for r in records)
        summary["precompute_s"] = round(sum(r["precompute_s"] for r in records) / devices, 3)
    return fleet, summary


def flower_job(fleet, work: Path, rounds: int, cpus: int) -> Path:
    """Writes the fleet's job (bundle, initial weights, partitions, hyper-parameters) for Flower."""
    work.mkdir(parents=True, exist_ok=True)
    clients = []
    for p in fleet.participants:
        path = work / f"{p.device_id}.npz"
        np.savez(path, windows=p.train.windows, labels=p.train.labels)
        clients.append(str(path))
    np.save(work / "initial.npy", fleet.initial_weights)
    c = fleet.config
    job = {"rounds": rounds, "seed": c.seed, "clients": clients, "bundle": str(fleet.bundle.resolve()),
           "initial": str((work / "initial.npy").resolve()), "cpus": cpus,
           "hyperparameters": {"epochs": c.local_epochs, "batch_size": c.batch_size, "lr": c.lr,
                               "momentum": c.momentum}}
    (work / "job.json").write_text(json.dumps(job))
    return work / "job.json"


def flower(python: Path, job: Path, run: Path, mode: str, fleet, extra: list[str] = ()) -> dict:
    """One Flower run in its own environment; its summary, scored like FedWear's."""
    run.mkdir(parents=True)
    (run / "job.json").write_text(job.read_text())
    args = [str(python), str(FLOWER / "flower_job.py"), str(run), mode, *extra]
    with open(run / "flower.log", "wb") as log:
        child = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            child.wait()
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)  # Ray's processes, should any outlive the run
            except ProcessLookupError:
                pass
    if child.returncode != 0 or not (run / "result.json").exists():
        raise click.ClickException(f"Flower {mode} failed:\n" + (run / "flower.log").read_text()[-4000:])
    seconds = json.loads((run / "result.json").read_text())["round_seconds"]
    up, down = defaultdict(int), defaultdict(int)
    for line in (run / "bytes.jsonl").read_text().splitlines():
        row = json.loads(line)
        up[row["client"], row["round"]] += row["up"]
        down[row["client"], row["round"]] += row["down"]
    fits = [json.loads(line) for line in (run / "train_times.jsonl").read_text().splitlines()]
    trainer = fleet._evaluator(fleet.bundle, np.load(run / "final.npy"))
    return {**_round_summary(seconds), "train_s": _mean(f["end"] - f["start"] for f in fits),
            "bytes_up": round(_mean(up.values())), "bytes_down": round(_mean(down.values())),
            "accuracy": round(fleet._global_accuracy(trainer), 4)}


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="sp-sw-har folder (default: FEDWEAR_SPSWHAR or the cache).")
@click.option("--rounds", default=10, show_default=True)
@click.option("--local-epochs", default=5, show_default=True)
@click.option("--backend", default="ray", show_default=True, help="FedWear's fleet backend.")
@click.option("--num-shares", default=15, show_default=True, help="SecAgg+: shares of each client's secrets.")
@click.option("--threshold", default=8, show_default=True, help="SecAgg+: shares needed to reconstruct one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
def main(data, rounds, local_epochs, backend, num_shares, threshold, as_json):
    """Seconds per round, local training, bytes per client and accuracy: FedWear and Flower, one job."""
    from device_sim.datasets import load_dataset

    dataset = load_dataset("sp-sw-har", data, "watch", show_progress=False)
    python = flower_python()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="fedwear-peers-") as tmp, ListeningSockets() as sockets:
        work = Path(tmp)
        fleet, encrypted = fedwear(dataset, "encrypted", rounds, local_epochs, backend, work / "encrypted")
        _, live = fedwear(dataset, "encrypted", rounds, local_epochs, backend, work / "live", precompute=False)
        _, one_sum = fedwear(dataset, "encrypted", rounds, local_epochs, backend, work / "one-sum", subsums=1)
        _, plaintext = fedwear(dataset, "plaintext", rounds, local_epochs, backend, work / "plaintext")
        job = flower_job(fleet, work / "flower", rounds, cpus)
        fedavg = flower(python, job, work / "fedavg", "fedavg", fleet)
        secagg = flower(python, job, work / "secaggplus", "secaggplus", fleet,
                        ["--num-shares", str(num_shares), "--threshold", str(threshold)])
    systems = {"fedwear_encrypted": encrypted, "fedwear_encrypted_live": live, "fedwear_encrypted_one_sum": one_sum,
               "fedwear_plaintext": plaintext,
               "flower_fedavg": fedavg,
               "flower_secaggplus": secagg}
    accuracies = [s["accuracy"] for s in systems.values()]
    result = {f"{name}_{key}": value for name, s in systems.items() for key, value in s.items()}
    result.update({
        "devices": len(fleet.participants), "rounds": rounds, "local_epochs": local_epochs,
        "fedwear_backend": backend, "flower_engine": f"simulation, Ray, {cpus} actors of 1 CPU",
        "secaggplus": {"num_shares": num_shares, "reconstruction_threshold": threshold},
        "ratio_secaggplus_to_fedwear_encrypted": round(secagg["s"] / encrypted["s"], 3),
        "ratio_secaggplus_to_fedwear_one_sum": round(secagg["s"] / one_sum["s"], 3),
        "accuracy_spread": round(max(accuracies) - min(accuracies), 4),
        "listening_outside_loopback": sockets.outside_loopback,
    })
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{'system':26}{'s/round':>9}{'all':>8}{'train s':>9}{'bytes up':>10}{'accuracy':>10}")
    for name, s in systems.items():
        click.echo(f"{name:26}{s['s']:>9.2f}{s['all_s']:>8.2f}{s['train_s']:>9.3f}"
                   f"{s.get('bytes_up', 0):>10}{s['accuracy']:>10.3f}")
    click.echo(f"SecAgg+ / FedWear encrypted: {result['ratio_secaggplus_to_fedwear_encrypted']:.2f} "
               f"(one sum: {result['ratio_secaggplus_to_fedwear_one_sum']:.2f}); "
               f"accuracy spread {result['accuracy_spread']:.3f}")


if __name__ == "__main__":
    main()
