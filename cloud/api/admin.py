"""Operator API: jobs, enrolment tokens, devices. Bearer FEDWEAR_ADMIN_TOKEN."""

from __future__ import annotations

import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, request
from sqlalchemy import select

from cloud.api.errors import ApiError, require_token
from cloud.api.openapi import documented
from cloud.api.responses import JobBrief, JobList, JobSummary, Revoked, RoundSummary, TokenAnswer, reply
from cloud.api.schemas import JobConfig, TokenRequest, load_json, parse
from cloud.credentials import hash_secret
from cloud.db import Device, EnrolmentToken, Job, ModelVersion, Round, utcnow
from cloud.keyclient import KeyServiceError
from cloud.rounds import open_round
from cloud.services import services, session
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, BundleError
from sdk.crypto.errors import CodecError
from sdk.crypto.params import CryptoParams
from sdk.trainer import TFLiteTrainer

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _authenticate():
    require_token(services().settings.admin_token)


def job_summary(job: Job) -> JobSummary:
    rounds = session().scalars(select(Round).where(Round.job_id == job.id).order_by(Round.id)).all()
    return JobSummary(
        id=job.id, name=job.name, status=job.status, model_version=job.current_version,
        config=job.config, crypto=job.crypto, shared_values=job.shared_values,
        rounds=[RoundSummary(id=r.id, number=r.number, status=r.status, contributors=r.contributors,
                             model_version=r.model_version, error=r.error) for r in rounds],
    )


def _read_bundle(upload_dir: Path) -> tuple[int, "object"]:
    for field, name in (("model", MODEL_FILE), ("manifest", MANIFEST_FILE)):
        part = request.files.get(field)
        if part is None:
            raise ApiError(400, "missing_file", f"multipart field '{field}' ({name}) is required")
        part.save(upload_dir / name)
    try:
        trainer = TFLiteTrainer(upload_dir)
    except (BundleError, ValueError, RuntimeError) as exc:
        raise ApiError(400, "bad_bundle", str(exc)) from exc
    return trainer.manifest.shared.size, trainer.get_weights("shared")


@bp.post("/jobs")
@documented("Create a training job from a model bundle and a JobConfig", body="multipart", auth="admin",
            responses={"201": ("job created", JobSummary), "502": "key service unavailable"})
def create_job():
    raw = request.form.get("config")
    if raw is None:
        raise ApiError(400, "invalid_request", "multipart field 'config' (a JobConfig as JSON) is required")
    config = parse(JobConfig, load_json(raw, "config"))
    svc = services()
    try:
        public = svc.keyservice.public_key()
    except (KeyServiceError, CodecError) as exc:
        raise ApiError(502, "keyservice_unavailable", str(exc)) from exc
    try:
        params = CryptoParams(key_bits=public.bits, **config.crypto.model_dump())
    except CodecError as exc:
        raise ApiError(400, "invalid_request", f"crypto: {exc}") from exc
    job_id = secrets.token_hex(8)
    with tempfile.TemporaryDirectory() as tmp:
        values, weights = _read_bundle(Path(tmp))
        digests = {name: svc.store.write(svc.store.bundle_file(job_id, name), (Path(tmp) / name).read_bytes())
                   for name in (MODEL_FILE, MANIFEST_FILE)}
    db = session()
    job = Job(id=job_id, name=config.name, config=config.model_dump(exclude={"crypto", "name"}),
              crypto=params.to_dict(), public_key=public.to_json(),
              bundle_sha256=digests[MODEL_FILE],
              shared_values=values, current_version=1)
    db.add(job)
    db.flush()
    sha = svc.store.write_weights(job_id, 1, weights)
    db.add(ModelVersion(job_id=job_id, version=1, weights_sha256=sha))
    open_round(db, job, 1)
    db.commit()
    return reply(job_summary(job), 201)


@bp.get("/jobs")
@documented("List jobs", auth="admin", responses={"200": ("the jobs", JobList)})
def list_jobs():
    jobs = session().scalars(select(Job).order_by(Job.created_at)).all()
    return reply(JobList(jobs=[JobBrief(id=j.id, name=j.name, status=j.status, model_version=j.current_version)
                               for j in jobs]))


def _job(job_id: str) -> Job:
    job = session().get(Job, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"job {job_id} does not exist")
    return job


@bp.get("/jobs/<job_id>")
@documented("A job with its rounds", auth="admin", responses={"200": ("the job", JobSummary), "404": "no such job"})
def get_job(job_id: str):
    return reply(job_summary(_job(job_id)))


@bp.post("/jobs/<job_id>/tokens")
@documented("Create an enrolment token (single- or multi-use, expiring)", body=TokenRequest, auth="admin",
            responses={"201": ("token created; shown once", TokenAnswer), "404": "no such job"})
def create_token(job_id: str):
    job = _job(job_id)
    body = parse(TokenRequest)
    token = "enr_" + secrets.token_urlsafe(24)
    row = EnrolmentToken(id=secrets.token_hex(8), job_id=job.id, token_hash=hash_secret(token),
                         max_uses=body.max_uses, expires_at=utcnow() + timedelta(seconds=body.expires_in_s))
    db = session()
    db.add(row)
    db.commit()
    return reply(TokenAnswer(id=row.id, token=token, max_uses=row.max_uses,
                             expires_at=row.expires_at.isoformat() + "Z"), 201)


def _revoke(row: EnrolmentToken | Device | None, not_found: ApiError):
    if row is None:
        raise not_found
    row.revoked = True
    session().commit()
    return reply(Revoked(id=row.id, revoked=True))


@bp.post("/tokens/<token_id>/revoke")
@documented("Revoke an enrolment token", auth="admin",
            responses={"200": ("revoked", Revoked), "404": "no such token"})
def revoke_token(token_id: str):
    return _revoke(session().get(EnrolmentToken, token_id),
                   ApiError(404, "token_not_found", f"token {token_id} does not exist"))


@bp.post("/devices/<device_id>/revoke")
@documented("Revoke a device's credentials", auth="admin",
            responses={"200": ("revoked", Revoked), "404": "no such device"})
def revoke_device(device_id: str):
    return _revoke(session().get(Device, device_id),
                   ApiError(404, "device_not_found", f"device {device_id} does not exist"))
