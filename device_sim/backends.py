"""Where the fleet's virtual devices run: threads, a process pool, a process per silo, or Ray.

A virtual device is a real `FedWearClient` whose state (credentials, bundle,
weights, prepared payloads) lives in its storage directory, so any worker can
act as any device: a `DeviceTask` names the device, its storage and its round,
and comes with the device's training windows. The backends differ only in
where the task runs:

- ``threads``: two threads in the simulator's process;
- ``processes``: worker processes on this machine, two per core;
- ``silos``: cross-silo, a few institutions: each device (a hospital's
  server) in a process of its own for the whole run, which reads the
  device's records once, as a hospital reads its own;
- ``ray``: Ray actors, two per core, on a local Ray instance (kept on
  loopback) or on a cluster given by address; windows travel through Ray's
  object store. On a cluster of several hosts the run's output directory,
  where the devices' storage lives, must be on a file system that every host
  mounts.

A device spends part of its round waiting for the service (plan, weights,
upload), so two devices per core keep the cores busy where one per core
leaves them idle during those waits.

Devices that upload late (stragglers) wait for the deadline off the training
workers, so they never hold up the devices that are on time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import random
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdk.client import FedWearClient, RoundOutcome, parse_deadline, upload_values
from sdk.crypto.params import CryptoParams
from sdk.transport import HttpTransport, Response

NAMES = ("threads", "processes", "silos", "ray")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
LATE_WORKERS = 32  # stragglers mostly sleep until the deadline
DEVICES_PER_CORE = 2  # devices also wait on the network: two per core keep the cores busy

# One per process: virtual devices in one worker share the live randomisers' tables (each keeps its own pool).
_LIVE_RANDOMISERS: dict = {}


class FaultyTransport(HttpTransport):
    """Drops requests before they are sent, or sends them twice, with probability `faults` each."""

    def __init__(self, base_url: str, faults: float, seed: int) -> None:
        super().__init__(base_url, retries=8, backoff_s=0.05, max_backoff_s=0.5, rng=random.Random(seed))
        self.faults = faults
        self.injected = {"failed": 0, "duplicated": 0}
        self._lock = threading.Lock()

    def send(self, method: str, path: str, body, headers) -> Response:
        with self._lock:
            roll = self.rng.random()
        if roll < self.faults:
            self.injected["failed"] += 1
            raise ConnectionError("injected network failure")
        if roll < 2 * self.faults:
            self.injected["duplicated"] += 1
            super().send(method, path, body, headers)
        return super().send(method, path, body, headers)


@dataclass(frozen=True)
class DeviceTask:
    """One device's part in one round."""

    device_id: str
    storage: str  # the device's storage directory
    url: str  # the aggregation service
    token: str  # enrolment token, used on first contact
    seed: int  # training seed of the round
    faults: float = 0.0  # probability that a request fails or is sent twice
    fault_seed: int = 0
    late: bool = False  # a straggler: its clock lags, it uploads after the deadline
    round_id: int | None = None  # the round the device checked in for and was selected for


@dataclass
class DeviceResult:
    device_id: str
    outcome: RoundOutcome
    faults_injected: dict | None = None
    started: float = 0.0  # wall clock (time.time()) when the device began and ended its round
    finished: float = 0.0
    pid: int = 0  # the process that ran the round


def _client(task: DeviceTask, transport: HttpTransport) -> FedWearClient:
    return FedWearClient(task.url, task.token, task.storage, transport=transport, name=task.device_id,
                         live_randomisers=_LIVE_RANDOMISERS)


def run_device(task: DeviceTask, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> DeviceResult:
    """Acts as one device for one round it was selected for: sync, train, encrypt, upload (in whichever worker
    runs it)."""
    started = time.time()
    transport = (FaultyTransport(task.url, task.faults, task.fault_seed) if task.faults
                 else HttpTransport(task.url))
    client = _client(task, transport)
    windows, labels, recordings = data
    before_upload = None
    if task.late:
        deadline = parse_deadline(client.sync()["round"]["deadline"])
        client.clock = lambda: time.time() - 3600  # it thinks it is in time

        def before_upload():
            time.sleep(max(0.0, deadline + 0.5 - time.time()))

    outcome = client.participate(windows, labels, seed=task.seed, before_upload=before_upload,
                                 round_id=task.round_id, recordings=recordings)
    return DeviceResult(task.device_id, outcome, dict(transport.injected) if task.faults else None, started,
                        time.time(), os.getpid())


def prepare_device(task: DeviceTask, uploads: int) -> float:
    """The device computes the randomisers of its next `uploads` uploads ahead, as while idle or charging;
    returns the seconds it took."""
    started = time.perf_counter()
    client = _client(task, HttpTransport(task.url))
    plan = client.sync()
    per_upload = CryptoParams.from_dict({k: v for k, v in plan["crypto"].items() if k != "public_key"}) \
        .plaintexts_for(upload_values(plan))
    client.fill_randomiser_pool(max_count=uploads * per_upload, max_seconds=math.inf)
    return time.perf_counter() - started


class Backend:
    """Runs device tasks: `stage` readies a device's windows, `submit` runs a round's task on them, `prepare`
    has a device compute its randomisers ahead."""

    name = ""

    def __init__(self) -> None:
        self._late = ThreadPoolExecutor(LATE_WORKERS, thread_name_prefix="late-device")

    def stage(self, device_id: str, windows: np.ndarray, labels: np.ndarray, recordings: np.ndarray):
        """A handle on a device's training windows (their labels and recording ids) that `submit` accepts."""
        return windows, labels, recordings

    def submit(self, task: DeviceTask, data) -> Future:
        """A future of the task's DeviceResult."""
        if task.late:
            return self._late.submit(run_device, task, data)
        return self._submit(run_device, task, data)

    def prepare(self, task: DeviceTask, uploads: int) -> Future:
        """A future of the seconds the device took to compute the randomisers of `uploads` uploads."""
        return self._submit(prepare_device, task, uploads)

    def _submit(self, fn, *args) -> Future:
        raise NotImplementedError

    def close(self) -> None:
        self._late.shutdown(wait=True)

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ThreadBackend(Backend):
    """Devices take turns on threads of the simulator's own process."""

    name = "threads"

    def __init__(self, workers: int = 2) -> None:
        super().__init__()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="device")

    def _submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        super().close()


class ProcessBackend(Backend):
    """A pool of worker processes on this machine (spawned: the simulator's TensorFlow is not forked)."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        self._pool = ProcessPoolExecutor(workers or DEVICES_PER_CORE * (os.cpu_count() or 1),
                                         mp_context=multiprocessing.get_context("spawn"))

    def _submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        super().close()


_RECORDS: dict = {}  # in a silo's process: its records, read once


def _run_silo(task: DeviceTask, records: str) -> DeviceResult:
    if records not in _RECORDS:
        with np.load(records) as data:
            _RECORDS[records] = data["windows"], data["labels"], data["recordings"]
    return run_device(task, _RECORDS[records])


class SiloBackend(Backend):
    """Each device in a process of its own for the whole run (cross-silo: a few hospitals' servers).

    ``stage`` writes a device's records to a file in ``work_dir`` once; its process reads them once.
    """

    name = "silos"

    def __init__(self, work_dir: Path) -> None:
        super().__init__()
        self.work_dir = Path(work_dir)
        self._pools: dict[str, ProcessPoolExecutor] = {}

    def stage(self, device_id: str, windows: np.ndarray, labels: np.ndarray, recordings: np.ndarray) -> str:
        records = self.work_dir / f"{device_id}.npz"
        if device_id not in self._pools:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            np.savez(records, windows=windows, labels=labels, recordings=recordings)
            self._pools[device_id] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return str(records)

    def submit(self, task: DeviceTask, data) -> Future:
        return self._pools[task.device_id].submit(_run_silo, task, data)

    def prepare(self, task: DeviceTask, uploads: int) -> Future:
        return self._pools[task.device_id].submit(prepare_device, task, uploads)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        super().close()


def _loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


class DeviceWorker:
    """A long-lived Ray actor that acts as one device at a time (the SDK imported once, kept warm)."""

    def call(self, fn, *args):
        return fn(*args)


class RayBackend(Backend):
    """Ray actors: a local Ray instance on loopback by default, or the cluster at `address`.

    Two actors per CPU of the instance or cluster run the devices' tasks, each
    task on the next free actor; actors live for the whole run, so no round
    waits for a worker process to start (Ray stops idle task workers beyond
    one per core after a second). Each device's windows are put into Ray's
    object store once and handed to its tasks by reference. Stragglers, which
    mostly sleep until the deadline, run as tasks that take no CPU. `close()`
    shuts Ray down (a cluster keeps running; only this driver leaves it).
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus: int | None = None) -> None:
        """``cpus``: of the local instance (default: this machine's cores)."""
        if address is None or _loopback(address):
            # Ray turns a node address of 127.0.0.1 into the machine's own address (and binds its
            # servers there) unless clusters are off; with this it keeps every process on loopback.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        import ray

        self._ray = ray
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address is None:
            ray.init(address="local", num_cpus=cpus or os.cpu_count(), _node_ip_address="127.0.0.1",
                     runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}}, **options)
        else:
            ray.init(address=address, runtime_env={"py_modules": [str(PROJECT_ROOT / "sdk"),
                                                                  str(PROJECT_ROOT / "device_sim")]},
                     **({"_node_ip_address": "127.0.0.1"} if _loopback(address) else {}),
                     **{k: v for k, v in options.items() if k != "include_dashboard"})
        super().__init__()
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) * DEVICES_PER_CORE))
        actor = ray.remote(num_cpus=1 / DEVICES_PER_CORE)(DeviceWorker)
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(slots):
            self._idle.put(actor.remote())
        self._dispatch = ThreadPoolExecutor(slots, thread_name_prefix="ray-device")
        self._straggler = ray.remote(num_cpus=0)(run_device)
        self._staged: dict[str, object] = {}

    def stage(self, device_id: str, windows: np.ndarray, labels: np.ndarray, recordings: np.ndarray):
        if device_id not in self._staged:
            self._staged[device_id] = self._ray.put((windows, labels, recordings))
        return self._staged[device_id]

    def submit(self, task: DeviceTask, data) -> Future:
        if task.late:
            return self._straggler.remote(task, data).future()
        return self._submit(run_device, task, data)

    def _submit(self, fn, *args) -> Future:
        return self._dispatch.submit(self._on_idle_actor, fn, *args)

    def _on_idle_actor(self, fn, *args):
        worker = self._idle.get()
        try:
            return self._ray.get(worker.call.remote(fn, *args))
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        self._dispatch.shutdown(wait=True)
        self._staged.clear()
        self._ray.shutdown()
        super().close()


def make_backend(name: str, ray_address: str | None = None, work_dir: Path | None = None) -> Backend:
    """The backend called `name` (one of NAMES), with its default number of workers; ``work_dir``: where
    the silos backend keeps the devices' records."""
    if name == "threads":
        return ThreadBackend()
    if name == "processes":
        return ProcessBackend()
    if name == "silos":
        return SiloBackend(work_dir or Path("silos"))
    if name == "ray":
        return RayBackend(ray_address)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
