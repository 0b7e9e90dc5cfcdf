"""Device API: enrol, plan, bundle and weights download, update upload, metrics report."""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, g, request, send_file
from sqlalchemy import select

from cloud.api.errors import ApiError
from cloud.api.openapi import documented
from cloud.api.responses import (
    EnrolAnswer,
    Plan,
    PlanCrypto,
    PlanRound,
    PlanTransitions,
    ReportAnswer,
    UploadAnswer,
    reply,
)
from cloud.api.schemas import MAX_WAIT_S, EnrolRequest, Hyperparameters, MetricsReport, PlanQuery, parse
from cloud.credentials import authenticate_device, check_upload_signature, hash_secret
from cloud.db import Device, DeviceReport, EnrolmentToken, Job, Round, utcnow
from cloud.enrolment_limits import check_enrolment_rate, client_address
from cloud.lifecycle import ACTIVE
from cloud.rounds import current_round, device_round
from cloud.selection import CheckIn, admit_upload, awaits_upload, check_in
from cloud.services import services, session
from sdk.attestation import SIGNATURE_HEADER
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, Manifest

bp = Blueprint("device", __name__, url_prefix="/v1")
ROUND_IDS = "round.id of the plan (not round.number)"
POLL_S = 0.1  # a long-poll reads the job this often


@bp.before_request
def _authenticate():
    if request.endpoint != "device.enrol":
        g.device = authenticate_device(session())


@bp.post("/enrol")
@documented("Enrol with an enrolment token; returns device credentials (shown once)", body=EnrolRequest,
            responses={"201": ("enrolled", EnrolAnswer),
                       "400": "invalid body or device_key, or the job requires a device_key",
                       "403": "token expired, used up or revoked",
                       "429": "too many enrolment attempts from this address or with this token (Retry-After)"})
def enrol():
    body = parse(EnrolRequest)
    db = session()
    token_hash = hash_secret(body.token)
    settings = services().settings
    address = client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For", ""),
                             settings.trusted_proxies)
    check_enrolment_rate(db, address, token_hash, settings.enrolments_per_address, settings.enrolments_per_token)
    token = db.scalars(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == token_hash).with_for_update()
    ).first()
    if token is None:
        raise ApiError(401, "unauthorized", "unknown enrolment token")
    if token.revoked:
        raise ApiError(403, "token_revoked", "this enrolment token was revoked")
    if utcnow() > token.expires_at:
        raise ApiError(403, "token_expired", f"this enrolment token expired at {token.expires_at.isoformat()}Z")
    if token.max_uses is not None and token.uses >= token.max_uses:
        raise ApiError(403, "token_used", "this enrolment token has been used up")
    if body.device_key is None and db.get(Job, token.job_id).config.get("require_attestation"):
        raise ApiError(400, "device_key_required",
                       "this job requires attestation: send the device's public key as device_key")
    token.uses += 1
    device_id, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
    db.add(Device(id=device_id, job_id=token.job_id, name=body.name, secret_hash=hash_secret(secret),
                  token_id=token.id, device_key=body.device_key))
    db.commit()
    return reply(EnrolAnswer(device_id=device_id, device_secret=secret, job_id=token.job_id,
                             authorization=f"Bearer {device_id}.{secret}"), 201)


@bp.get("/plan")
@documented("The device's check-in: its job, model version, current round and whether it is selected for it, "
            "crypto parameters, hyper-parameters (query: check_in=false reads without checking in; after_version "
            f"and wait, at most {MAX_WAIT_S} s, make it a long-poll: docs/protocol.md)",
            auth="device", responses={"200": ("the plan", Plan)})
def plan():
    query = parse(PlanQuery, request.args.to_dict())
    db = session()
    device_id, job_id = g.device.id, g.device.job_id
    job, round_, state = _look(db, device_id, job_id, query.check_in)
    if query.after_version is not None:
        ready = query.check_in and awaits_upload(db, round_, device_id, state)
        db.commit()
        if not ready:
            job, round_, state = _hold(db, device_id, query, job, round_, state)
    return reply(Plan(
        job_id=job.id, job_status=job.status, model_version=job.current_version,
        round=None if round_ is None else PlanRound(
            id=round_.id, number=round_.number, status=round_.status,
            model_version=round_.model_version, deadline=round_.deadline.isoformat() + "Z"),
        crypto=PlanCrypto(**job.crypto, public_key=job.public_key),
        hyperparameters=Hyperparameters(**job.config["hyperparameters"]),
        bundle_sha256=job.bundle_sha256, shared_values=job.shared_values,
        min_devices=job.config["min_devices"], max_devices=job.config["max_devices"],
        selected=state.selected, retry_after=state.retry_after,
        privacy=job.config.get("privacy"),
        transitions=_transitions(job),
    ))


def _transitions(job: Job) -> PlanTransitions | None:
    """The plan's transition counts: the table the current model version carries (docs/encrypted-updates.md)."""
    if not job.transition_classes:
        return None
    counts = services().store.read_transitions(job.id, job.current_version, job.transition_classes)
    return PlanTransitions(classes=job.transition_classes, counts=None if counts is None else counts.tolist())


def _job(db, job_id: str) -> Job:
    job = db.get(Job, job_id)
    if job is None:  # deleted (with its devices) while a long-poll waited
        raise ApiError(401, "unauthorized", "this device's job was deleted")
    return job


def _look(db, device_id: str, job_id: str, checks_in: bool) -> tuple[Job, Round | None, CheckIn]:
    """The device's job and current round, and its check-in (or, without one, its standing); ends the
    transaction."""
    job = _job(db, job_id)
    round_ = current_round(db, job)
    state = check_in(db, job, round_, device_id, selects=checks_in)
    db.commit()
    return job, round_, state


def _hold(db, device_id: str, query: PlanQuery, job: Job, round_: Round | None,
          state: CheckIn) -> tuple[Job, Round | None, CheckIn]:
    """Long-poll: reads the job every POLL_S (at once when this process published a round) while its model
    version is at most after_version, its round and status are those of the first look, and `wait` seconds
    have not passed; no transaction is held between reads. When the round or status changed, the device
    checks in again (with check_in)."""
    first, job_id = _key(job, round_), job.id
    end = time.monotonic() + query.wait
    while (job.status in ACTIVE and job.current_version <= query.after_version and _key(job, round_) == first
           and time.monotonic() < end):
        with services().published:  # woken when this process publishes
            services().published.wait(max(0.0, min(POLL_S, end - time.monotonic())))
        db.expire_all()
        job = _job(db, job_id)
        round_ = current_round(db, job)
        db.commit()
    if _key(job, round_) != first:
        return _look(db, device_id, job_id, query.check_in)
    return job, round_, state


def _key(job: Job, round_: Round | None) -> tuple[str, int | None]:
    return job.status, None if round_ is None else round_.id


def _send(job: Job, path, etag: str, mimetype: str):
    if not path.is_file():
        raise ApiError(404, "not_found", "no such file for this job")
    response = send_file(path, mimetype=mimetype, etag=etag, conditional=True, max_age=0)
    if response.status_code == 200:
        size = path.stat().st_size
        services().metrics.bytes_out.inc(size)
        round_ = current_round(session(), job)
        if round_ is not None:
            round_.bytes_out += size
            session().commit()
    return response


@bp.get("/bundle/<name>")
@documented("Download a file of the job's bundle: model.tflite, manifest.json, or an inference model the manifest "
            "lists (ETag, If-None-Match)", auth="device", produces="application/octet-stream",
            responses={"200": "file", "304": "unchanged", "404": "no such file"})
def bundle(name: str):
    job = session().get(Job, g.device.job_id)
    store = services().store
    manifest = Manifest.from_json(store.bundle_file(job.id, MANIFEST_FILE).read_text())
    if name not in manifest.files:
        raise ApiError(404, "not_found", f"this job's bundle holds {', '.join(manifest.files)}")
    etags = {MODEL_FILE: job.bundle_sha256, MANIFEST_FILE: job.bundle_sha256 + "-manifest",
             **{entry["file"]: entry["sha256"] for entry in manifest.inference.values()}}
    return _send(job, store.bundle_file(job.id, name), etags[name],
                 "application/json" if name == MANIFEST_FILE else "application/octet-stream")


@bp.get("/weights/<int:version>")
@documented("Shared weights of a published model version: little-endian float32, nothing else (ETag)",
            auth="device", produces="application/octet-stream",
            responses={"200": "weights", "304": "unchanged", "404": "no such version"})
def weights(version: int):
    job = session().get(Job, g.device.job_id)
    if not 1 <= version <= job.current_version:
        raise ApiError(404, "version_not_found", f"model version {version} is not published")
    return _send(job, services().store.weights_file(job.id, version), f"{job.id}-v{version}",
                 "application/octet-stream")


@bp.put("/rounds/<int:round_id>/update")
@documented(f"Upload this device's encrypted update for a round (idempotent); round_id: {ROUND_IDS}",
            body="binary", auth="device",
            headers={SIGNATURE_HEADER: "base64 DER ECDSA-SHA256 signature by the device key (docs/protocol.md, "
                                       "Device attestation); required when the job requires attestation"},
            responses={"200": ("accepted (or the first answer to the same update)", UploadAnswer),
                       "400": "payload refused: the error code says why (docs/protocol.md)",
                       "401": "the job requires attestation and the upload's signature is missing or wrong",
                       "404": "no such round in this device's job",
                       "409": "not selected, different update already sent, same bytes sent by another device, "
                              "round closed, full or past its deadline"})
def upload(round_id: int):
    metrics = services().metrics
    payload = request.get_data()  # read in full before any database access (app.py)
    signature = None  # stored with the contribution only once verified
    try:
        round_ = device_round(session(), g.device, round_id)
        if session().get(Job, g.device.job_id).config.get("require_attestation"):
            signature = request.headers.get(SIGNATURE_HEADER, "")
            check_upload_signature(g.device, round_id, payload, signature)
        admit_upload(session(), g.device, round_)
        acceptance = services().batcher.accept(session(), g.device, round_id, payload, signature)
    except ApiError as err:
        session().rollback()
        metrics.uploads.labels(err.code).inc()
        raise
    if acceptance.closed and services().publish_soon:
        services().publish_soon(round_id)  # this upload filled the round: publish now, not at the next tick
    metrics.uploads.labels("replayed" if acceptance.replayed else "accepted").inc()
    if not acceptance.replayed:
        metrics.bytes_in.inc(len(payload))
    return reply(UploadAnswer(**acceptance.answer))


@bp.post("/rounds/<int:round_id>/report")
@documented(f"Report local metrics (counts and accuracy only, never data or personal weights); "
            f"round_id: {ROUND_IDS}", body=MetricsReport, auth="device",
            responses={"200": ("stored", ReportAnswer), "404": "no such round in this device's job"})
def report(round_id: int):
    body = parse(MetricsReport)
    db = session()
    device_round(db, g.device, round_id)
    row = db.scalars(select(DeviceReport).where(DeviceReport.round_id == round_id,
                                                DeviceReport.device_id == g.device.id)).first()
    if row is None:
        row = DeviceReport(round_id=round_id, device_id=g.device.id, windows=body.windows)
        db.add(row)
    row.windows, row.accuracy, row.reported_at = body.windows, body.accuracy, utcnow()
    db.commit()
    return reply(ReportAnswer(stored=True))
