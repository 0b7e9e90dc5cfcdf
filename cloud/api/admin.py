"""Operator API: jobs and their lifecycle, enrolment tokens, devices, model versions.

Bearer FEDWEAR_ADMIN_TOKEN. GET routes also accept the dashboard's HTTP basic
auth (user admin, password: the admin token), so that its page can poll them; routes that
change anything take the bearer token only, which a browser never sends on
its own (no cross-site request forgery).
"""

from __future__ import annotations

import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, request, send_file

from cloud import lifecycle, overview
from cloud.api.errors import ApiError, dashboard_login, require_token
from cloud.api.openapi import documented
from cloud.api.responses import (Deleted, DevicesAndTokens, JobBrief, JobList, JobSummary, Revoked,
                                 RoundFailed, RoundsPage, RoundSummary, TokenAnswer, VersionList, reply)
from cloud.api.schemas import FailRoundRequest, JobConfig, ReasonRequest, TokenRequest, load_json, parse
from cloud.credentials import hash_secret
from cloud.db import Device, EnrolmentToken, Job, ModelVersion, utcnow
from cloud.keyclient import KeyServiceError
from cloud.lifecycle import open_round
from cloud.services import services, session
from sdk.bundle import MANIFEST_FILE, MODEL_FILE, BundleError, load_inference_model
from sdk.crypto.errors import CodecError
from sdk.crypto.params import CryptoParams
from sdk.trainer import TFLiteTrainer

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _authenticate():
    token = services().settings.admin_token
    if request.method == "GET" and dashboard_login(token):
        return
    require_token(token)


def _read_bundle(upload_dir: Path) -> tuple[TFLiteTrainer, tuple[str, ...]]:
    """Saves the form's bundle files into upload_dir and loads it; returns the trainer and the bundle's files.

    Beside model and manifest, every inference model the manifest lists comes in a field named by its file.
    """
    for field, name in (("model", MODEL_FILE), ("manifest", MANIFEST_FILE)):
        part = request.files.get(field)
        if part is None:
            raise ApiError(400, "missing_file", f"multipart field '{field}' ({name}) is required")
        part.save(upload_dir / name)
    try:
        trainer = TFLiteTrainer(upload_dir)
        for kind, entry in trainer.manifest.inference.items():
            part = request.files.get(entry["file"])
            if part is None:
                raise ApiError(400, "missing_file", f"the manifest lists the {kind} inference model "
                                                    f"'{entry['file']}': send it in the multipart field of that name")
            part.save(upload_dir / entry["file"])
            load_inference_model(upload_dir, kind)
    except (BundleError, ValueError, RuntimeError) as exc:
        raise ApiError(400, "bad_bundle", str(exc)) from exc
    return trainer, trainer.manifest.files


def _transition_classes(config: JobConfig, manifest) -> int:
    """K when the job's uploads carry transition counts over the bundle's K labels, else 0."""
    if not config.transition_counts:
        return 0
    if not manifest.spec.classifies_windows:
        raise ApiError(400, "invalid_request", "transition_counts needs a bundle that classifies windows of a "
                                               "time series; this one does not: leave transition_counts off")
    return manifest.num_classes


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
        trainer, files = _read_bundle(Path(tmp))
        values, weights = trainer.manifest.shared.size, trainer.get_weights("shared")
        classes = _transition_classes(config, trainer.manifest)
        digests = {name: svc.store.write(svc.store.bundle_file(job_id, name), (Path(tmp) / name).read_bytes())
                   for name in files}
    db = session()
    job = Job(id=job_id, name=config.name, config=config.model_dump(exclude={"crypto", "name"}),
              crypto=params.to_dict(), public_key=public.to_json(),
              bundle_sha256=digests[MODEL_FILE],
              shared_values=values, transition_classes=classes, current_version=1)
    db.add(job)
    db.flush()
    sha = svc.store.write_weights(job_id, 1, weights)
    db.add(ModelVersion(job_id=job_id, version=1, weights_sha256=sha))
    open_round(db, job, 1)
    lifecycle.record(db, job, "created", f"{config.rounds} rounds, {config.min_devices}-{config.max_devices} devices")
    db.commit()
    return reply(JobSummary.model_validate(overview.job_summary(db, job)), 201)


@bp.get("/jobs")
@documented("List jobs with their status and the open round's progress", auth="admin",
            responses={"200": ("the jobs", JobList)})
def list_jobs():
    return reply(JobList.model_validate({"jobs": overview.jobs(session())}))


def _job(job_id: str) -> Job:
    job = session().get(Job, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"job {job_id} does not exist")
    return job


@bp.get("/jobs/<job_id>")
@documented("A job with its rounds (deadlines, extensions, timestamps) and events", auth="admin",
            responses={"200": ("the job", JobSummary), "404": "no such job"})
def get_job(job_id: str):
    return reply(JobSummary.model_validate(overview.job_summary(session(), _job(job_id))))


def _page_argument(name: str, default: int, most: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, "invalid_request", f"{name} must be an integer from 1 to {most}, got {raw[:20]!r}")
    return int(raw)


@bp.get("/jobs/<job_id>/rounds")
@documented("A page of a job's rounds, newest first (query: page, per_page up to 500)", auth="admin",
            responses={"200": ("a page of rounds", RoundsPage), "404": "no such job"})
def list_rounds(job_id: str):
    job = _job(job_id)
    return reply(RoundsPage.model_validate(overview.rounds_page(session(), job, _page_argument("page", 1, 1_000_000),
                                                                _page_argument("per_page", 20, 500))))


@bp.get("/jobs/<job_id>/devices")
@documented("A job's devices (enrolled, last seen, rounds contributed, revoked) and enrolment tokens",
            auth="admin", responses={"200": ("devices and tokens", DevicesAndTokens), "404": "no such job"})
def list_devices(job_id: str):
    job = _job(job_id)
    return reply(DevicesAndTokens.model_validate({"devices": overview.devices(session(), job),
                                                  "tokens": overview.tokens(session(), job)}))


@bp.get("/jobs/<job_id>/versions")
@documented("A job's published model versions", auth="admin",
            responses={"200": ("the versions", VersionList), "404": "no such job"})
def list_versions(job_id: str):
    return reply(VersionList.model_validate({"versions": overview.versions(session(), _job(job_id))}))


@bp.get("/jobs/<job_id>/weights/<int:version>")
@documented("Download a model version's shared weights (little-endian float32)", auth="admin",
            produces="application/octet-stream", responses={"200": "weights", "404": "no such version"})
def download_weights(job_id: str, version: int):
    job = _job(job_id)
    path = services().store.weights_file(job.id, version)
    if not 1 <= version <= job.current_version or not path.is_file():
        raise ApiError(404, "version_not_found", f"job {job.id} has no model version {version}")
    return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=f"{job.id}-v{version}.f32")


@bp.post("/jobs/<job_id>/stop")
@documented("Stop a job: no new round after the open one ends", body=ReasonRequest, auth="admin",
            responses={"200": ("stopping, or stopped when no round was open", JobBrief), "404": "no such job",
                       "409": "job not running"})
def stop_job(job_id: str):
    return _change_status(lifecycle.stop_job, job_id)


@bp.post("/jobs/<job_id>/abort")
@documented("Abort a job: its open round fails now", body=ReasonRequest, auth="admin",
            responses={"200": ("aborted", JobBrief), "404": "no such job", "409": "job already ended"})
def abort_job(job_id: str):
    return _change_status(lifecycle.abort_job, job_id)


def _change_status(change, job_id: str):
    """Applies a lifecycle change with the body's reason; answers the job's new state."""
    job = change(session(), job_id, parse(ReasonRequest).reason)
    return reply(JobBrief.model_validate(overview.job_brief(session(), job)))


@bp.delete("/jobs/<job_id>")
@documented("Delete a stopped, aborted or finished job with its devices, rounds and files", auth="admin",
            responses={"200": ("deleted", Deleted), "404": "no such job", "409": "job still running"})
def delete_job(job_id: str):
    lifecycle.delete_job(session(), services().store, job_id)
    return reply(Deleted(id=job_id, deleted=True))


@bp.post("/jobs/<job_id>/rounds/<int:number>/fail")
@documented("Fail an open or closing round with a reason; the next opens unless the job is stopping",
            body=FailRoundRequest, auth="admin",
            responses={"200": ("failed", RoundFailed), "404": "no such job or round", "409": "round already ended"})
def fail_round(job_id: str, number: int):
    round_ = lifecycle.fail_round(session(), job_id, number, parse(FailRoundRequest).reason)
    job = session().get(Job, job_id)
    return reply(RoundFailed(round=RoundSummary.model_validate(overview.round_rows(session(), [round_])[0]),
                             job=JobBrief.model_validate(overview.job_brief(session(), job))))


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
