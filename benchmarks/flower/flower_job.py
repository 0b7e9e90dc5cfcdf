"""The peer benchmark's job in Flower 1.42: FedAvg or SecAgg+, through Flower's own API.

Runs in Flower's own virtual environment (benchmarks/flower/requirements.txt),
started by benchmarks/compare_peers.py, which hands it the job through files
in a work directory:

- job.json: rounds, hyper-parameters, seed, the clients' data files (one
  .npz each: training windows and labels), the bundle directory, the
  initial shared weights (.npy) and the simulation's CPUs.

Each Flower client trains exactly as a FedWear device does: FedWear's own
TFLite trainer and local update (sdk/, no TensorFlow) on the same bundle,
partition, hyper-parameters and per-round seed, and weighs its result by the
same rule. Flower's simulation engine runs the clients on Ray actors, kept on
loopback. Written back into the run directory: result.json (per round: seconds
from configuring the round to its aggregate), bytes.jsonl (per client and
message: bytes received and sent, serialised as Flower serialises them),
train_times.jsonl (each local training's start and end) and final.npy (the
final shared weights).

    python flower_job.py RUN_DIR fedavg|secaggplus [--num-shares N --threshold T]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
# Ray turns a node address of 127.0.0.1 into the machine's own address unless clusters are off.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.client.mod import secaggplus_mod  # noqa: E402
from flwr.common import Context, Message, ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402
from flwr.common.serde import recorddict_to_proto  # noqa: E402
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from sdk.client import local_update  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.trainer import TFLiteTrainer  # noqa: E402


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:  # one short line per write: appends from several processes stay whole
        f.write(json.dumps(row) + "\n")


class Device(NumPyClient):
    """One client: FedWear's trainer and local update on one partition (kept loaded, as a device keeps it)."""

    loaded: dict[int, tuple] = {}  # per process: partition -> (windows, labels, trainer)

    def __init__(self, job: dict, work: Path, partition: int) -> None:
        self.job, self.work, self.partition = job, work, partition
        if partition not in self.loaded:
            data = np.load(job["clients"][partition])
            self.loaded[partition] = data["windows"], data["labels"], TFLiteTrainer(job["bundle"])
        self.windows, self.labels, self.trainer = self.loaded[partition]

    def fit(self, parameters, config):
        server_round = int(config["server_round"])
        self.trainer.set_weights(parameters[0], "shared")
        started = time.time()
        delta = local_update(self.trainer, self.windows, self.labels, self.job["hyperparameters"],
                             self.job["seed"] * 1000 + server_round)
        _append(self.work / "train_times.jsonl", {"round": server_round, "client": self.partition,
                                                  "start": started, "end": time.time()})
        return [parameters[0] + delta], CryptoParams().weight_of(len(self.labels)), {}


def byte_counter(work: Path):
    """A client mod: bytes of each message the client receives and sends, as Flower serialises them."""

    def mod(message: Message, context: Context, call_next) -> Message:
        reply = call_next(message, context)
        _append(work / "bytes.jsonl", {
            "client": int(context.node_config["partition-id"]), "round": message.metadata.group_id,
            "type": message.metadata.message_type,
            "down": recorddict_to_proto(message.content).ByteSize(),
            "up": recorddict_to_proto(reply.content).ByteSize() if reply.has_content() else 0,
        })
        return reply

    return mod


class TimedFedAvg(FedAvg):
    """FedAvg that notes when each round is configured and aggregated, and keeps the last weights."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.started, self.finished, self.final = {}, {}, None

    def configure_fit(self, server_round, parameters, client_manager):
        self.started[server_round] = time.perf_counter()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        if failures:
            raise RuntimeError(f"round {server_round}: {len(failures)} clients failed: {failures[:1]}")
        self.finished[server_round] = time.perf_counter()
        self.final = parameters_to_ndarrays(parameters)[0]
        return parameters, metrics


def main() -> None:
    work, mode = Path(sys.argv[1]), sys.argv[2]
    options = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    job = json.loads((work / "job.json").read_text())
    clients = len(job["clients"])
    initial = np.load(job["initial"])
    strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients,
                           min_available_clients=clients, initial_parameters=ndarrays_to_parameters([initial]),
                           on_fit_config_fn=lambda r: {"server_round": r})
    server = ServerApp()

    @server.main()
    def _run(grid, context: Context) -> None:
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=job["rounds"]), strategy=strategy)
        if mode == "secaggplus":
            workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
                num_shares=int(options["--num-shares"]), reconstruction_threshold=int(options["--threshold"]),
                max_weight=CryptoParams.max_weight))
        else:
            workflow = DefaultWorkflow()
        workflow(grid, legacy)

    mods = [byte_counter(work)] + ([secaggplus_mod] if mode == "secaggplus" else [])
    client = ClientApp(client_fn=lambda context: Device(job, work, int(context.node_config["partition-id"]))
                       .to_client(), mods=mods)
    cpus = job["cpus"]
    run_simulation(server_app=server, client_app=client, num_supernodes=clients, backend_config={
        "client_resources": {"num_cpus": 1, "num_gpus": 0},
        "init_args": {"num_cpus": cpus, "_node_ip_address": "127.0.0.1", "include_dashboard": False,
                      "log_to_driver": False}})
    rounds = range(1, job["rounds"] + 1)
    missing = [r for r in rounds if r not in strategy.finished]
    if missing or strategy.final is None:
        raise SystemExit(f"Flower finished without aggregating rounds {missing}")
    np.save(work / "final.npy", strategy.final.astype(np.float32))
    (work / "result.json").write_text(json.dumps({
        "round_seconds": [strategy.finished[r] - strategy.started[r] for r in rounds]}))


if __name__ == "__main__":
    main()
