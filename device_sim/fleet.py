"""The fleet simulator: virtual devices, each a real SDK client with one subject's data.

Against real aggregation and key-service processes (started here unless a
URL is given), the fleet runs training rounds with optional dropout,
stragglers, devices leaving and joining, and injected network faults; then it
evaluates local-only, global federated, personalised and centralised models
per the evaluation protocol, and new users before and after personalising.
Personalised is what a device does by default: the personal layers, the blend
of heads its own labelled executions choose, and activity-sequence decoding
with the federation's transition table; every model is scored with and
without that decoding.

Each round the active devices check in, in random order, and the service
selects the round's participants (over-selecting); only those train. The
fleet learns of the published model through the plan's long-poll.
"""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np

from cloud import privacy_budget, server_optimiser
from device_sim.backends import Backend, DeviceTask, FaultyTransport, make_backend
from device_sim.dataset import Dataset, DeviceData, pooled
from device_sim.initial_bundle import export_initial_bundle
from device_sim.local_cloud import CloudAdmin, LocalCloud
from device_sim.partitions import new_users, same_executions, within_subject
from device_sim.progress import Progress
from sdk.client import ACTIVE_JOB, FedWearClient, local_update
from sdk.crypto.params import CryptoParams
from sdk.decoding import TransitionModel, decode, transition_counts
from sdk.metrics import scores
from sdk.model_spec import ModelSpec
from sdk.personalisation import HeadChoice, blend, choose_head, personalise
from sdk.privacy import PrivacySettings, prepare_update
from sdk.trainer import TFLiteTrainer
from sdk.transport import HttpTransport

MONITORED_DEVICES = 50  # per-round global accuracy: on every device's test windows, or this many in larger fleets
LAZY_SPLITS_KEPT = 64  # devices of a population made on demand whose windows stay in memory
CHECK_IN_BATCH = 16  # devices checking in at once; a round's check-ins stop after the batch the service turned one away


@dataclass
class FleetConfig:
    """What a fleet run does; faults default to none."""

    rounds: int = 30
    devices_per_round: int | None = None  # the round's max_devices and target; None: every active device
    over_selection: float = 1.3  # the service selects this many devices per targeted one
    local_epochs: int = 5
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    personal_epochs: int = 30
    coral: float = 0.0  # weight of the CORAL term in personalisation
    baseline_epochs: int = 40
    new_users: int = 3
    new_user_subjects: tuple = ()  # these subjects as the new users (instead of `new_users` drawn by the seed)
    new_user_executions: int = 2
    min_devices: int = 2
    subsums: int | None = None  # sub-sums each round is decrypted in (None: the job's default, 4)
    round_timeout_s: float = 120.0
    dropout: float = 0.0
    stragglers: int = 0
    leave: dict = field(default_factory=dict)  # round -> devices leaving before it
    join: dict = field(default_factory=dict)  # round -> devices joining before it
    faults: float = 0.0  # probability that a request fails or is sent twice
    randomiser: str = "short-exponent"
    precompute: bool = True  # a device computes its randomisers for all its rounds ahead, before its first
    model: dict = field(default_factory=dict)  # ModelConfig overrides, e.g. {"conv_filters": (64, 128, 128)}
    spec: dict | None = None  # a model spec (JSON form, sdk.model_spec) instead of the activity model
    engine: str = "encrypted"  # "plaintext": FedAvg in numpy; "tff": FedAvg in TensorFlow Federated
    server_optimiser: str = "fedavg"  # plaintext engine: fedavg, momentum or fedadam (cloud.server_optimiser)
    server_settings: dict = field(default_factory=dict)  # its settings, e.g. {"lr": 1.0, "beta": 0.9}
    int8: bool = False  # also score the final global model as the bundle's int8 inference model
    backend: str = "threads"  # where the encrypted engine's devices run: threads, processes or ray
    ray_address: str | None = None  # a Ray cluster (default: a local Ray instance on loopback)
    seed: int = 0
    privacy: dict | None = None  # {clip_norm, noise_multiplier, delta}: client-side DP (sdk.privacy)
    transition_counts: bool = True  # uploads also carry activity-transition counts (a window classifier, no DP)


def _rounded_mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 4) if known else None


def _window_subsets(test: DeviceData) -> dict[str, np.ndarray]:
    """Masks of the test windows scored apart: at a label change, and near ties when label shares are known."""
    subsets = {"at_label_change": test.at_label_change()}
    near_tie = test.near_tie()
    if near_tie is not None:
        subsets["near_tie"] = near_tie
    return subsets


def _scores(data: DeviceData, subsets: dict[str, np.ndarray], predicted: np.ndarray, num_classes: int) -> dict:
    """Accuracy and macro-F1, and accuracy inside and outside each subset of the windows."""
    right = predicted == data.labels

    def accuracy(mask: np.ndarray) -> float | None:
        return float(np.mean(right[mask])) if mask.any() else None

    return {**scores(data.labels, predicted, num_classes),
            "subsets": {name: {"inside": accuracy(m), "outside": accuracy(~m)} for name, m in subsets.items()}}


def _scored(data: DeviceData, subsets: dict[str, np.ndarray], probs: np.ndarray, num_classes: int,
            transitions: TransitionModel | None) -> dict:
    """``_scores`` of the most probable classes, and under ``decoded`` the same after decoding (if a table)."""
    out = _scores(data, subsets, np.argmax(probs, axis=1), num_classes)
    if transitions is not None:
        out["decoded"] = _scores(data, subsets, np.argmax(decode(probs, data.execution, transitions), axis=1),
                                 num_classes)
    return out


def federation_transitions(devices: list[DeviceData], num_classes: int) -> TransitionModel:
    """The transition table of the federation's devices: their summed counts (what a job with transition
    counts publishes when they count windows cut as they predict), from ``devices``' labelled windows."""
    return TransitionModel.from_counts(sum(transition_counts(d.labels, d.execution, num_classes) for d in devices))


class Participant:
    """A virtual device: one subject's windows, split for training and testing, loaded when asked for.

    A population made on demand makes them again after a while (the last few
    stay in memory), so a large fleet holds only the devices it works with.
    """

    def __init__(self, device_id: str, subject: str,
                 split: Callable[[], tuple[DeviceData, DeviceData, DeviceData]]) -> None:
        self.device_id, self.subject, self._split = device_id, subject, split

    @property
    def data(self) -> DeviceData:
        return self._split()[0]

    @property
    def train(self) -> DeviceData:
        return self._split()[1]

    @property
    def test(self) -> DeviceData:
        return self._split()[2]


class Fleet:
    """One simulation run; `run()` returns the report dictionary."""

    def __init__(self, dataset: Dataset, config: FleetConfig, out_dir: Path, show_progress: bool = True,
                 log=print, cloud: CloudAdmin | None = None, training: Dataset | None = None,
                 existing_job: tuple[str, str] | None = None) -> None:
        """``training``: the same recordings cut into denser windows for training; tests keep ``dataset``'s.

        ``existing_job``: (job id, enrolment token) of a job an operator made on ``cloud``; the fleet
        joins it instead of creating one, and trains with its bundle.
        """
        self.dataset, self.config, self.out = dataset, config, Path(out_dir)
        self.training = training or dataset
        if self.training.input_spec() != dataset.input_spec() or self.training.label_names != dataset.label_names:
            raise ValueError("training windows must have the test windows' length and labels")
        if config.server_optimiser != "fedavg" and config.engine != "plaintext":
            raise ValueError(f"server optimiser {config.server_optimiser}: the plaintext engine only (the service and "
                             "TFF apply FedAvg)")
        self.show_progress, self.log = show_progress, log
        self.rng = np.random.default_rng(config.seed)
        subjects = dataset.subjects
        if config.new_user_subjects:
            self.new_user_subjects = sorted(config.new_user_subjects)
            train_subjects = [s for s in subjects if s not in self.new_user_subjects]
        else:
            train_subjects, self.new_user_subjects = (
                new_users(subjects, config.new_users, config.seed) if config.new_users else (subjects, []))
        dense_index = {device_id: i for i, (device_id, _) in enumerate(self.training.catalogue)}
        self._splits = lru_cache(maxsize=LAZY_SPLITS_KEPT if dataset.lazy else None)(self._split)
        self.participants, self.newcomers = [], []
        for i, (device_id, subject) in enumerate(dataset.catalogue):
            newcomer = subject in self.new_user_subjects
            if newcomer or subject in train_subjects:
                split = partial(self._splits, i, dense_index[device_id], newcomer)
                (self.newcomers if newcomer else self.participants).append(Participant(device_id, subject, split))
        join_total = sum(config.join.values())
        self.active = self.participants[: len(self.participants) - join_total]
        self.waiting = self.participants[len(self.participants) - join_total:]
        self.cloud: CloudAdmin | None = cloud
        self.existing_job = existing_job
        self.job_id: str | None = None
        self.backend: Backend | None = None
        self._prepared: set[str] = set()
        self._attested = False  # the job requires attestation and the fleet registers its devices' keys
        self._keys_registered: set[str] = set()
        self._server_state: dict = {}
        self.rounds: list[dict] = []
        self.published_transitions: np.ndarray | None = None  # the table of the last version the job published

    def _split(self, index: int, dense_index: int, newcomer: bool) -> tuple[DeviceData, DeviceData, DeviceData]:
        """A device's windows, its training part (cut from the training windowing) and its test part."""
        device = self.dataset.devices[index]
        train, test = self._first_executions(device) if newcomer else within_subject(device)
        return device, same_executions(self.training.devices[dense_index], train), test

    def _first_executions(self, device: DeviceData) -> tuple[DeviceData, DeviceData]:
        first = device.executions[: self.config.new_user_executions]
        mask = np.isin(device.execution, first)
        return device.select(mask), device.select(~mask)

    # Set-up ------------------------------------------------------------------
    def _export_initial_bundle(self) -> Path:
        bundle = self.out / "bundle"
        self.model_spec = export_initial_bundle(bundle, (p.train.windows for p in self.participants),
                                                list(self.dataset.label_names), self.config.seed,
                                                self.dataset.input_spec().shape, self.config.spec, **self.config.model)
        return bundle

    def _job_config(self) -> dict:
        c = self.config
        per_round = c.devices_per_round or len(self.participants)
        return {
            "name": f"{self.dataset.name} fleet", "rounds": c.rounds, "min_devices": c.min_devices,
            "max_devices": max(c.min_devices, per_round), "over_selection": c.over_selection,
            "round_timeout_s": c.round_timeout_s,
            "on_deadline": "extend", "max_extensions": 5,
            "hyperparameters": {"epochs": c.local_epochs, "batch_size": c.batch_size, "lr": c.lr,
                                "momentum": c.momentum, "personal_epochs": c.personal_epochs},
            "crypto": {"max_contributors": max(c.min_devices, per_round, 2), "max_weight": CryptoParams.max_weight,
                       "randomiser": c.randomiser, "clip": self._codec_clip()},
            "privacy": c.privacy,
            "transition_counts": self._sums_transitions(self.model_spec),
            **({"subsums": c.subsums} if c.subsums else {}),
        }

    def _sums_transitions(self, spec: ModelSpec) -> bool:
        """Whether the job sums its devices' transition counts: asked for, a window classifier, no privacy."""
        return self.config.transition_counts and self.config.privacy is None and spec.classifies_windows

    def _codec_clip(self) -> float:
        """The codec's clip: 1, or under privacy the room its noise needs (sdk.privacy.PrivacySettings)."""
        if self.config.privacy is None:
            return CryptoParams.clip
        return PrivacySettings.from_dict(self.config.privacy).required_clip(self.config.min_devices)

    def device_dir(self, participant: Participant) -> Path:
        """A device's storage: one per job, so that a new run never reuses another job's credentials."""
        return (self.out / "devices" / self.job_id / participant.device_id).resolve()

    def _client(self, participant: Participant, token: str, index: int) -> FedWearClient:
        transport = (FaultyTransport(self.cloud.url, self.config.faults, self.config.seed + index)
                     if self.config.faults else HttpTransport(self.cloud.url))
        return FedWearClient(self.cloud.url, token, self.device_dir(participant),
                             transport=transport, name=participant.device_id)

    def _observer(self, token: str) -> FedWearClient:
        """The first device, as the fleet sees it: it reads plans and published weights through it."""
        return self._client(self.participants[0], token, 0)

    def _join_existing_job(self) -> Path:
        """Enrols the first device in the operator's job; returns the job's bundle as that device holds it."""
        self.job_id, token = self.existing_job
        first = self._observer(token)
        plan = first.sync()
        if plan["job_id"] != self.job_id:
            raise ValueError(f"the enrolment token belongs to job {plan['job_id']}, not {self.job_id}")
        if plan["job_status"] != "running":
            raise ValueError(f"job {self.job_id} is {plan['job_status']}: it opens no more rounds to join")
        manifest, data = first.trainer.manifest, self.dataset.input_spec()
        if (manifest.input.shape, manifest.label_names) != (data.shape, tuple(self.dataset.label_names)):
            raise ValueError(f"job {self.job_id}'s bundle takes {manifest.input.kind} of shape "
                             f"{list(manifest.input.shape)} labelled {', '.join(manifest.label_names)}; the data has "
                             f"{data.kind} of shape {list(data.shape)} labelled {', '.join(self.dataset.label_names)}")
        return first.storage / "bundle"

    # Rounds ---------------------------------------------------------------------
    def _membership_changes(self, number: int) -> list[str]:
        events = []
        for _ in range(self.config.leave.get(number, 0)):
            if len(self.active) > self.config.min_devices:
                gone = self.active.pop(int(self.rng.integers(len(self.active))))
                events.append(f"{gone.device_id} left")
        for _ in range(self.config.join.get(number, 0)):
            if self.waiting:
                newcomer = self.waiting.pop(0)
                self.active.append(newcomer)
                events.append(f"{newcomer.device_id} joined")
        return events

    def _sample(self) -> list[Participant]:
        """This round's devices where no service selects them (plaintext engine): `devices_per_round` of the
        active ones, at random."""
        c = self.config
        chosen = list(self.active)
        if c.devices_per_round and c.devices_per_round < len(chosen):
            chosen = [chosen[i] for i in sorted(self.rng.choice(len(chosen), c.devices_per_round, replace=False))]
        return chosen

    def _troubles(self, chosen: list[Participant]) -> tuple[list[Participant], list[Participant], list[Participant]]:
        """The chosen devices as (on time, stragglers, dropped)."""
        c = self.config
        dropped = [p for p in chosen if self.rng.random() < c.dropout]
        # never drop below the minimum the round needs
        while len(chosen) - len(dropped) - c.stragglers < c.min_devices and dropped:
            dropped.pop()
        remaining = [p for p in chosen if p not in dropped]
        stragglers = remaining[: c.stragglers]
        return [p for p in remaining if p not in stragglers], stragglers, dropped

    def _check_in(self, token: str) -> tuple[list[Participant], int]:
        """The active devices check in, in random order, a batch at a time, until the service turns one away;
        (the devices it selected, how many checked in)."""
        order = [self.active[i] for i in self.rng.permutation(len(self.active))]
        index = {p.device_id: i for i, p in enumerate(self.participants)}
        selected, checked_in = [], 0
        with ThreadPoolExecutor(CHECK_IN_BATCH) as pool:
            for start in range(0, len(order), CHECK_IN_BATCH):
                batch = order[start:start + CHECK_IN_BATCH]
                plans = list(pool.map(lambda p: self._client(p, token, index[p.device_id]).check_in(), batch))
                checked_in += len(batch)
                selected += [p for p, plan in zip(batch, plans) if plan["selected"]]
                if not all(plan["selected"] for plan in plans):
                    break
        return selected, checked_in

    def _register_device_keys(self, chosen: list[Participant], token: str) -> None:
        """In a job that requires attestation, the fleet, as the job's operator, registers with the key service
        the keys of chosen devices it has not registered yet (they enrolled at check-in), before they upload."""
        if not self._attested:
            return
        new = [p for p in chosen if p.device_id not in self._keys_registered]
        clients = [self._client(p, token, 0) for p in new]
        self.cloud.register_device_keys(self.job_id, {c.enrol(): c.device_key.public_key() for c in clients})
        self._keys_registered.update(p.device_id for p in new)

    def _task(self, p: Participant, token: str, number: int, late: bool, round_id: int | None = None) -> DeviceTask:
        c = self.config
        fault_seed = zlib.crc32(f"{c.seed}/{p.device_id}/{number}".encode())
        return DeviceTask(p.device_id, str(self.device_dir(p)), self.cloud.url, token, seed=c.seed * 1000 + number,
                          faults=c.faults, fault_seed=fault_seed, late=late, round_id=round_id)

    def _encrypted_round(self, number: int, token: str) -> dict:
        observer = self._observer(token)
        plan = observer.check_in(selects=False)
        version, round_id = plan["model_version"], (plan["round"] or {}).get("id")
        started = time.perf_counter()
        selected, checked_in = self._check_in(token)
        check_in_s = time.perf_counter() - started
        self._register_device_keys(selected, token)
        on_time, stragglers, dropped = self._troubles(selected)
        staged = {p.device_id: self.backend.stage(p.device_id, p.train.windows, p.train.labels, p.train.execution)
                  for p in on_time + stragglers}  # a real device has its data already: not timed
        precompute_s = self._precompute(on_time + stragglers, token, number)
        started = time.perf_counter()
        futures = [self.backend.submit(self._task(p, token, number, p in stragglers, round_id), staged[p.device_id])
                   for p in stragglers + on_time]
        ended = self._wait_for_round(observer, version, round_id)
        known = time.time()
        seconds = check_in_s + time.perf_counter() - started
        results = [f.result() for f in futures[len(stragglers):]] + [f.result() for f in futures[: len(stragglers)]]
        uploaded = [r for r in results[: len(on_time)] if r.outcome.status == "uploaded"]
        outcomes = {r.device_id: r.outcome for r in results}
        server = ({r["model_version"]: r for r in self.cloud.job(self.job_id)["rounds"] if r["status"] == "published"}
                  if self.cloud.admin_token else {})
        return {
            "round": number, "model_version": version, "ended": ended,
            "counted": server.get(version, {}).get("contributors"), "seconds": round(seconds, 2),
            "subsums": len(server.get(version, {}).get("subsums") or []) or None,  # the service decrypted it in
            "checked_in": checked_in, "selected": len(selected), "check_in_s": round(check_in_s, 3),
            "participants": sorted(d for d, o in outcomes.items() if o.status in ("uploaded", "already_uploaded")),
            "dropped": [p.device_id for p in dropped],
            "stragglers": {p.device_id: outcomes[p.device_id].status for p in stragglers},
            "published": ended == "published",
            # the on-time devices' work, first start to last upload; then until the fleet knew the new model
            "devices_s": round(max((r.finished for r in uploaded), default=0)
                               - min((r.started for r in uploaded), default=0), 3),
            "publish_wait_s": round(known - max((r.finished for r in uploaded), default=known), 3),
            "precompute_s": precompute_s,
            "bytes_up": {d: o.bytes_up for d, o in outcomes.items()},
            "processes": {r.device_id: r.pid for r in results},  # the process each device's round ran in
            "bytes_down": {d: o.bytes_down for d, o in outcomes.items()},
            "train_s": round(sum(o.train_s for o in outcomes.values()), 3),
            "crypto_s": round(sum(o.crypto_s for o in outcomes.values()), 3),
            "clipped_fraction": max((o.clipped_fraction for o in outcomes.values()), default=0.0),
            "faults_injected": {r.device_id: r.faults_injected for r in results if r.faults_injected is not None},
        }

    def _precompute(self, chosen: list[Participant], token: str, number: int) -> float:
        """Devices taking part for the first time compute the randomisers of all their remaining rounds
        ahead, as a phone does while it charges; not part of the round's time. Their seconds, summed."""
        fresh = [p for p in chosen if p.device_id not in self._prepared]
        if not self.config.precompute or not fresh:
            return 0.0
        uploads = self.config.rounds - number + 1
        futures = [self.backend.prepare(self._task(p, token, number, late=False), uploads) for p in fresh]
        self._prepared.update(p.device_id for p in fresh)
        return round(sum(f.result() for f in futures), 3)

    def _wait_for_round(self, observer: FedWearClient, version: int, round_id: int | None,
                        timeout: float | None = None) -> str:
        """How the round that trains model `version` ended: published, failed, or job_<status> when the job
        ended without publishing it; learnt through the plan's long-poll. Raises after `timeout` (default:
        the deadline with every extension)."""
        timeout = timeout or self.config.round_timeout_s * 7 + 60
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            plan = observer.wait_for_version(version, end - time.monotonic())
            if plan["model_version"] > version:
                return "published"
            if plan["job_status"] not in ACTIVE_JOB:
                return f"job_{plan['job_status']}"
            if plan["round"] and plan["round"]["id"] != round_id:
                return "failed"
        raise TimeoutError(f"round {round_id} of job {self.job_id} neither published nor failed in {timeout:.0f} s; "
                           f"see `python -m cloud admin job {self.job_id}`")

    def _plaintext_round(self, number: int, trainer: TFLiteTrainer, weights: np.ndarray) -> tuple[dict, np.ndarray]:
        on_time, _, dropped = self._troubles(self._sample())
        job = self._job_config()
        params = CryptoParams(**{k: v for k, v in job["crypto"].items() if k != "randomiser"})
        started = time.perf_counter()
        deltas, sizes = [], []
        for p in on_time:
            trainer.set_weights(weights, "shared")
            delta = local_update(trainer, p.train.windows, p.train.labels, job["hyperparameters"],
                                 self.config.seed * 1000 + number)
            delta, size = prepare_update(job, delta, params, len(p.train))  # as a device does before encrypting
            deltas.append(delta)
            sizes.append(size)
        mean = sum(w * d.astype(np.float64) for w, d in zip(sizes, deltas)) / sum(sizes)
        record = {"round": number, "model_version": number, "seconds": round(time.perf_counter() - started, 2),
                  "participants": [p.device_id for p in on_time], "dropped": [p.device_id for p in dropped],
                  "published": True, "train_s": round(time.perf_counter() - started, 3), "crypto_s": 0.0}
        weights, self._server_state = server_optimiser.apply(self.config.server_optimiser, weights, mean,
                                                             self._server_state, **self.config.server_settings)
        return record, weights

    # Evaluation ------------------------------------------------------------------
    def _evaluator(self, bundle: Path, weights: np.ndarray) -> TFLiteTrainer:
        trainer = TFLiteTrainer(bundle)
        trainer.set_weights(weights, "shared")
        return trainer

    def _global_accuracy(self, trainer: TFLiteTrainer) -> float:
        return float(np.mean([trainer.evaluate(windows, labels)["accuracy"] for windows, labels in self._monitored]))

    def _monitor(self) -> None:
        """The test windows that per-round global accuracy is measured on: every device's, or a sample's."""
        chosen = self.participants
        if len(chosen) > MONITORED_DEVICES:
            picks = np.random.default_rng(self.config.seed).choice(len(chosen), MONITORED_DEVICES, replace=False)
            chosen = [chosen[i] for i in sorted(picks)]
        self._monitored = [(p.test.windows, p.test.labels) for p in chosen]

    def run(self) -> dict:
        """Trains (`train`), then evaluates per the evaluation protocol; returns the report."""
        weights = self.train()
        report = self._evaluate(self.bundle, self.initial_weights, weights, len(self.dataset.label_names))
        if self.config.int8:
            report["int8"] = self._compare_int8(self.bundle, weights)
        return report

    def train(self) -> np.ndarray:
        """Exports the initial bundle and runs the training rounds (recorded in `rounds`); the final weights."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if c.engine == "encrypted" and self.cloud is None:
            self.cloud = LocalCloud(self.out / "cloud").start()
        try:
            if self.existing_job:
                bundle = self.bundle = self._join_existing_job()
                observer = self._observer(self.existing_job[1])
                observer.sync()
                initial = observer.global_weights()
            else:
                bundle = self.bundle = self._export_initial_bundle()
                initial = TFLiteTrainer(bundle).get_weights("shared")
            self.initial_weights = initial
            self._monitor()
            if c.engine == "encrypted":
                self.backend = make_backend(c.backend, c.ray_address, self.out / "silos")
            self.final_weights = self._train_rounds(bundle, initial)
        finally:
            if self.backend is not None:
                self.backend.close()
            if self.cloud is not None:
                self.cloud.stop()
        return self.final_weights

    def _tff_rounds(self, bundle: Path, initial: np.ndarray, evaluator: TFLiteTrainer) -> np.ndarray:
        from device_sim.tff_engine import run_rounds

        c = self.config
        if c.dropout or c.stragglers or c.leave or c.join or c.faults or c.devices_per_round:
            raise ValueError("the tff engine runs every device every round: no dropout, stragglers, churn or faults")
        if c.privacy:
            raise ValueError("the tff engine adds no differential-privacy noise: use the encrypted or plaintext engine")
        manifest = evaluator.manifest
        settings = {"rounds": c.rounds, "epochs": c.local_epochs, "batch_size": c.batch_size, "lr": c.lr,
                    "momentum": c.momentum, "seed": c.seed, "clients": len(self.active),
                    "spec": self.model_spec.to_json_spec()}
        result = run_rounds(initial, [(p.train.windows, p.train.labels) for p in self.active],
                            manifest.norm_mean, manifest.norm_std, settings, self.out / "tff")
        weights = initial
        for number, (weights, seconds) in enumerate(zip(result["weights"], result["seconds"]), start=1):
            evaluator.set_weights(weights, "shared")
            record = {"round": number, "model_version": number, "seconds": round(seconds, 2),
                      "participants": [p.device_id for p in self.active], "published": True,
                      "train_s": round(seconds, 3), "crypto_s": 0.0, "events": [],
                      "global_accuracy": round(self._global_accuracy(evaluator), 4)}
            self.rounds.append(record)
            self.log(f"round {number:>3} (tff): {len(self.active)} devices, "
                     f"global accuracy {record['global_accuracy']:.3f}, {seconds:.1f} s")
        return np.asarray(weights, np.float32)

    def _train_rounds(self, bundle: Path, initial: np.ndarray) -> np.ndarray:
        c = self.config
        weights = initial
        evaluator = self._evaluator(bundle, initial)
        if c.engine == "tff":
            return self._tff_rounds(bundle, initial, evaluator)
        token = None
        if self.existing_job:
            token = self.existing_job[1]
        elif c.engine == "encrypted":
            job = self.cloud.create_job(bundle, self._job_config())
            self.job_id = job["id"]
            token = self.cloud.create_token(job["id"], max_uses=None)  # one token for the whole simulated fleet
            self.log(f"job {self.job_id} on {self.cloud.url}; devices in {self.out / 'devices' / self.job_id}")
        if c.engine == "encrypted":
            self._attested = self.cloud.requires_attestation(self.job_id)
        trainer = TFLiteTrainer(bundle) if c.engine == "plaintext" else None
        with Progress("rounds", total=c.rounds, enabled=self.show_progress) as progress:
            for number in range(1, c.rounds + 1):
                events = self._membership_changes(number)
                if c.engine == "encrypted":
                    record = self._encrypted_round(number, token)
                    if record["ended"].startswith("job_"):
                        self.log(f"job {self.job_id} is {record['ended'][4:]}: no more rounds")
                        break
                    if record["published"]:
                        observer = self._observer(token)
                        observer.sync()
                        weights = observer.global_weights()
                        self.published_transitions = observer.transition_table
                else:
                    record, weights = self._plaintext_round(number, trainer, weights)
                evaluator.set_weights(weights, "shared")
                record["events"] = events
                record["global_accuracy"] = round(self._global_accuracy(evaluator), 4)
                self.rounds.append(record)
                progress.advance()
                self.log(f"round {number:>3}: {len(record['participants'])} devices, "
                         f"global accuracy {record['global_accuracy']:.3f}, {record['seconds']:.1f} s"
                         + (f", {'; '.join(events)}" if events else ""))
        return weights

    def _evaluate(self, bundle: Path, initial: np.ndarray, weights: np.ndarray, k: int) -> dict:
        c = self.config
        per_device: dict[str, dict] = {}
        global_model = self._evaluator(bundle, weights)
        pooled_x, pooled_y = pooled([p.train for p in self.participants])
        central = self._evaluator(bundle, initial)
        central.fit(pooled_x, pooled_y, epochs=c.baseline_epochs, batch_size=c.batch_size, lr=c.lr,
                    momentum=c.momentum, seed=c.seed)
        self.transitions = self._transitions(global_model.manifest.spec, k)
        with Progress("evaluate", total=len(self.participants) + len(self.newcomers), enabled=self.show_progress) as bar:
            for p in self.participants:
                local = self._evaluator(bundle, initial)
                local.fit(p.train.windows, p.train.labels, epochs=c.baseline_epochs, batch_size=c.batch_size,
                          lr=c.lr, momentum=c.momentum, seed=c.seed)
                test = p.test
                subsets = _window_subsets(test) if self.dataset.spec else {}  # records in no order: no subsets
                score = partial(_scored, test, subsets, num_classes=k, transitions=self.transitions)
                per_device[p.data.device_id] = {
                    "subject": p.data.subject, "train_windows": len(p.train), "test_windows": len(test),
                    "subset_share": {name: round(float(np.mean(m)), 4) for name, m in subsets.items()},
                    "local_only": score(local.predict_proba(test.windows)),
                    "global": score(global_model.predict_proba(test.windows)),
                    **self._personalised(bundle, weights, p, score),
                    "centralised": score(central.predict_proba(test.windows)),
                }
                bar.advance()
            newcomers = {}
            for p in self.newcomers:
                score = partial(_scored, p.test, {}, num_classes=k, transitions=self.transitions)
                newcomers[p.data.device_id] = {
                    "subject": p.data.subject, "personalised_on_windows": len(p.train),
                    "global": score(global_model.predict_proba(p.test.windows)),
                    **self._personalised(bundle, weights, p, score),
                }
                bar.advance()
        return self._summary(per_device, newcomers)

    def _transitions(self, spec: ModelSpec, num_classes: int) -> TransitionModel | None:
        """The table devices decode with, where the job gives them one (``_job_config``): the training devices'
        counts over their training executions, cut as the tests are. None where windows are in no time order."""
        if self.dataset.spec is None or not self._sums_transitions(spec):
            return None
        return federation_transitions([same_executions(p.data, p.train) for p in self.participants], num_classes)

    def _personalised(self, bundle: Path, weights: np.ndarray, p: Participant, score: Callable) -> dict:
        """A device personalising as the SDK does: the personal layers on its labelled windows, and where they
        come from recordings in time order, the head choice from them (scored on them cut as the tests are,
        decoded as in use); scored as the blend it uses and as the personal head alone."""
        trainer = self._evaluator(bundle, weights)
        c = self.config
        settings = {"epochs": c.personal_epochs, "batch_size": c.batch_size, "lr": c.lr, "momentum": c.momentum,
                    "seed": c.seed, "coral": c.coral}
        choice = HeadChoice(1.0)  # records in no order: the personal head, as a device without recordings
        if self.dataset.spec is not None:
            check = same_executions(p.data, p.train)
            choice = choose_head(trainer, p.train.windows, p.train.labels, p.train.execution,
                                 transitions=self.transitions, check=(check.windows, check.labels, check.execution),
                                 **settings)
        personalise(trainer, p.train.windows, p.train.labels, **settings)
        heads = trainer.predict_proba(p.test.windows, "global"), trainer.predict_proba(p.test.windows, "personal")
        return {"personalised": score(blend(*heads, choice.personal_weight)), "personal_head": score(heads[1]),
                "personal_weight": choice.personal_weight}

    def _compare_int8(self, bundle: Path, weights: np.ndarray) -> dict:
        from device_sim.quantised import compare_int8

        x, _ = pooled([p.train for p in self.participants])
        calibration = x[np.random.default_rng(self.config.seed).permutation(len(x))[:300]]
        version = self.rounds[-1]["model_version"] + 1 if self.rounds else 1
        tests = {p.data.device_id: (p.test.windows, p.test.labels) for p in self.participants}
        return compare_int8(bundle, self.model_spec, weights, version, calibration, tests, self.out / "bundle_final")

    def _published_transitions_check(self) -> dict | None:
        """How far the table the encrypted job published is from the training devices' counts summed in the
        clear, over the windows they train on (the same when every device took part in every round)."""
        if self.published_transitions is None:
            return None
        classes = self.published_transitions.shape[1]
        clear = sum(transition_counts(p.train.labels, p.train.execution, classes) for p in self.participants)
        return {"max_difference": round(float(np.max(np.abs(self.published_transitions - clear))), 4),
                "windows": int(clear.sum())}

    def _summary(self, per_device: dict, newcomers: dict) -> dict:
        def mean(rows, kind, metric="accuracy"):
            return _rounded_mean([r[kind][metric] for r in rows.values()])

        def decoded_mean(rows, kind, metric="accuracy"):
            return _rounded_mean([r[kind]["decoded"][metric] for r in rows.values()])

        def subset_mean(name, kind, side):
            return _rounded_mean([r[kind]["subsets"][name][side] for r in per_device.values()])

        names = next(iter(per_device.values()))["subset_share"] if per_device else {}

        kinds = ("local_only", "global", "personalised", "personal_head", "centralised")
        new_kinds = ("global", "personalised", "personal_head")
        return {
            "dataset": self.dataset.name, "engine": self.config.engine, "config": asdict(self.config),
            "window_overlap": None if self.dataset.spec is None else {
                "training": self.training.spec.overlap, "test": self.dataset.spec.overlap},
            "devices": len(self.participants), "new_user_subjects": self.new_user_subjects,
            "mean": {kind: mean(per_device, kind) for kind in kinds},
            "mean_macro_f1": {kind: mean(per_device, kind, "macro_f1") for kind in kinds},
            "subsets": {name: {
                "share_of_test_windows": _rounded_mean([r["subset_share"][name] for r in per_device.values()]),
                "inside": {kind: subset_mean(name, kind, "inside") for kind in kinds},
                "outside": {kind: subset_mean(name, kind, "outside") for kind in kinds},
            } for name in names},
            "new_users": {**{kind: mean(newcomers, kind) for kind in new_kinds},
                          "executions_used": self.config.new_user_executions, "per_device": newcomers},
            "personal_weight": {"training_devices": _rounded_mean([r["personal_weight"] for r in per_device.values()]),
                                "new_users": _rounded_mean([r["personal_weight"] for r in newcomers.values()])},
            "published_transitions": self._published_transitions_check(),
            "decoded": None if self.transitions is None else {
                "mean": {kind: decoded_mean(per_device, kind) for kind in kinds},
                "mean_macro_f1": {kind: decoded_mean(per_device, kind, "macro_f1") for kind in kinds},
                "new_users": {kind: decoded_mean(newcomers, kind) for kind in new_kinds}},
            "seconds_per_round": round(float(np.mean([r["seconds"] for r in self.rounds])), 3) if self.rounds else None,
            "privacy": None if self.config.privacy is None else {
                **privacy_budget.budget(self.config.privacy, sum(r["published"] for r in self.rounds), self.config.rounds),
                "min_devices": self.config.min_devices},
            "rounds": self.rounds,
            "per_device": per_device,
        }
