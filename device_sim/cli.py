"""Command line of the device simulator: `python -m device_sim --help`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from device_sim.dataset import DataError  # noqa: E402
from device_sim.datasets import NAMES, load_dataset  # noqa: E402


def _dataset_options(command):
    options = [
        click.option("--dataset", type=click.Choice(NAMES), default=None,
                     help="Which dataset (default: sp-sw-har with --data, else synthetic)."),
        click.option("--data", "data", type=click.Path(path_type=Path), default=None,
                     help="Dataset folder (or set FEDWEAR_SPSWHAR / FEDWEAR_UCIHAR)."),
        click.option("--device", type=click.Choice(["watch", "phone", "both", "waist"]),
                     default="watch", show_default=True, help="Which sensor's recordings."),
        click.option("--download", is_flag=True, help="Fetch the public dataset into the cache."),
        click.option("--sha256", default=None, help="Expected SHA-256 of the downloaded archive."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def main() -> None:
    """FedWear device simulator."""


def _report(ds, folds: int, config, as_json: bool, out: Path | None) -> None:
    from device_sim.baseline import run_baseline

    result = run_baseline(ds, folds, config, show_progress=sys.stderr.isatty())
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "per_device"}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{ds.name}: {len(ds.devices)} devices, {folds} subject folds, {config.epochs} epochs")
    click.echo(f"{'':8}{'accuracy':>10}{'median':>10}{'macro-F1':>10}")
    for engine in ("keras", "tflite"):
        click.echo(
            f"{engine:8}{summary[f'accuracy_{engine}']:>10.3f}"
            f"{summary[f'median_accuracy_{engine}']:>10.3f}{summary[f'macro_f1_{engine}']:>10.3f}"
        )
    if out:
        click.echo(f"report: {out}")


@main.command()
@_dataset_options
@click.option("--folds", default=3, show_default=True, help="Subject folds (held-out groups).")
@click.option("--epochs", default=40, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=0.02, show_default=True)
@click.option("--momentum", default=0.9, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of a table.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the full result (per device) to this JSON file.")
def baseline(dataset, data, device, download, sha256, folds, epochs, batch_size, lr, momentum,
             seed, as_json, out):
    """Centralised training on pooled subjects, scored on held-out subjects (Keras and TFLite)."""
    from device_sim.baseline import TrainingConfig

    name = dataset or ("sp-sw-har" if data else "synthetic")
    try:
        ds = load_dataset(name, data, device, download, sha256, seed=seed, show_progress=not as_json)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    config = TrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, seed=seed)
    _report(ds, folds, config, as_json, out)


@main.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="sp-sw-har folder; synthetic data when left out.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True)
def demo(data, out):
    """A short run: the centralised baseline on synthetic (or given) data."""
    from device_sim.baseline import TrainingConfig

    try:
        ds = load_dataset("sp-sw-har" if data else "synthetic", data)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    _report(ds, 2, TrainingConfig(epochs=15), False, out / "baseline.json")
