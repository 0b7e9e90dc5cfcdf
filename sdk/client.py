"""The device client: enrol, check in, sync, train, encrypt, upload, personalise, predict.

Everything a device must remember lives in its storage directory, so that it
resumes after a crash or restart: credentials (mode 0600), the bundle, the
published weights it has, its personal layers, and per round the encrypted
payload it prepared and the server's answer. A payload is stored before it is
sent and sent again unchanged after a crash (the server answers a repeat with
its first answer), so a device never contributes twice to one round.

Encryption's expensive part can be done ahead: ``fill_randomiser_pool`` stores
randomisers while the device charges and idles, and an upload draws them first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import numpy as np

from sdk.attestation import DEVICE_KEY_FILE, SIGNATURE_HEADER, DeviceKey
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, Manifest
from sdk.conditions import DeviceConditions
from sdk.crypto.codec import UpdateEncoder
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams
from sdk.crypto.randomisers import RandomiserSource, make_randomiser
from sdk.decoding import TransitionModel, decode, table_values, transition_counts
from sdk.metrics import scores
from sdk.personalisation import HeadChoice, choose_head, personalise, predict_blended, reset_personal
from sdk.precompute import PoolFill, PoolFirstRandomiser
from sdk.privacy import prepare_update
from sdk.storage import write_atomically, write_private
from sdk.trainer import TFLiteTrainer
from sdk.transport import HttpTransport, ServerError


LATE_REFUSALS = ("deadline_passed", "round_closed", "sum_full")  # the round ended before this upload
ACTIVE_JOB = ("running", "stopping")  # a job that may still open or end rounds
LONG_POLL_S = 30.0  # one long-poll's wait: well within the transport's timeout and the service's 60 s bound
HEAD_FILE = "head.json"  # the blend of the two heads a device chose when personalising (sdk.personalisation)
TRANSITIONS_FILE = "transitions.json"  # the transition counts a device decodes with (sdk.decoding)


@dataclass
class RoundOutcome:
    """What one participation did."""

    round_id: int | None
    status: str  # uploaded, already_uploaded, not_selected, skipped, late_refused, refused
    reason: str = ""
    retry_after: int | None = None  # not selected: seconds the service asks the device to wait
    windows: int = 0
    sync_s: float = 0.0  # plan and checks, downloads excluded
    download_s: float = 0.0  # bundle and global weights, when they changed
    train_s: float = 0.0
    crypto_s: float = 0.0
    upload_s: float = 0.0
    randomisers: str = ""  # where the encryption's randomisers came from: pool, computed or mixed
    bytes_up: int = 0
    bytes_down: int = 0  # plan and downloads
    bytes_downloaded: int = 0  # bundle and global weights alone
    clipped_fraction: float = 0.0
    answer: dict = field(default_factory=dict)


def _job_round(plan: dict) -> tuple[str, int | None]:
    """A plan's job status and round id: what a long-poll waits to see change."""
    return plan["job_status"], (plan["round"] or {}).get("id")


def local_update(trainer: TFLiteTrainer, windows, labels, hyperparameters: dict, seed: int) -> np.ndarray:
    """Trains the shared layers from the current global weights; returns the delta and restores them."""
    base = trainer.get_weights("shared")
    hp = hyperparameters
    trainer.fit(windows, labels, epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                momentum=hp["momentum"], seed=seed)
    delta = trainer.get_weights("shared") - base
    trainer.set_weights(base, "shared")
    return delta


def upload_values(plan: dict) -> int:
    """Values in an upload for the plan: the shared weights, then transition counts when the job sums them."""
    transitions = plan.get("transitions")
    return plan["shared_values"] + (table_values(transitions["classes"]) if transitions else 0)


def counts_tail(plan: dict, labels, recordings) -> np.ndarray:
    """What an upload carries after the shared-layer update when the job sums transition counts: the device's
    counts divided by its number of windows, so in [0, 1] and summing to 1 (zeros without ``recordings``);
    empty when the job does not sum them. Weighted like the update, they sum to the federation's counts."""
    transitions = plan.get("transitions")
    if not transitions:
        return np.zeros(0, np.float32)
    classes = int(transitions["classes"])
    labels = np.asarray(labels).reshape(-1)
    if recordings is None or labels.size == 0:
        return np.zeros(table_values(classes), np.float32)
    return (transition_counts(labels, recordings, classes).ravel() / labels.size).astype(np.float32)


def parse_deadline(text: str) -> float:
    """Seconds since the epoch of a plan's ISO deadline (UTC)."""
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=timezone.utc).timestamp()


class FedWearClient:
    """One device's view of a FedWear job."""

    def __init__(self, server_url: str, enrolment_token: str, storage_dir: str | Path,
                 conditions: DeviceConditions | None = None, transport: HttpTransport | None = None,
                 clock: Callable[[], float] = time.time, name: str = "",
                 live_randomisers: dict[str, RandomiserSource] | None = None) -> None:
        """``live_randomisers``: randomiser sources (their tables cost about a third of a second and 16 MB
        each) that several clients in one process may share, as a simulator's virtual devices do; by default
        each client builds its own. Every device keeps its own pool."""
        self.storage = Path(storage_dir)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.transport = transport or HttpTransport(server_url)
        self.conditions = conditions or DeviceConditions()
        self.clock = clock
        self._token = enrolment_token
        self._name = name
        self.trainer: TFLiteTrainer | None = None
        self.plan: dict | None = None
        self.bytes_down = 0
        self.bytes_downloaded, self.download_s = 0, 0.0
        self._encoders: dict[str, UpdateEncoder] = {}
        self._randomisers: dict[str, PoolFirstRandomiser] = {}
        self._live: dict[str, RandomiserSource] = {} if live_randomisers is None else live_randomisers
        self._credentials: dict | None = None
        self._device_key: DeviceKey | None = None
        self._head: HeadChoice | None = self._stored_head_choice()  # read once; personalise() replaces it
        self._counts: np.ndarray | None = self._stored_counts()  # the transition table; use_transitions() sets it
        self.transitions: TransitionModel | None = None if self._counts is None else TransitionModel.from_counts(
            self._counts)

    # Enrolment and sync --------------------------------------------------------
    @property
    def _credentials_file(self) -> Path:
        return self.storage / "credentials.json"

    def enrol(self) -> str:
        """Enrols once; later calls (and restarts) reuse the stored credentials."""
        if self._credentials is None and self._credentials_file.exists():
            self._credentials = json.loads(self._credentials_file.read_text())
        if self._credentials is None:
            body = self.transport.request("POST", "/v1/enrol", json_body={
                "token": self._token, "name": self._name, "device_key": self.device_key.public_key()}).json()
            write_private(self._credentials_file, json.dumps(body).encode())
            self._credentials = body
        return self._credentials["device_id"]

    @property
    def device_key(self) -> DeviceKey:
        """The device's signing key (sdk.attestation), made at the first enrolment and kept beside the credentials."""
        if self._device_key is None:
            self._device_key = DeviceKey.load_or_create(self.storage / DEVICE_KEY_FILE)
        return self._device_key

    def _auth(self) -> dict:
        self.enrol()
        return {"Authorization": self._credentials["authorization"]}

    def _get(self, path: str, headers: dict | None = None):
        response = self.transport.request("GET", path, headers={**self._auth(), **(headers or {})})
        self.bytes_down += len(response.body)
        return response

    def _download(self, path: str, target: Path, etag_file: Path) -> None:
        headers = {}
        if target.exists() and etag_file.exists():
            headers["If-None-Match"] = etag_file.read_text()
        start = time.perf_counter()
        response = self._get(path, headers)
        self.download_s += time.perf_counter() - start
        self.bytes_downloaded += len(response.body)
        if response.status == 304:
            return
        write_atomically(target, response.body)
        etag = response.headers.get("ETag") or response.headers.get("Etag")
        if etag:
            write_atomically(etag_file, etag.encode())

    def check_in(self, after_version: int | None = None, wait_s: float = 0.0, selects: bool = True) -> dict:
        """The plan (GET /v1/plan); with ``selects`` it is the device's check-in, which may select it for the
        open round. With ``after_version`` a long-poll: the service holds the answer up to ``wait_s`` seconds
        while the model version is at most ``after_version`` and the job's round stays the same."""
        query = {"check_in": "true" if selects else "false"}
        if after_version is not None:
            query.update(after_version=str(after_version), wait=f"{wait_s:g}")
        return self._get("/v1/plan?" + urlencode(query)).json()

    def sync(self) -> dict:
        """Reads the plan without checking in, and fetches the bundle and global weights when they changed."""
        return self._load(self.check_in(selects=False))

    def wait_for_version(self, version: int, timeout: float = 300.0, selects: bool = False) -> dict:
        """Holds until the job publishes a model version after ``version``, its round changes or it ends, or
        ``timeout`` seconds pass, in long-polls of at most LONG_POLL_S; returns the last plan. With
        ``selects`` it checks in for a new round, so the plan also says whether to train from the new model."""
        end = time.monotonic() + timeout
        plan = self.check_in(version, min(LONG_POLL_S, timeout), selects)
        first = _job_round(plan)
        while (plan["model_version"] <= version and plan["job_status"] in ACTIVE_JOB
               and _job_round(plan) == first and time.monotonic() < end
               and not (selects and self._to_train(plan))):
            plan = self.check_in(version, min(LONG_POLL_S, max(0.0, end - time.monotonic())), selects)
        return plan

    def _to_train(self, plan: dict) -> bool:
        """Whether the plan selects this device for an open round it has not yet answered."""
        round_ = plan["round"]
        return (plan["selected"] and round_ is not None and round_["status"] == "open"
                and not self._round_files(round_["id"])[1].exists())

    def _load(self, plan: dict) -> dict:
        """Fetches the bundle and global weights of the plan when they changed, and loads them."""
        bundle = self.storage / "bundle"
        manifest_path = bundle / MANIFEST_FILE
        stale = not manifest_path.exists() or Manifest.from_json(manifest_path.read_text()).model_sha256 != plan["bundle_sha256"]
        if stale:
            for name in (MODEL_FILE, MANIFEST_FILE):
                self._download(f"/v1/bundle/{name}", bundle / name, bundle / f".{name}.etag")
            for name in Manifest.from_json(manifest_path.read_text()).files:  # and the inference models it lists
                if name not in (MODEL_FILE, MANIFEST_FILE):
                    self._download(f"/v1/bundle/{name}", bundle / name, bundle / f".{name}.etag")
            self.trainer = None
        opened = self.trainer is None
        if opened:
            self.trainer = TFLiteTrainer(bundle)
        version = plan["model_version"]
        weights = self.storage / "weights" / f"v{version}.f32"
        if not weights.exists():
            self._download(f"/v1/weights/{version}", weights, weights.with_suffix(".etag"))
        self.trainer.set_weights(np.frombuffer(weights.read_bytes(), "<f4"), "shared")
        if opened:  # personal layers kept on the device, else copies of the current global top layers
            personal = self.storage / "personal.npz"
            if personal.exists():
                self.trainer.load_personal(personal)
            else:
                reset_personal(self.trainer)
        federation = (plan.get("transitions") or {}).get("counts")
        if federation is not None and (self._counts is None or not np.array_equal(self._counts, federation)):
            self.use_transitions(federation)  # the federation's table: the device decodes with it
        self.plan = plan
        return plan

    @property
    def label_names(self) -> tuple[str, ...]:
        """The bundle's classes: a label is an index into this tuple."""
        if self.trainer is None:
            self.sync()
        return self.trainer.manifest.label_names

    def global_weights(self) -> np.ndarray:
        return self.trainer.get_weights("shared")

    # One round -------------------------------------------------------------
    def _encoder(self, plan: dict) -> UpdateEncoder:
        crypto = dict(plan["crypto"])
        public = PublicKey.from_json(crypto.pop("public_key"))
        params = CryptoParams.from_dict(crypto)
        key = public.fingerprint().hex() + params.fingerprint().hex()
        if key not in self._encoders:
            self._encoders[key] = UpdateEncoder(params, public, self._randomiser(public, params.randomiser))
        return self._encoders[key]

    def _randomiser(self, public: PublicKey, mode: str) -> PoolFirstRandomiser:
        """The key's pool-first randomiser source; its pool lives in the storage directory."""
        key = public.fingerprint().hex() + mode
        if key not in self._randomisers:
            if key not in self._live:
                self._live[key] = make_randomiser(mode, public)
            self._randomisers[key] = PoolFirstRandomiser(self.storage / "randomisers", public, mode,
                                                         self._live[key])
        return self._randomisers[key]

    def fill_randomiser_pool(self, max_count: int | None = None, max_seconds: float = 60.0) -> PoolFill:
        """Computes randomisers ahead for the plan's public key, when the device conditions allow.

        Call it while the device charges and idles (``DeviceConditions.is_charging``,
        ``is_idle``); otherwise it returns at once, touching neither the network nor
        the pool. Stops when the pool holds ``max_count`` (default: enough for two
        uploads of the current model) or after about ``max_seconds``.
        """
        blocked = self.conditions.precompute_blocked_by()
        if blocked:
            return PoolFill(0, 0, 0.0, blocked)
        if self.plan is None or self.trainer is None:
            self.sync()
        encoder = self._encoder(self.plan)
        if max_count is None:
            max_count = 2 * encoder.params.plaintexts_for(upload_values(self.plan))
        return encoder.randomiser.fill(max_count, max_seconds)

    def _round_files(self, round_id: int) -> tuple[Path, Path]:
        folder = self.storage / "rounds"
        return folder / f"{round_id}.bin", folder / f"{round_id}.json"

    def participate(self, windows, labels, seed: int = 0, before_upload: Callable[[], None] | None = None,
                    round_id: int | None = None, recordings=None) -> RoundOutcome:
        """Checks in; when the service selects this device, trains on local windows and uploads the encrypted
        update for the current round. Nothing is downloaded unless it is selected; when not, the outcome's
        ``retry_after`` says when to check in again. ``round_id``: the round the device already checked in
        for and was selected for; it trains for that round only, without checking in again. ``recordings``
        (one id per window, windows of a recording consecutive and in time order): the device also adds its
        activity-transition counts to the job's sum when the job collects them (the plan's ``transitions``)."""
        blocked = self.conditions.blocked_by()
        if blocked:  # a device that may not train now does not check in
            return RoundOutcome(None, "skipped", blocked, windows=len(labels))
        down_before, downloaded_before, download_s_before = self.bytes_down, self.bytes_downloaded, self.download_s
        start = time.perf_counter()
        plan = self.check_in(selects=round_id is None)
        round_ = plan.get("round")
        outcome = RoundOutcome(round_["id"] if round_ else None, "skipped", windows=len(labels))
        if round_id is not None and (round_ or {}).get("id") != round_id:
            outcome.reason = f"round {round_id} ended"
            return outcome
        if plan.get("job_status", "running") not in ACTIVE_JOB:
            outcome.reason = f"job {plan['job_id']} is {plan['job_status']}: it opens no more rounds"
            return outcome
        if round_ is None or round_["status"] != "open" or round_["model_version"] != plan["model_version"]:
            outcome.reason = "no open round"
            return outcome
        if not plan["selected"]:
            outcome.status, outcome.retry_after = "not_selected", plan["retry_after"]
            outcome.reason = f"not selected for round {round_['id']}: check in again in {plan['retry_after']} s"
            outcome.bytes_down = self.bytes_down - down_before
            return outcome
        payload_file, answer_file = self._round_files(round_["id"])
        if answer_file.exists():
            outcome.status, outcome.answer = "already_uploaded", json.loads(answer_file.read_text())
            return outcome
        if not payload_file.exists() and self.clock() >= parse_deadline(round_["deadline"]):
            outcome.reason = "deadline passed"
            return outcome
        self._load(plan)
        outcome.download_s = self.download_s - download_s_before
        outcome.sync_s = time.perf_counter() - start - outcome.download_s
        outcome.bytes_downloaded = self.bytes_downloaded - downloaded_before
        if not payload_file.exists():
            encoder = self._encoder(plan)
            encoder.randomiser.prefetch(encoder.params.plaintexts_for(upload_values(plan)))
            start = time.perf_counter()
            accuracy = self.trainer.evaluate(windows, labels).get("accuracy") if len(labels) else None
            delta = local_update(self.trainer, windows, labels, plan["hyperparameters"], seed)
            outcome.train_s = time.perf_counter() - start
            start = time.perf_counter()
            update, weight = prepare_update(plan, delta, encoder.params, len(labels))  # DP when the job asks
            update = np.concatenate([update, counts_tail(plan, labels, recordings)])
            encoded = encoder.encode(update, weight, round_id=round_["id"])
            outcome.crypto_s = time.perf_counter() - start
            outcome.randomisers = encoder.randomiser.last
            outcome.clipped_fraction = encoded.clipped_fraction
            write_atomically(payload_file, encoded.payload)
            self._report(round_["id"], len(labels), accuracy)
        if before_upload is not None:
            before_upload()
        payload = payload_file.read_bytes()
        start = time.perf_counter()
        try:
            signature = self.device_key.sign_upload(round_["id"], payload)
            response = self.transport.request("PUT", f"/v1/rounds/{round_['id']}/update", data=payload,
                                              headers={**self._auth(), SIGNATURE_HEADER: signature})
        except ServerError as err:
            outcome.status = "late_refused" if err.code in LATE_REFUSALS else "refused"
            outcome.reason = f"{err.code}: {err.message}"
            write_atomically(answer_file, json.dumps({"refused": err.code}).encode())
            return outcome
        outcome.upload_s = time.perf_counter() - start
        outcome.answer = response.json()
        write_atomically(answer_file, json.dumps(outcome.answer).encode())
        outcome.status, outcome.bytes_up = "uploaded", len(payload)
        outcome.bytes_down = self.bytes_down - down_before
        return outcome

    def _report(self, round_id: int, windows: int, accuracy: float | None) -> None:
        body = {"windows": int(windows), "accuracy": None if accuracy is None else float(accuracy)}
        try:
            self.transport.request("POST", f"/v1/rounds/{round_id}/report", json_body=body, headers=self._auth())
        except (ServerError, RuntimeError):
            pass  # metrics are best effort; training goes on

    # Personalisation and inference -------------------------------------------
    def use_transitions(self, counts) -> None:
        """Decodes activity sequences from now on with a transition table (``sdk.decoding.transition_counts``
        summed over the federation: (classes + 1) x classes counts), kept in the device's storage; None stops.
        The head choice of the next ``personalise`` and every ``predict``/``evaluate`` then decode. In a job
        that sums transition counts, each sync takes the federation's table from the plan instead."""
        path = self.storage / TRANSITIONS_FILE
        if counts is None:
            path.unlink(missing_ok=True)
            self._counts = self.transitions = None
            return
        if self.trainer is None:
            self.sync()
        if not self.trainer.classifies:
            raise ValueError("activity-sequence decoding needs a classification head; this bundle's head is "
                             "a regression head")
        table = np.asarray(counts, dtype=np.float64)
        k = self.trainer.manifest.num_classes
        if table.shape != (k + 1, k):
            raise ValueError(f"transition counts must be ({k} + 1) x {k} for this bundle's {k} labels (row 0: "
                             f"first labels of recordings, row 1 + i: labels after label i), got shape "
                             f"{list(table.shape)}")
        self.transitions = TransitionModel.from_counts(table)  # refuses negative or non-finite counts
        write_atomically(path, json.dumps({"counts": table.tolist()}).encode())
        self._counts = table

    @property
    def transition_table(self) -> np.ndarray | None:
        """The transition counts the device decodes with ((classes + 1) x classes), or None."""
        return self._counts

    def _stored_counts(self) -> np.ndarray | None:
        path = self.storage / TRANSITIONS_FILE
        return np.asarray(json.loads(path.read_text())["counts"]) if path.exists() else None

    def personalise(self, windows, labels, epochs: int | None = None, lr: float | None = None,
                    fresh: bool = False, seed: int = 0, coral: float = 0.0, recordings=None,
                    check: tuple | None = None) -> dict:
        """Fine-tunes the personal layers on the frozen global features; they stay on the device.

        With ``recordings`` (one id per window: the recording it was cut from), the device also decides from
        these labelled recordings alone how much of the personal head to use (sdk.personalisation.choose_head:
        the global head when they cannot tell; held-out recordings decoded when the device has a transition
        table, as in use); predict and evaluate then use that blend of the two heads.
        ``check``: (windows, labels, recordings) of the same recordings cut as the device predicts, when
        ``windows`` are cut denser; the choice is scored on them.
        """
        if self.trainer is None:
            self.sync()
        hp = (self.plan or {}).get("hyperparameters", {})
        settings = {"epochs": epochs or hp.get("personal_epochs", 5), "batch_size": hp.get("batch_size", 32),
                    "lr": lr or hp.get("lr", 0.02), "momentum": hp.get("momentum", 0.9), "seed": seed, "coral": coral}
        head_file = self.storage / HEAD_FILE
        result = {}
        if recordings is not None:
            self._head = choose_head(self.trainer, windows, labels, recordings, check=check,
                                     transitions=self.transitions, **settings)
            write_atomically(head_file, json.dumps({"personal_weight": self._head.personal_weight}).encode())
            result["personal_weight"] = self._head.personal_weight
        else:
            head_file.unlink(missing_ok=True)  # a choice made for other personal layers no longer holds
            self._head = None
        loss = personalise(self.trainer, windows, labels, fresh=fresh or not (self.storage / "personal.npz").exists(),
                           **settings)
        self.trainer.save_personal(self.storage / "personal.npz")
        return {"loss": loss, **result}

    def _stored_head_choice(self) -> HeadChoice | None:
        """The blend chosen by the last personalise with recordings, if any, as stored."""
        path = self.storage / HEAD_FILE
        return HeadChoice(float(json.loads(path.read_text())["personal_weight"])) if path.exists() else None

    def predict_proba(self, windows, head: str = "personal", recordings=None, decoded: bool = True) -> np.ndarray:
        """Class probabilities as the device uses them: the personal head as chosen when personalising (or
        the global head), decoded with the device's transition table if it has one (and ``decoded``).
        ``recordings``: one id per window, windows of a recording consecutive and in time order (default:
        all one recording). On a stream, one window at a time, feed ``decoded=False`` probabilities to an
        ``sdk.decoding.ForwardFilter`` of ``self.transitions``."""
        if self.trainer is None:
            self.sync()
        choice = self._head if head == "personal" and self.trainer.classifies else None
        probs = (self.trainer.predict_proba(windows, head) if choice is None
                 else predict_blended(self.trainer, windows, choice))
        if self.transitions is None or not decoded:
            return probs
        sequence = np.zeros(len(probs), np.int64) if recordings is None else np.asarray(recordings).reshape(-1)
        return decode(probs, sequence, self.transitions)

    def predict(self, windows, head: str = "personal", recordings=None) -> np.ndarray:
        """Predicted class indices (``predict_proba``'s argmax), or values of a regression head."""
        out = self.predict_proba(windows, head, recordings)
        return np.argmax(out, axis=1) if self.trainer.classifies else out[:, 0]

    def evaluate(self, windows, labels, head: str = "personal", recordings=None) -> dict:
        """The trainer's scores of ``predict``'s predictions (``recordings``: as for ``predict_proba``)."""
        if self.trainer is None:
            self.sync()
        if not self.trainer.classifies:
            return self.trainer.evaluate(windows, labels, head)
        truth = np.asarray(labels).reshape(-1)
        return {**scores(truth, self.predict(windows, head, recordings), self.trainer.manifest.num_classes),
                "windows": int(truth.size)}
