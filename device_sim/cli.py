"""Command line of the device simulator: `python -m device_sim --help`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow 2.14 logs CUDA-plugin noise at ERROR

from device_sim.backends import NAMES as BACKENDS  # noqa: E402
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


def _events(values: tuple[str, ...]) -> dict:
    """ROUND:COUNT pairs -> {round: count}."""
    events = {}
    for value in values:
        try:
            number, count = (int(x) for x in value.split(":"))
        except ValueError as exc:
            raise click.BadParameter(f"expected ROUND:COUNT, got {value!r}") from exc
        events[number] = events.get(number, 0) + count
    return events


def _widths(ctx, param, value: str) -> tuple[int, ...]:
    """"64,128,128" -> (64, 128, 128)."""
    try:
        widths = tuple(int(x) for x in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated layer widths such as 64,128,128, got {value!r}") from exc
    if min(widths) < 1:
        raise click.BadParameter(f"layer widths must be positive, got {value!r}")
    return widths


def _out_dir(ctx, param, value: Path) -> Path:
    if value.exists() and not value.is_dir():
        raise click.BadParameter(f"{value} is a file; give a folder for the report")
    return value


def _model_spec(spec_file: Path | None, ds) -> dict | None:
    """The model spec of a run: the file's, the dataset's example model (breast-cancer), or None (the activity
    model); SpecError (a ValueError) names what is wrong."""
    from device_sim import breast_cancer
    from sdk.model_spec import ModelSpec, SpecError

    if spec_file is not None:
        try:
            spec = json.loads(spec_file.read_text())
        except json.JSONDecodeError as exc:
            raise SpecError(f"{spec_file}: not JSON ({exc})") from exc
        ModelSpec.from_dict(spec)
        return spec
    return breast_cancer.model_spec(ds) if ds.name == "breast-cancer" else None


def _run_fleet(ds, config, out: Path, url: str | None = None, training=None,
               existing_job: tuple[str, str] | None = None) -> None:
    from device_sim.fleet import Fleet
    from device_sim.local_cloud import CloudAdmin
    from device_sim.report import summary_lines, write_report
    from sdk.transport import ServerError, TransportError

    try:
        cloud = CloudAdmin(url, os.environ.get("FEDWEAR_ADMIN_TOKEN", "")).start() if url else None
        report = Fleet(ds, config, out, show_progress=sys.stderr.isatty(), log=click.echo, cloud=cloud,
                       training=training, existing_job=existing_job).run()
    except (ValueError, TimeoutError, TransportError) as exc:
        raise click.ClickException(str(exc)) from exc
    except ServerError as exc:
        raise click.ClickException(f"the service refused: {exc}") from exc
    path = write_report(report, out)
    click.echo("")
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"report: {path}")


@main.command()
@_dataset_options
@click.option("--rounds", type=int, default=None, show_default="30; 20 for feature vectors (breast-cancer)")
@click.option("--devices-per-round", type=int, default=None, help="Default: every active device.")
@click.option("--local-epochs", type=int, default=5, show_default=True, help="Epochs of local training per round.")
@click.option("--personal-epochs", default=30, show_default=True)
@click.option("--coral", default=0.0, show_default=True, help="Weight of the CORAL term in personalisation.")
@click.option("--baseline-epochs", default=40, show_default=True, help="Epochs of local-only and centralised.")
@click.option("--lr", default=0.02, show_default=True)
@click.option("--new-users", type=int, default=None, show_default="3; none for feature vectors (breast-cancer)",
              help="Subjects held out as new users.")
@click.option("--new-user-executions", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Executions a new user personalises on (1 or 2).")
@click.option("--dropout", default=0.0, show_default=True, help="Probability a chosen device drops out.")
@click.option("--stragglers", default=0, show_default=True, help="Devices per round that upload too late.")
@click.option("--leave", multiple=True, metavar="ROUND:COUNT", help="Devices leaving before a round.")
@click.option("--join", multiple=True, metavar="ROUND:COUNT", help="Devices joining before a round.")
@click.option("--faults", default=0.0, show_default=True, help="Probability a request fails or is duplicated.")
@click.option("--round-timeout", default=120.0, show_default=True, help="Seconds before a round's deadline.")
@click.option("--engine", type=click.Choice(["encrypted", "plaintext", "tff"]), default="encrypted", show_default=True,
              help="tff: plaintext FedAvg in TensorFlow Federated's simulation runtime.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, show_default="threads; silos for breast-cancer",
              help="Where the virtual devices run: threads of this process, one process per core, a process per "
              "device for the whole run (silos), or Ray.")
@click.option("--ray-address", default=None, help="A Ray cluster to run the devices on (with --backend ray); "
              "default: a local Ray instance on loopback.")
@click.option("--precompute/--no-precompute", default=True, show_default=True,
              help="Devices compute their encryption randomisers for all their rounds ahead (as while charging).")
@click.option("--randomiser", type=click.Choice(["standard", "short-exponent"]), default="short-exponent",
              show_default=True)
@click.option("--conv-filters", default="32,64", show_default=True, callback=_widths,
              help="Widths of the convolutional layers, input side first (their count is the depth).")
@click.option("--dense-units", default=64, show_default=True, help="Width of the dense feature layer.")
@click.option("--train-overlap", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Cut the training recordings into windows overlapping by this fraction (e.g. 0.8); "
              "test windows keep the dataset's 0.5.")
@click.option("--subjects", default=8, show_default=True, help="Synthetic subjects.")
@click.option("--silos", type=click.IntRange(2, 10), default=None, show_default="3",
              help="breast-cancer: hospitals (silos), each a client in its own process.")
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A model spec (JSON, docs/your-own-model.md) instead of the dataset's default model.")
@click.option("--int8", is_flag=True, help="Also export the final global model as an int8 inference model and "
              "score it beside the float one on the same test windows (accuracy, latency per window).")
@click.option("--dp-epsilon", type=click.FloatRange(0, min_open=True), default=None,
              help="Client-side differential privacy: calibrate the noise so that the run's rounds spend this "
              "epsilon (RDP accountant, no amplification by sampling; docs/privacy.md).")
@click.option("--dp-delta", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=1e-5,
              show_default=True, help="The delta of --dp-epsilon.")
@click.option("--dp-clip", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="L2 norm each device clips its update to under --dp-epsilon.")
@click.option("--min-devices", type=click.IntRange(2), default=None, show_default="2; with --dp-epsilon the "
              "devices per round", help="Contributions a round needs; under --dp-epsilon also the devices whose "
              "noise together makes the round's noise (all must be honest).")
@click.option("--subsums", type=click.IntRange(1, 64), default=None, show_default="4",
              help="Sub-sums the key service decrypts each round in, each range-checked apart: more keep a crafted "
              "contribution from spoiling the whole round, fewer cost less decryption (the job setting `subsums`).")
@click.option("--seed", default=0, show_default=True)
@click.option("--url", default=None, help="A running aggregation service (admin token: FEDWEAR_ADMIN_TOKEN); "
              "default: start one and a key service locally.")
@click.option("--job", "job_id", default=None, help="Join this job on --url (made with `python -m cloud admin "
              "create-job`) instead of creating one; needs --token.")
@click.option("--token", "enrolment_token", default=None, help="Enrolment token of --job (max uses: the devices).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/run"), show_default=True, callback=_out_dir)
def run(dataset, data, device, download, sha256, rounds, devices_per_round, local_epochs, personal_epochs, coral,
        baseline_epochs, lr, new_users, new_user_executions, dropout, stragglers, leave, join, faults,
        round_timeout, engine, backend, ray_address, precompute, randomiser, conv_filters, dense_units,
        train_overlap, subjects, silos, spec_file, int8, dp_epsilon, dp_delta, dp_clip, min_devices, subsums, seed, url,
        job_id, enrolment_token, out):
    """A fleet of virtual devices trains under encryption against real cloud processes, then a report.

    Each run makes a new job (its devices are kept in OUT/devices/JOB_ID), or joins one with --job.
    """
    from cloud.har_model import ModelConfig
    from device_sim.fleet import FleetConfig

    if (job_id is None) != (enrolment_token is None) or (job_id and not url):
        raise click.UsageError("--job and --token go together, with the --url of the service that holds the job")
    if job_id and engine != "encrypted":
        raise click.UsageError("--job joins a job of a running service: only with --engine encrypted")

    name = dataset or ("sp-sw-har" if data else "synthetic")
    model = {"conv_filters": conv_filters, "dense_units": dense_units}
    try:
        if silos is not None and name != "breast-cancer":
            raise click.UsageError("--silos sets the hospitals of --dataset breast-cancer")
        ds = load_dataset(name, data, device, download, sha256, subjects=subjects, seed=seed, silos=silos or 3)
        training = None if train_overlap is None else load_dataset(
            name, data, device, download, sha256, subjects=subjects, seed=seed, show_progress=False,
            overlap=train_overlap)
        spec = _model_spec(spec_file, ds)
        if spec is None:
            ModelConfig(window_length=ds.spec.length, **model)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    tabular = ds.spec is None  # feature vectors: a few silos with more data each, no held-out silo
    backend = backend or ("silos" if name == "breast-cancer" else "threads")
    new_users = (0 if tabular else 3) if new_users is None else new_users
    rounds = (20 if tabular else 30) if rounds is None else rounds
    if min_devices is None:
        training_devices = len(ds.catalogue) - new_users - sum(_events(join).values())
        min_devices = min(devices_per_round or training_devices, training_devices) if dp_epsilon else 2
    privacy = None
    if dp_epsilon is not None:
        from cloud.privacy_budget import calibrate

        privacy = {"clip_norm": dp_clip, "noise_multiplier": calibrate(dp_epsilon, rounds, dp_delta), "delta": dp_delta}
    config = FleetConfig(rounds=rounds, devices_per_round=devices_per_round, local_epochs=local_epochs,
                         personal_epochs=personal_epochs, coral=coral, baseline_epochs=baseline_epochs, lr=lr,
                         new_users=new_users, new_user_executions=new_user_executions, dropout=dropout,
                         stragglers=stragglers, leave=_events(leave),
                         join=_events(join), faults=faults, round_timeout_s=round_timeout, engine=engine,
                         backend=backend, ray_address=ray_address, precompute=precompute, randomiser=randomiser,
                         model=model, spec=spec, int8=int8, seed=seed, min_devices=min_devices, privacy=privacy,
                         subsums=subsums)
    _run_fleet(ds, config, out, url, training, (job_id, enrolment_token) if job_id else None)


@main.command()
@_dataset_options
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True,
              help="Rotations (each subject a new wearer once per seed).")
@click.option("--held-out", type=click.IntRange(1), default=3, show_default=True,
              help="New wearers per fold; the other subjects train the federation.")
@click.option("--rounds", type=click.IntRange(1), default=30, show_default=True)
@click.option("--local-epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--personal-epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--baseline-epochs", type=click.IntRange(1), default=40, show_default=True,
              help="Epochs of local-only and centralised.")
@click.option("--engine", type=click.Choice(["plaintext", "encrypted"]), default="plaintext", show_default=True,
              help="How each fold's federation trains (the same FedAvg; encrypted is much slower).")
@click.option("--server-optimiser", type=click.Choice(["fedavg", "momentum", "fedadam"]), default="fedavg",
              show_default=True, help="Plaintext engine: how the mean update moves the global model.")
@click.option("--train-overlap", type=click.FloatRange(0, 1, max_open=True), default=0.8, show_default=True,
              help="Every model trains on the recordings cut into windows overlapping by this fraction; the tests "
                   "keep the dataset's windows.")
@click.option("--subjects", default=8, show_default=True, help="Synthetic subjects.")
@click.option("--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default="the machine's cores",
              help="Folds run at once, each in a process of its own.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/curve"), show_default=True,
              callback=_out_dir, help="Results; folds kept in OUT/folds are skipped when run again.")
def curve(dataset, data, device, download, sha256, seeds, held_out, rounds, local_epochs, personal_epochs,
          baseline_epochs, engine, server_optimiser, train_overlap, subjects, jobs, out):
    """The label-efficiency curve: accuracy of a new wearer after k = 0, 1, 2, 3 and all labelled executions
    (local-only, personalised, global), leave-HELD-OUT-out over every subject and seed, with 95% bootstrap
    intervals over subjects; writes OUT/curve.json, curve.md and curve.png."""
    from device_sim.curve import CurveConfig, run_folds, summarise
    from device_sim.curve_report import table, write

    name = dataset or ("sp-sw-har" if data else "synthetic")
    config = CurveConfig(seeds=seeds, held_out=held_out, rounds=rounds, local_epochs=local_epochs,
                         personal_epochs=personal_epochs, baseline_epochs=baseline_epochs, engine=engine,
                         server_optimiser=server_optimiser, train_overlap=train_overlap)
    try:
        ds = load_dataset(name, data, device, download, sha256, subjects=subjects)
        if ds.spec is None:
            raise ValueError(f"{name} holds feature vectors in no order: the curve needs recordings of executions")
        training = ds if train_overlap == ds.spec.overlap else load_dataset(
            name, data, device, download, sha256, subjects=subjects, show_progress=False, overlap=train_overlap)
        folds = run_folds(ds, config, out, show_progress=sys.stderr.isatty(), log=click.echo, jobs=jobs,
                          training=training)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    result = summarise(folds, config)
    path = write(result, out)
    click.echo(table(result))
    click.echo(f"curve: {path}")


@main.command("export-bundle")
@_dataset_options
@click.option("--subjects", default=8, show_default=True, help="Synthetic subjects.")
@click.option("--conv-filters", default="32,64", show_default=True, callback=_widths,
              help="Widths of the convolutional layers, input side first.")
@click.option("--dense-units", default=64, show_default=True, help="Width of the dense feature layer.")
@click.option("--seed", default=0, show_default=True, help="Seed of the initial weights.")
@click.option("--out", type=click.Path(path_type=Path), required=True, callback=_out_dir,
              help="Folder for model.tflite and manifest.json.")
def export_bundle(dataset, data, device, download, sha256, subjects, conv_filters, dense_units, seed, out):
    """A new model's bundle for a job (`python -m cloud admin create-job --bundle OUT`).

    The window length and the label names come from the dataset, the normalisation from its windows.
    """
    from device_sim.dataset import pooled
    from device_sim.initial_bundle import export_initial_bundle

    name = dataset or ("sp-sw-har" if data else "synthetic")
    try:
        ds = load_dataset(name, data, device, download, sha256, subjects=subjects, seed=seed)
        windows, _ = pooled(ds.devices)
        spec = export_initial_bundle(out, windows, list(ds.label_names), seed, conv_filters=conv_filters,
                                     dense_units=dense_units)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    labels = ", ".join(f"{i}={label}" for i, label in enumerate(ds.label_names))
    click.echo(f"{out}: model.tflite and manifest.json for {spec.input.shape[0]}-sample windows of "
               f"{spec.input.shape[1]} channels; labels {labels}")


def demo_config(rounds: int = 8):
    """The demo's fleet: short, a few minutes on 2 cores."""
    from device_sim.fleet import FleetConfig

    return FleetConfig(rounds=rounds, local_epochs=2, new_users=2, personal_epochs=20, baseline_epochs=20)


@main.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="sp-sw-har folder; synthetic data when left out.")
@click.option("--rounds", default=8, show_default=True)
@click.option("--subjects", default=10, show_default=True, help="Synthetic wearers (2 of them new users).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True, callback=_out_dir)
def demo(data, rounds, subjects, out):
    """A short fleet run (a few minutes): synthetic wearers unless --data is given. Run it again at will:
    every run makes a new job in OUT's local services."""
    try:
        ds = load_dataset("sp-sw-har" if data else "synthetic", data, subjects=subjects)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    _run_fleet(ds, demo_config(rounds), out)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
def new(directory):
    """Write a new project into DIRECTORY: a model spec, a data loader and a job config that run as they are
    (scikit-learn's breast-cancer data at three sites); then `python -m device_sim run-project DIRECTORY`."""
    from device_sim.project import new_project

    try:
        written = new_project(directory)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: edit {directory / 'data.py'} and {directory / 'model.json'}, then "
               f"python -m device_sim run-project {directory}")


@main.command("run-project")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rounds", type=int, default=None, help="Override job.json's rounds.")
@click.option("--seed", type=int, default=None, help="Override job.json's seed (the data's shuffling too).")
@click.option("--out", type=click.Path(path_type=Path), default=None, callback=lambda c, p, v: v and _out_dir(c, p, v),
              help="Report folder (default: DIRECTORY/out).")
def run_project(directory, rounds, seed, out):
    """Run a project's fleet (made with `python -m device_sim new`): its devices train its model under
    encryption against local services, then the report."""
    import dataclasses

    from device_sim.project import load_project

    try:
        ds, config = load_project(directory, seed)
    except (DataError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if rounds is not None:
        config = dataclasses.replace(config, rounds=rounds)
    _run_fleet(ds, config, out or directory / "out")
