"""Seconds per round and peak memory of the fleet as its population grows, per backend.

A synthetic population of N wearers (made on demand, so memory does not grow
with N) trains encrypted rounds against real cloud processes on loopback. Each
round the devices check in, in random order, until the service has selected
its quota (the per-round count times the job's over-selection, 1.3; at most
all N) and turns one away; the round closes at the per-round count. Only the
selected devices train, so at a fixed per-round count the seconds per round
should not grow with N. Each (backend, N) runs in its own process; its peak memory is the
largest sum, sampled every 0.25 s, of the proportional set size (shared pages
divided among their users) of the fleet's processes (the simulator, its
workers and Ray's processes) and, apart, of the two cloud services.

    python benchmarks/scale_fleet.py --devices 100,1000 --per-round 100 --backend threads,ray --json

Seconds per round: mean of rounds 2 onwards (round 1 also enrols devices and
starts workers), the devices' check-ins and then from the moment the selected
devices start until the fleet learns of the next model (the plan's long-poll); `growth` is its ratio between the largest and smallest
population, with its standard error from the round-to-round spread.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import psutil  # noqa: E402

SAMPLE_S = 0.25
ROUND_TIMEOUT_S = 1800  # a round closes when all its devices are in, not at a deadline


def _csv(kind):
    def parse(ctx, param, value: str):
        try:
            return [kind(x) for x in value.split(",") if x]
        except ValueError as exc:
            raise click.BadParameter(f"expected comma-separated values, got {value!r}") from exc
    return parse


def _memory_mb(root: psutil.Process) -> tuple[float, float]:
    """(fleet, services) proportional set size in MB of `root` and its descendants."""
    fleet = services = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            pss = proc.memory_full_info().pss / 2**20
            is_service = "cloud" in proc.cmdline()[1:4]  # python -m cloud serve|keyservice
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if is_service:
            services += pss
        else:
            fleet += pss
    return fleet, services


def measure(backend: str, devices: int, per_round: int, rounds: int, local_epochs: int, seed: int) -> dict:
    """One (backend, population) run in a child process, with its peak memory."""
    with tempfile.TemporaryDirectory(prefix="fedwear-scale-") as work:
        result_file = Path(work) / "result.json"
        args = [sys.executable, __file__, "--child", "--backend", backend, "--devices", str(devices),
                "--per-round", str(per_round), "--rounds", str(rounds), "--local-epochs", str(local_epochs),
                "--seed", str(seed), "--out", work]
        with open(Path(work) / "child.log", "wb") as log:
            child = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            root = psutil.Process(child.pid)
            peak_fleet = peak_services = 0.0
            try:
                while child.poll() is None:
                    fleet, services = _memory_mb(root)
                    peak_fleet, peak_services = max(peak_fleet, fleet), max(peak_services, services)
                    time.sleep(SAMPLE_S)
            finally:  # whatever the child left (it stops its services and Ray itself unless killed)
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if child.returncode != 0 or not result_file.exists():
            raise click.ClickException(f"{backend} with {devices} devices failed:\n"
                                       + (Path(work) / "child.log").read_text()[-3000:])
        result = json.loads(result_file.read_text())
    measured = result["round_seconds"][1:] or result["round_seconds"]
    return {"backend": backend, "devices": devices, "per_round": per_round,
            "seconds_per_round": round(statistics.mean(measured), 3),
            "seconds_per_round_se": round(statistics.stdev(measured) / math.sqrt(len(measured)), 3)
            if len(measured) > 1 else None,
            "peak_fleet_mb": round(peak_fleet, 1), "peak_services_mb": round(peak_services, 1), **result}


def run_child(backend: str, devices: int, per_round: int, rounds: int, local_epochs: int, seed: int,
              out: Path) -> None:
    from device_sim import synthetic
    from device_sim.fleet import Fleet, FleetConfig

    population = synthetic.generate(subjects=devices, seed=seed)
    config = FleetConfig(rounds=rounds, devices_per_round=per_round, local_epochs=local_epochs, new_users=0,
                         round_timeout_s=ROUND_TIMEOUT_S, backend=backend, seed=seed)
    started = time.perf_counter()
    fleet = Fleet(population, config, out / "run", show_progress=False, log=lambda *_: None)
    fleet.train()
    records = fleet.rounds
    if not all(r["published"] and r["counted"] == per_round for r in records):
        raise RuntimeError(f"a round was not published with {per_round} devices: {records}")
    (out / "result.json").write_text(json.dumps({
        "round_seconds": [r["seconds"] for r in records],
        "train_s_per_device": round(statistics.mean(r["train_s"] / per_round for r in records), 3),
        "crypto_s_per_device": round(statistics.mean(r["crypto_s"] / per_round for r in records), 3),
        "checked_in_per_round": round(statistics.mean(r["checked_in"] for r in records), 1),
        "selected_per_round": round(statistics.mean(r["selected"] for r in records), 1),
        "check_in_s": round(statistics.mean(r["check_in_s"] for r in records), 3),
        "total_s": round(time.perf_counter() - started, 1),
    }))


def growth(results: list[dict]) -> dict:
    """Per backend: seconds per round at the largest population over the smallest, with its standard error."""
    out = {}
    for backend in dict.fromkeys(r["backend"] for r in results):
        rows = sorted((r for r in results if r["backend"] == backend), key=lambda r: r["devices"])
        small, large = rows[0], rows[-1]
        if small is large:
            continue
        ratio = large["seconds_per_round"] / small["seconds_per_round"]
        se = None
        if small["seconds_per_round_se"] is not None and large["seconds_per_round_se"] is not None:
            se = ratio * math.hypot(small["seconds_per_round_se"] / small["seconds_per_round"],
                                    large["seconds_per_round_se"] / large["seconds_per_round"])
        out[backend] = {"from_devices": small["devices"], "to_devices": large["devices"],
                        "ratio": round(ratio, 3), "ratio_se": None if se is None else round(se, 3)}
    return out


@click.command()
@click.option("--devices", default="100,1000", show_default=True, callback=_csv(int), help="Population sizes.")
@click.option("--per-round", default=100, show_default=True,
              help="Devices per round: the round's target and its max_devices.")
@click.option("--backend", default="threads,ray", show_default=True, callback=_csv(str),
              help="Backends: threads, processes, ray.")
@click.option("--rounds", default=3, show_default=True, help="Rounds per run (the first is not averaged).")
@click.option("--local-epochs", default=1, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--child", is_flag=True, hidden=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, hidden=True)
def main(devices, per_round, backend, rounds, local_epochs, seed, as_json, child, out):
    """Seconds per round and peak memory per backend and population size."""
    if child:
        run_child(backend[0], devices[0], per_round, rounds, local_epochs, seed, out)
        return
    if min(devices) < per_round:
        raise click.BadParameter(f"every population must hold at least the {per_round} devices per round")
    results = [measure(b, n, per_round, rounds, local_epochs, seed) for b in backend for n in devices]
    summary = {"per_round": per_round, "rounds": rounds, "local_epochs": local_epochs, "results": results,
               "growth": growth(results)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{'backend':10}{'devices':>9}{'s/round':>10}{'+-':>7}{'fleet MB':>10}{'cloud MB':>10}")
    for r in results:
        click.echo(f"{r['backend']:10}{r['devices']:>9}{r['seconds_per_round']:>10.2f}"
                   f"{r['seconds_per_round_se'] or 0:>7.2f}{r['peak_fleet_mb']:>10.0f}{r['peak_services_mb']:>10.0f}")
    for name, g in summary["growth"].items():
        click.echo(f"{name}: {g['from_devices']} -> {g['to_devices']} devices: seconds per round x{g['ratio']:.2f}"
                   + (f" +- {g['ratio_se']:.2f}" if g["ratio_se"] is not None else ""))


if __name__ == "__main__":
    main()
