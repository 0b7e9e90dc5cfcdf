"""Accuracy under client-side differential privacy on sp-sw-har: epsilon 1, 4, 8 and without DP.

Each run is `python -m device_sim run` (the fleet simulator: 15 training
devices, 3 new users, real key service and aggregator on loopback, encrypted
updates) with `--rounds 30 --local-epochs 5`, once without DP and once per
epsilon with `--dp-epsilon E --dp-clip C` (delta 1e-5, every round's devices
sharing its noise), for each seed. It prints, per setting, the report's mean
accuracy, undecoded (global, personalised, the personal head alone,
local-only; new users' global and personalised), and their mean and spread
over seeds; and, per seed, what always answering the most frequent activity
scores.

    python benchmarks/dp_accuracy.py --data PATH/TO/sp-sw-har --seeds 0 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EPSILONS = (None, 8.0, 4.0, 1.0)
FIGURES = {"global": ("mean", "global"), "personalised": ("mean", "personalised"),
           "personal_head": ("mean", "personal_head"), "local_only": ("mean", "local_only"), "new_users_global": ("new_users", "global"),
           "new_users_personalised": ("new_users", "personalised")}


def run(data: Path, epsilon: float | None, seed: int, args, out: Path) -> dict:
    """One fleet run; its report's figures and privacy block."""
    command = [sys.executable, "-m", "device_sim", "run", "--data", str(data), "--device", "watch",
               "--rounds", str(args.rounds), "--local-epochs", str(args.local_epochs), "--engine", args.engine,
               "--seed", str(seed), "--out", str(out)]
    if epsilon is not None:
        command += ["--dp-epsilon", str(epsilon), "--dp-clip", str(args.clip)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    return {"seed": seed, **{name: report[a][b] for name, (a, b) in FIGURES.items()},
            "privacy": report.get("privacy")}


def most_frequent_class(data: Path, seed: int) -> float:
    """Mean accuracy over the training devices of always answering the pooled training data's most frequent
    activity: what a model that learnt nothing but the class balance scores."""
    import numpy as np

    from device_sim.datasets import load_dataset
    from device_sim.fleet import Fleet, FleetConfig

    ds = load_dataset("sp-sw-har", data, "watch", False, None, seed=seed, show_progress=False)
    devices = Fleet(ds, FleetConfig(seed=seed), Path(tempfile.mkdtemp()), show_progress=False).participants
    top = np.bincount(np.concatenate([p.train.labels for p in devices])).argmax()
    return round(float(np.mean([np.mean(p.test.labels == top) for p in devices])), 4)


def summary(runs: list[dict]) -> dict:
    """Mean and, over two or more seeds, standard deviation of each figure."""
    result = {}
    for name in FIGURES:
        values = [r[name] for r in runs]
        result[name] = round(statistics.mean(values), 4)
        if len(values) > 1:
            result[f"{name}_sd"] = round(statistics.stdev(values), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the sp-sw-har folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--local-epochs", type=int, default=5)
    parser.add_argument("--clip", type=float, default=1.0, help="--dp-clip of the runs with DP")
    parser.add_argument("--engine", choices=("encrypted", "plaintext"), default="encrypted")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs' reports here")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="dp-accuracy-"))
    runs = {("no_dp" if epsilon is None else f"epsilon_{epsilon:g}"): [] for epsilon in EPSILONS}
    for seed in args.seeds:  # every setting of a seed before the next seed
        for epsilon, (label, done) in zip(EPSILONS, runs.items()):
            done.append(run(args.data, epsilon, seed, args, out / f"{label}-seed{seed}"))
            if not args.json:
                print(label, json.dumps(done[-1]), flush=True)
    settings = {label: {**summary(done), "noise_multiplier": done[0]["privacy"] and
                        round(done[0]["privacy"]["noise_multiplier"], 4), "runs": done}
                for label, done in runs.items()}
    print(json.dumps({"engine": args.engine, "rounds": args.rounds, "local_epochs": args.local_epochs,
                      "clip_norm": args.clip, "delta": 1e-5, "seeds": args.seeds, "settings": settings,
                      "most_frequent_class": [most_frequent_class(args.data, seed) for seed in args.seeds]}))


if __name__ == "__main__":
    main()
