"""A wearable's budget: one device's full round against real local services, phase by phase.

The key service and the aggregation service run as local processes (as
device_sim starts them). The device runs in a child process that imports only
sdk/ (numpy, tflite-runtime, gmpy2), so its peak resident memory is a device's,
without TensorFlow. Per phase it reports seconds, bytes and the peak resident
memory so far:

- install: a new device downloads the bundle and the global weights (once);
- key_setup: the round key's randomiser set-up (once per key);
- precompute: with a pool, the randomisers computed ahead while charging (off the round);
- the round: sync (plan, weights set-up), download (the round's global weights,
  as after a new version), train (local epochs), encrypt, upload;
- personalise (the personal layers, the plan's personal epochs) and predict.

Each model runs with an empty and with a filled randomiser pool, each
``--repeats`` times (a new job and device each time); the fastest round counts,
as this machine is shared and noise only slows things down. Defaults follow one device of the sp-sw-har fleet run: 123 training windows,
5 local epochs, 15 contributors per round, the short-exponent randomiser.

    python benchmarks/bench_device.py [--json] [--models default,142k] [--windows 123] [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import click  # noqa: E402
import numpy as np  # noqa: E402

MODELS = {"default": {}, "142k": {"conv_filters": (64, 128, 128), "dense_units": 128}}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    Linux's VmHWM: getrusage's ru_maxrss would count the parent's memory at fork, which survives exec.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def device_round(url: str, token: str, storage: Path, data: Path, fill_pool: bool) -> dict:
    """The device process: install, (precompute,) one round, personalise, predict."""
    from sdk.client import FedWearClient

    with np.load(data) as arrays:
        windows, labels = arrays["windows"], arrays["labels"]
    phases = {}

    def phase(name: str, seconds: float, nbytes: int = 0, **extra) -> None:
        phases[name] = {"s": round(seconds, 4), "bytes": int(nbytes), "rss_mb": round(peak_rss_mb(), 1), **extra}

    client = FedWearClient(url, token, storage)
    client.enrol()
    start = time.perf_counter()
    client.sync()
    phase("install", time.perf_counter() - start, client.bytes_downloaded)
    start = time.perf_counter()
    client.fill_randomiser_pool(max_count=0)  # the key's randomiser set-up (short-exponent: its table), nothing stored
    phase("key_setup", time.perf_counter() - start)
    if fill_pool:
        fill = client.fill_randomiser_pool(max_seconds=600)
        phase("precompute", fill.seconds, randomisers=fill.added)
    for stale in (storage / "weights").iterdir():  # as after a new global version: the round fetches its weights
        stale.unlink()
    start = time.perf_counter()
    outcome = client.participate(windows, labels)
    round_s = time.perf_counter() - start
    if outcome.status != "uploaded":
        raise RuntimeError(f"round not uploaded: {outcome.status} {outcome.reason}")
    phase("sync", outcome.sync_s, outcome.bytes_down - outcome.bytes_downloaded)
    phase("download", outcome.download_s, outcome.bytes_downloaded)
    phase("train", outcome.train_s)
    phase("encrypt", outcome.crypto_s, randomisers=outcome.randomisers)
    phase("upload", outcome.upload_s, outcome.bytes_up)
    start = time.perf_counter()
    client.personalise(windows, labels)
    phase("personalise", time.perf_counter() - start)
    start = time.perf_counter()
    client.predict(windows)
    phase("predict", time.perf_counter() - start, ms_per_window=round(1000 * (time.perf_counter() - start) / len(windows), 4))
    return {"round_s": round(round_s, 4), "peak_rss_mb": round(peak_rss_mb(), 1), "phases": phases,
            "tensorflow_imported": "tensorflow" in sys.modules}


def run_device(url: str, token: str, storage: Path, data: Path, fill_pool: bool) -> dict:
    """device_round in a child process of its own."""
    args = json.dumps({"url": url, "token": token, "storage": str(storage), "data": str(data), "fill_pool": fill_pool})
    proc = subprocess.run([sys.executable, __file__, "--device", args], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"device process failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def device_data(windows: int, folder: Path) -> Path:
    """A synthetic wearer's labelled windows, as many as asked."""
    from device_sim import synthetic

    device = synthetic.generate(subjects=1, executions=10, seed=1).devices[0]
    index = np.resize(np.arange(len(device.labels)), windows)
    path = folder / "device.npz"
    np.savez(path, windows=device.windows[index], labels=device.labels[index])
    return path


def job_config(epochs: int, contributors: int, randomiser: str) -> dict:
    return {"name": "device budget", "rounds": 1, "min_devices": 2, "max_devices": contributors,
            "round_timeout_s": 3600,
            "hyperparameters": {"epochs": epochs, "batch_size": 32, "lr": 0.02, "momentum": 0.9, "personal_epochs": 30},
            "crypto": {"max_contributors": contributors, "randomiser": randomiser}}


def measure(models: list[str], windows: int, epochs: int, contributors: int, randomiser: str, repeats: int) -> dict:
    from cloud.bundle_export import export_bundle
    from cloud.har_model import ModelConfig, build_keras_model
    from device_sim.local_cloud import LocalCloud

    result = {"windows": windows, "local_epochs": epochs, "max_contributors": contributors, "randomiser": randomiser,
              "repeats": repeats, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = device_data(windows, work)
        with np.load(data) as arrays:
            x = arrays["windows"].reshape(-1, arrays["windows"].shape[-1])
        with LocalCloud(work / "cloud") as cloud:
            for name in models:
                config = ModelConfig(**MODELS[name])
                bundle = work / name / "bundle"
                export_bundle(build_keras_model(config), config.spec(), bundle, x.mean(axis=0), x.std(axis=0))
                runs = {}
                for variant, fill in (("no_pool", False), ("pool", True)) * repeats:
                    job = cloud.create_job(bundle, job_config(epochs, contributors, randomiser))
                    run = run_device(cloud.url, cloud.create_token(job["id"]), work / name / variant / str(job["id"]),
                                     data, fill)
                    if variant not in runs or run["round_s"] < runs[variant]["round_s"]:
                        runs[variant] = run
                result["models"][name] = summary(config, runs)
    return result


def summary(config, runs: dict) -> dict:
    pool, no_pool = runs["pool"], runs["no_pool"]
    return {
        "shared_params": config.shared_layout.size,
        "round_s": pool["round_s"], "round_s_no_pool": no_pool["round_s"],
        "train_s": pool["phases"]["train"]["s"],
        "encrypt_s_pool": pool["phases"]["encrypt"]["s"], "encrypt_s_no_pool": no_pool["phases"]["encrypt"]["s"],
        "encrypt_share_pool": round(pool["phases"]["encrypt"]["s"] / pool["round_s"], 3),
        "encrypt_share_no_pool": round(no_pool["phases"]["encrypt"]["s"] / no_pool["round_s"], 3),
        "randomisers": {"pool": pool["phases"]["encrypt"]["randomisers"],
                        "no_pool": no_pool["phases"]["encrypt"]["randomisers"]},
        "peak_rss_mb": max(pool["peak_rss_mb"], no_pool["peak_rss_mb"]),
        "tensorflow_in_device": pool["tensorflow_imported"] or no_pool["tensorflow_imported"],
        "phases": {"pool": pool["phases"], "no_pool": no_pool["phases"]},
    }


def table(result: dict) -> list[str]:
    lines = [f"{result['windows']} windows, {result['local_epochs']} local epochs, "
             f"{result['max_contributors']} contributors, {result['randomiser']} randomiser"]
    for name, model in result["models"].items():
        lines.append(f"\n{name} ({model['shared_params']} shared parameters), peak RSS {model['peak_rss_mb']} MB")
        lines.append(f"  {'phase':12}{'pool s':>10}{'no pool s':>11}{'bytes':>10}{'RSS MB':>8}")
        for phase, row in model["phases"]["pool"].items():
            other = model["phases"]["no_pool"].get(phase, {}).get("s", "")
            lines.append(f"  {phase:12}{row['s']:>10}{other:>11}{row['bytes']:>10}{row['rss_mb']:>8}")
        lines.append(f"  {'round':12}{model['round_s']:>10}{model['round_s_no_pool']:>11}"
                     f"   encryption {model['encrypt_share_pool']:.1%} of the round with the pool, "
                     f"{model['encrypt_share_no_pool']:.1%} without")
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--windows", default=123, show_default=True, help="The device's training windows.")
@click.option("--epochs", default=5, show_default=True, help="Local epochs per round.")
@click.option("--contributors", default=15, show_default=True, help="max_contributors of the round's crypto.")
@click.option("--randomiser", type=click.Choice(["standard", "short-exponent"]), default="short-exponent",
              show_default=True)
@click.option("--models", default=",".join(MODELS), show_default=True, help="Which models, comma-separated.")
@click.option("--repeats", default=3, show_default=True, help="Rounds per model and pool setting; the fastest counts.")
@click.option("--device", "device_args", default=None, hidden=True, help="Run as the device process.")
def main(as_json: bool, windows: int, epochs: int, contributors: int, randomiser: str, models: str, repeats: int,
         device_args: str | None):
    if device_args:
        args = json.loads(device_args)
        print(json.dumps(device_round(args["url"], args["token"], Path(args["storage"]), Path(args["data"]),
                                      args["fill_pool"])))
        return
    names = models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise click.BadParameter(f"unknown model {', '.join(unknown)}; choose from {', '.join(MODELS)}", param_hint="--models")
    result = measure(names, windows, epochs, contributors, randomiser, repeats)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for line in table(result):
            click.echo(line)


if __name__ == "__main__":
    main()
