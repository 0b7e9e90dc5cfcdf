"""Device API: enrol, plan, bundle and weights download, update upload, metrics report."""

from __future__ import annotations

import secrets

from flask import Blueprint, g, request, send_file
from sqlalchemy import select

from cloud.api.errors import ApiError
from cloud.api.openapi import documented
from cloud.api.responses import (
    EnrolAnswer,
    Plan,
    PlanCrypto,
    PlanRound,
    ReportAnswer,
    UploadAnswer,
    reply,
)
from cloud.api.schemas import EnrolRequest, Hyperparameters, MetricsReport, parse
from cloud.credentials import authenticate_device, hash_secret
from cloud.db import Device, DeviceReport, EnrolmentToken, Job, utcnow
from cloud.rounds import current_round, device_round
from cloud.services import services, session
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, Manifest

bp = Blueprint("device", __name__, url_prefix="/v1")
ROUND_IDS = "round.id of the plan (not round.number)"


@bp.before_request
def _authenticate():
    if request.endpoint != "device.enrol":
        g.device = authenticate_device(session())


@bp.post("/enrol")
@documented("Enrol with an enrolment token; returns device credentials (shown once)", body=EnrolRequest,
            responses={"201": ("enrolled", EnrolAnswer), "403": "token expired, used up or revoked"})
def enrol():
    body = parse(EnrolRequest)
    db = session()
    token = db.scalars(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == hash_secret(body.token)).with_for_update()
    ).first()
    if token is None:
        raise ApiError(401, "unauthorized", "unknown enrolment token")
    if token.revoked:
        raise ApiError(403, "token_revoked", "this enrolment token was revoked")
    if utcnow() > token.expires_at:
        raise ApiError(403, "token_expired", f"this enrolment token expired at {token.expires_at.isoformat()}Z")
    if token.max_uses is not None and token.uses >= token.max_uses:
        raise ApiError(403, "token_used", "this enrolment token has been used up")
    token.uses += 1
    device_id, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
    db.add(Device(id=device_id, job_id=token.job_id, name=body.name, secret_hash=hash_secret(secret),
                  token_id=token.id))
    db.commit()
    return reply(EnrolAnswer(device_id=device_id, device_secret=secret, job_id=token.job_id,
                             authorization=f"Bearer {device_id}.{secret}"), 201)


@bp.get("/plan")
@documented("The device's job: model version, current round, crypto parameters, hyper-parameters", auth="device",
            responses={"200": ("the plan", Plan)})
def plan():
    db = session()
    job = db.get(Job, g.device.job_id)
    round_ = current_round(db, job)
    return reply(Plan(
        job_id=job.id, job_status=job.status, model_version=job.current_version,
        round=None if round_ is None else PlanRound(
            id=round_.id, number=round_.number, status=round_.status,
            model_version=round_.model_version, deadline=round_.deadline.isoformat() + "Z"),
        crypto=PlanCrypto(**job.crypto, public_key=job.public_key),
        hyperparameters=Hyperparameters(**job.config["hyperparameters"]),
        bundle_sha256=job.bundle_sha256, shared_values=job.shared_values,
        min_devices=job.config["min_devices"], max_devices=job.config["max_devices"],
    ))


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
            responses={"200": ("accepted (or the first answer to the same update)", UploadAnswer),
                       "400": "payload refused: the error code says why (docs/protocol.md)",
                       "404": "no such round in this device's job",
                       "409": "different update already sent, same bytes sent by another device, round closed, "
                              "full or past its deadline"})
def upload(round_id: int):
    metrics = services().metrics
    payload = request.get_data()  # read in full before any database access (app.py)
    try:
        acceptance = services().batcher.accept(session(), g.device, round_id, payload)
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
