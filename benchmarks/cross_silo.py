"""The cross-silo example over several seeds: mean accuracy of local-only, global, personalised and
centralised models over the hospitals, with 95% intervals over seeds, the paired differences from
local-only, and each round's bytes and seconds.

Each seed is exactly `python -m device_sim run --dataset breast-cancer --silos 3 --seed S` (its split of
the records, its initial weights, its shuffling), run here one after another; their reports are kept in
OUT/seed-S.

    python benchmarks/cross_silo.py [--seeds 10] [--silos 3] [--out out/cross-silo-seeds] [--json]
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402

KINDS = ("local_only", "global", "personalised", "centralised")
T_975 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26, 15: 2.14, 20: 2.09}


def interval(values: list[float]) -> dict:
    """Mean and the half-width of its 95% t-interval over seeds."""
    n = len(values)
    half = T_975.get(n, 1.96) * float(np.std(values, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    return {"mean": round(float(np.mean(values)), 4), "ci95": round(half, 4)}


def run_seed(seed: int, silos: int, out: Path) -> dict:
    """The command line's run, in this process; its report."""
    from device_sim.cli import main as device_sim

    with contextlib.redirect_stdout(io.StringIO()):
        device_sim.main(["run", "--dataset", "breast-cancer", "--silos", str(silos), "--seed", str(seed),
                         "--out", str(out)], standalone_mode=False)
    return json.loads((out / "report.json").read_text())


@click.command()
@click.option("--seeds", default=10, show_default=True)
@click.option("--silos", default=3, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/cross-silo-seeds"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
def main(seeds: int, silos: int, out: Path, as_json: bool) -> None:
    reports = [run_seed(seed, silos, out / f"seed-{seed}") for seed in range(seeds)]
    means = {kind: [r["mean"][kind] for r in reports] for kind in KINDS}
    rounds = [round_ for r in reports for round_ in r["rounds"]]
    result = {
        "seeds": seeds, "silos": silos, "rounds": len(reports[0]["rounds"]),
        "mean_accuracy": {kind: interval(values) for kind, values in means.items()},
        "mean_macro_f1": {kind: interval([r["mean_macro_f1"][kind] for r in reports]) for kind in KINDS},
        "minus_local_only": {kind: interval(list(np.subtract(means[kind], means["local_only"])))
                             for kind in ("global", "personalised", "centralised")},
        "per_silo": {silo: {kind: interval([r["per_device"][silo][kind]["accuracy"] for r in reports])
                            for kind in KINDS} for silo in sorted(reports[0]["per_device"])},
        "bytes_up_per_silo_and_round": int(np.mean([b for r in rounds for b in r["bytes_up"].values()])),
        "bytes_down_per_silo_and_round": int(np.mean([b for r in rounds[1:] for b in r["bytes_down"].values()])),
        "seconds_per_round": round(float(np.mean([r["seconds"] for r in rounds])), 2),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    for key in ("mean_accuracy", "mean_macro_f1", "minus_local_only"):
        click.echo(key)
        for kind, value in result[key].items():
            click.echo(f"  {kind:13} {value['mean']:+.3f} ± {value['ci95']:.3f}" if key == "minus_local_only"
                       else f"  {kind:13} {value['mean']:.3f} ± {value['ci95']:.3f}")
    for silo, row in result["per_silo"].items():
        click.echo(f"{silo}: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in row.items()))
    for key in ("bytes_up_per_silo_and_round", "bytes_down_per_silo_and_round", "seconds_per_round"):
        click.echo(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
