"""The key service: holds the private key, decrypts sub-sums of registered jobs only.

Its own Flask app and process, in its own trust domain, with two tokens: the
operator's (FEDWEAR_KS_ADMIN_TOKEN) registers a job's codec parameters,
value count, minimum, sub-sum count and whether it requires attestation
(PUT /jobs/<job_id>), once, and the device keys of an attested job
(PUT /jobs/<job_id>/devices/<device_id>); the aggregator's
(FEDWEAR_KEYSERVICE_TOKEN) can only ask for decryptions. A decryption is
refused unless the job is registered and the caller's parameters are the
registered ones; each (job, round, sub-sum) is decrypted once (the same
request again gets the stored answer, another 409). The sum must hold at
least max(floor, the registered minimum) contributions, checked against the
count slot (decrypted first) and range-checked; every decryption is logged.
For an attested job the aggregator sends the sub-sum's signed contributions,
not their product: the key service verifies them against the registered
device keys and multiplies them itself (cloud.signed_subsums).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud import logs
from cloud.api.errors import ApiError, bearer_token, install_error_handlers, require_token
from cloud.api.schemas import describe, load_json
from cloud.keyrecords import JOB_ID, KeyRecords
from cloud.signed_subsums import Checked, SignedSubsum, SubsumRefused, check
from sdk.attestation import load_public_key
from sdk.crypto.codec import AggregateDecryptor
from sdk.crypto.errors import CodecError
from sdk.crypto.keys import PrivateKey, generate_keypair
from sdk.crypto.params import CryptoParams

log = logging.getLogger("fedwear.keyservice")
PRIVATE_KEY_FILE = "private-key.json"
MAX_ID = 2**63 - 1
bp = Blueprint("keyservice", __name__)


def load_or_create_key(data_dir: Path, bits: int) -> PrivateKey:
    """The service's private key; created (mode 0600) on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PRIVATE_KEY_FILE
    if path.exists():
        return PrivateKey.load(path)
    _, private = generate_keypair(bits)
    private.save(path)
    return private


class Registration(BaseModel):
    """What the operator tells the key service about a job."""

    model_config = ConfigDict(extra="forbid")
    crypto: dict = Field(description="the job's crypto parameters, key_bits included (its admin API's `crypto`)")
    values: int = Field(ge=1, le=100_000_000, description="shared values of the model")
    min_contributors: int = Field(ge=2, le=1_000_000, description="the job's min_devices")
    subsums: int = Field(ge=1, le=64, description="sub-sums a round may be decrypted in")
    require_attestation: bool = Field(False, description="the job's require_attestation: decrypt only signed "
                                                         "contributions of devices whose keys the operator registered")

    def params(self) -> CryptoParams:
        try:
            return CryptoParams.from_dict(self.crypto)
        except CodecError as exc:
            raise ApiError(400, "invalid_request", f"crypto: {exc}") from exc


def _records() -> KeyRecords:
    return current_app.config["KS_RECORDS"]


def _job_id(job_id: str, what: str = "job") -> str:
    if not JOB_ID.match(job_id):
        raise ApiError(400, "invalid_request", f"the {what} id must be 1-64 letters, digits, '-' or '_'")
    return job_id


def _operator() -> None:
    require_token(current_app.config["KS_ADMIN_TOKEN"])


def _aggregator() -> None:
    require_token(current_app.config["KS_TOKEN"])


@bp.get("/public-key")
def public_key():
    """The public key, for the aggregator or the operator."""
    token = bearer_token().encode()
    if not any(hmac.compare_digest(token, current_app.config[key].encode()) for key in ("KS_TOKEN", "KS_ADMIN_TOKEN")):
        raise ApiError(401, "unauthorized", "invalid token")
    private: PrivateKey = current_app.config["KS_KEY"]
    return current_app.response_class(private.public.to_json(), mimetype="application/json")


@bp.put("/jobs/<job_id>")
def register(job_id: str):
    """Operator only: a job's parameters, once; the same again answers 200, others 409."""
    _operator()
    job_id = _job_id(job_id)
    try:
        wanted = Registration.model_validate(load_json(request.get_data()))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc)) from exc
    params = wanted.params()
    bits = current_app.config["KS_KEY"].public.bits
    if params.key_bits != bits:
        raise ApiError(400, "invalid_request", f"crypto.key_bits is {params.key_bits}, this key service's key has {bits}")
    body = wanted.model_dump() | {"crypto": params.to_dict()}
    held = {"require_attestation": False, **_records().register(job_id, body)}  # as registered before the field
    if held != body:
        raise ApiError(409, "already_registered", f"job {job_id} is registered with other parameters; "
                                                  "a registration cannot change")
    log.info("job registered", extra={"fields": {"job": job_id, "values": wanted.values,
                                                  "min_contributors": wanted.min_contributors,
                                                  "subsums": wanted.subsums}})
    return jsonify(held)


@bp.get("/jobs/<job_id>")
def registration(job_id: str):
    """Operator only: a job's registration."""
    _operator()
    held = _records().registration(_job_id(job_id))
    if held is None:
        raise ApiError(404, "job_not_registered", f"job {job_id} is not registered")
    return jsonify(held)


class DeviceRegistration(BaseModel):
    """A device key the operator registers for a device of an attested job."""

    model_config = ConfigDict(extra="forbid")
    device_key: str = Field(max_length=400, description="the device's enrolled key: base64 DER SubjectPublicKeyInfo "
                                                        "of an EC P-256 key (docs/protocol.md, Device attestation)")


@bp.put("/jobs/<job_id>/devices/<device_id>")
def register_device(job_id: str, device_id: str):
    """Operator only: a device's key for an attested job, once; the same again answers 200, another 409."""
    _operator()
    job_id, device_id = _job_id(job_id), _job_id(device_id, "device")
    try:
        wanted = DeviceRegistration.model_validate(load_json(request.get_data()))
        load_public_key(wanted.device_key)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    held = _records().registration(job_id)
    if held is None:
        raise ApiError(404, "job_not_registered", f"job {job_id} is not registered")
    if not held.get("require_attestation"):
        raise ApiError(409, "attestation_not_required", f"job {job_id} is registered without require_attestation: "
                                                        "its sums are decrypted without device keys")
    key = _records().register_device(job_id, device_id, wanted.device_key)
    if key != wanted.device_key:
        raise ApiError(409, "already_registered", f"device {device_id} of job {job_id} is registered with another "
                                                  "key; a device key cannot change")
    log.info("device registered", extra={"fields": {"job": job_id, "device": device_id}})
    return jsonify({"job_id": job_id, "device_id": device_id, "device_key": key})


@dataclass(frozen=True)
class DecryptRequest:
    """A decryption as the aggregator asks for it: query (job, round, part, params, values, min_contributors), body
    (the sub-sum's aggregate, or for an attested job its signed contributions)."""

    job_id: str
    round_id: int
    part: int
    params: CryptoParams
    values: int
    min_contributors: int
    body: bytes

    @staticmethod
    def parse() -> "DecryptRequest":
        args = request.args
        try:
            numbers = [int(args[name]) for name in ("round", "part", "values", "min_contributors")]
            params = CryptoParams.from_dict(json.loads(args["params"]))
        except (KeyError, ValueError, TypeError, RecursionError, CodecError) as exc:
            raise ApiError(400, "bad_request", "job, round, part, params (JSON), values and min_contributors are "
                                               f"required: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not all(0 <= n <= MAX_ID for n in numbers):
            raise ApiError(400, "bad_request", "round, part, values and min_contributors must be in [0, 2^63)")
        round_id, part, values, minimum = numbers
        return DecryptRequest(_job_id(args.get("job", "")), round_id, part, params, values, minimum,
                              request.get_data())


def _registered(ask: DecryptRequest) -> dict:
    """The job's registration, if the request matches it; 404 or 409 otherwise."""
    held = _records().registration(ask.job_id)
    if held is None:
        raise ApiError(404, "job_not_registered", f"job {ask.job_id} is not registered: its operator registers it "
                                                  "(PUT /jobs/<job_id>) before its rounds can be decrypted")
    registered = CryptoParams.from_dict(held["crypto"])
    if (ask.params.fingerprint(), ask.values, ask.min_contributors) != (
            registered.fingerprint(), held["values"], held["min_contributors"]):
        raise ApiError(409, "registration_differs", f"parameters, values or minimum differ from job {ask.job_id}'s "
                                                    "registration")
    if ask.part >= held["subsums"]:
        raise ApiError(422, "refused", f"job {ask.job_id} is registered with {held['subsums']} sub-sums per round; "
                                       f"there is no sub-sum {ask.part}")
    return held


def _signed_subsum(ask: DecryptRequest) -> SignedSubsum:
    """The body of a decryption for an attested job: the sub-sum's signed contributions; 400 otherwise."""
    if ask.body.lstrip()[:1] != b"{":
        raise ApiError(400, "invalid_request", f"job {ask.job_id} requires attestation: send the sub-sum's signed "
                                               "contributions (JSON), not their product")
    try:
        return SignedSubsum.model_validate(load_json(ask.body))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc)) from exc


def _checked(ask: DecryptRequest, held: dict, subsum: SignedSubsum) -> Checked:
    """The product of a signed sub-sum whose every contribution verifies (cloud.signed_subsums); 422 otherwise."""
    records = _records()
    decrypted = [c for part, done in records.round_decryptions(ask.job_id, ask.round_id).items()
                 if part != ask.part for c in done.get("contributions", [])]
    minimum = max(current_app.config["KS_MIN_CONTRIBUTORS"], held["min_contributors"])
    try:
        return check(subsum, lambda device: records.device_key(ask.job_id, device), decrypted, ask.round_id,
                     CryptoParams.from_dict(held["crypto"]), current_app.config["KS_KEY"].public, held["values"],
                     minimum)
    except SubsumRefused as exc:
        log.warning("decrypt refused", extra={"fields": {"job": ask.job_id, "round": ask.round_id, "part": ask.part,
                                                          "reason": str(exc)}})
        raise ApiError(422, "refused", str(exc)) from exc


@bp.post("/decrypt")
def decrypt():
    """Aggregator only. Body: a sub-sum aggregate, or for an attested job its signed contributions (JSON).
    Query: job, round, part, params (JSON), values, min_contributors."""
    _aggregator()
    ask = DecryptRequest.parse()
    held = _registered(ask)
    subsum = _signed_subsum(ask) if held.get("require_attestation") else None
    digest = hashlib.sha256(ask.body).hexdigest() if subsum is None else subsum.identity()
    # a signed sub-sum is checked against the round's other decrypted sub-sums: one at a time per job
    lock = (_records().decrypting(ask.job_id) if subsum is not None
            else _records().decrypting(ask.job_id, ask.part))
    with lock:
        done = _records().decryption(ask.job_id, ask.round_id, ask.part)
        if done is None:
            checked = None if subsum is None else _checked(ask, held, subsum)
            answer = _decrypt(ask, held, ask.body if checked is None else checked.aggregate)
            done = _records().record_decryption(ask.job_id, ask.round_id, ask.part, digest, answer,
                                                None if checked is None else checked.contributions)
    if done["sha256"] != digest:
        raise ApiError(409, "already_decrypted", f"sub-sum {ask.part} of round {ask.round_id} was decrypted from "
                                                 "other contributions; each sub-sum is decrypted once")
    return jsonify(done["answer"])


def _decrypt(ask: DecryptRequest, held: dict, aggregate: bytes) -> dict:
    floor = current_app.config["KS_MIN_CONTRIBUTORS"]
    fields = {"job": ask.job_id, "round": ask.round_id, "part": ask.part}
    try:
        decryptor = AggregateDecryptor(CryptoParams.from_dict(held["crypto"]), current_app.config["KS_KEY"])
        result = decryptor.decrypt(aggregate, max(floor, held["min_contributors"]), held["values"], ask.round_id)
    except CodecError as exc:
        log.warning("decrypt refused", extra={"fields": {**fields, "reason": str(exc)}})
        raise ApiError(422, "refused", str(exc)) from exc
    record = {"event": "decrypted", **fields, "contributors": result.contributors,
              "total_weight": result.total_weight, "values": held["values"]}
    log.info("decrypted", extra={"fields": record})
    with open(current_app.config["KS_DATA_DIR"] / "decryptions.log", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return {"contributors": result.contributors, "total_weight": result.total_weight,
            "mean": base64.b64encode(result.mean.astype("<f4").tobytes()).decode()}


def _secret(value: str | None, variable: str) -> str:
    value = value or os.environ.get(variable, "")
    if len(value) < 16:
        raise ValueError(f"{variable} must be set to a secret of at least 16 characters")
    return value


def create_keyservice_app(data_dir: Path | None = None, token: str | None = None, admin_token: str | None = None,
                          key_bits: int | None = None, min_contributors: int | None = None) -> Flask:
    """Application factory; unset arguments come from FEDWEAR_KS_* variables and FEDWEAR_KEYSERVICE_TOKEN."""
    data_dir = Path(data_dir or os.environ.get("FEDWEAR_KS_DATA_DIR", "fedwear-keyservice")).resolve()
    token = _secret(token, "FEDWEAR_KEYSERVICE_TOKEN")
    admin_token = _secret(admin_token, "FEDWEAR_KS_ADMIN_TOKEN")
    if admin_token == token:
        raise ValueError("FEDWEAR_KS_ADMIN_TOKEN must differ from FEDWEAR_KEYSERVICE_TOKEN: the aggregator "
                         "must not register jobs")
    logs.configure()
    app = Flask("fedwear-keyservice")
    app.config.update(
        KS_DATA_DIR=data_dir,
        KS_TOKEN=token,
        KS_ADMIN_TOKEN=admin_token,
        KS_RECORDS=KeyRecords(data_dir),
        KS_KEY=load_or_create_key(data_dir, key_bits or int(os.environ.get("FEDWEAR_KS_KEY_BITS", "2048"))),
        KS_MIN_CONTRIBUTORS=max(2, min_contributors or int(os.environ.get("FEDWEAR_KS_MIN_CONTRIBUTORS", "2"))),
        MAX_CONTENT_LENGTH=int(os.environ.get("FEDWEAR_MAX_UPLOAD_BYTES", str(64 * 1024 * 1024))),
    )
    install_error_handlers(app)
    app.register_blueprint(bp)
    return app
