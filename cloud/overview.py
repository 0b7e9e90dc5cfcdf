"""What an operator reads about jobs: summaries, the open round's progress, round history,
devices, tokens and model versions (for the admin API, the CLI and the dashboard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud import privacy_budget
from cloud.db import Contribution, Device, DeviceReport, EnrolmentToken, Job, JobEvent, ModelVersion, Round, utcnow
from cloud.rounds import current_round, round_tallies
from cloud.transitions import upload_values

CHART_ROUNDS = 200  # the charts show at most the latest this many rounds


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat() + "Z"


def _round_row(r: Round, tally: tuple[int, int], accuracy: float | None = None) -> dict:
    """One round; `tally`: its contributions and their bytes (cloud.rounds.round_tallies)."""
    end = r.published_at or r.closed_at
    return {
        "id": r.id, "number": r.number, "status": r.status, "model_version": r.model_version,
        "contributors": tally[0], "extensions": r.extensions, "opened_at": iso(r.opened_at),
        "deadline": iso(r.deadline), "closed_at": iso(r.closed_at), "published_at": iso(r.published_at),
        "seconds": None if end is None else round((end - r.opened_at).total_seconds(), 1),
        "bytes_in": tally[1], "bytes_out": r.bytes_out, "total_weight": r.total_weight,
        "reported_accuracy": accuracy, "error": r.error, "subsums": r.subsums,
    }


def _reported_accuracy(db: Session, round_ids: list[int]) -> dict[int, float]:
    if not round_ids:
        return {}
    rows = db.execute(select(DeviceReport.round_id, func.avg(DeviceReport.accuracy))
                      .where(DeviceReport.round_id.in_(round_ids)).group_by(DeviceReport.round_id)).all()
    return {round_id: None if value is None else round(float(value), 4) for round_id, value in rows}


def progress(db: Session, job: Job) -> dict | None:
    """The latest round's progress: contributors against the minimum and maximum, deadline, extensions."""
    r = current_round(db, job)
    if r is None:
        return None
    config = job.config
    return {**round_rows(db, [r])[0], "min_devices": config["min_devices"], "max_devices": config["max_devices"],
            "max_extensions": config["max_extensions"],
            "seconds_left": max(0.0, round((r.deadline - utcnow()).total_seconds(), 1)) if r.status == "open" else None}


def job_counts(db: Session, job: Job) -> dict:
    rounds = dict(db.execute(select(Round.status, func.count()).where(Round.job_id == job.id)
                             .group_by(Round.status)).all())
    return {
        "rounds_published": rounds.get("published", 0), "rounds_failed": rounds.get("failed", 0),
        "rounds_extended": db.scalar(select(func.count()).select_from(Round)
                                     .where(Round.job_id == job.id, Round.extensions > 0)),
        "devices": db.scalar(select(func.count()).select_from(Device).where(Device.job_id == job.id)),
    }


def events(db: Session, job: Job) -> list[dict]:
    rows = db.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)).all()
    return [{"at": iso(e.at), "kind": e.kind, "round": e.round_number, "reason": e.reason} for e in rows]


def job_brief(db: Session, job: Job) -> dict:
    """One job in a list."""
    latest = db.scalars(select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.kind == job.status)
                        .order_by(JobEvent.id.desc())).first()
    return {"id": job.id, "name": job.name, "status": job.status, "model_version": job.current_version,
            "created_at": iso(job.created_at), "status_reason": latest.reason if latest else "",
            **job_counts(db, job), "open_round": progress(db, job)}


def jobs(db: Session) -> list[dict]:
    return [job_brief(db, job) for job in db.scalars(select(Job).order_by(Job.created_at)).all()]


def privacy(db: Session, job: Job) -> dict | None:
    """The job's differential-privacy budget (None without privacy): epsilon at its delta over the rounds
    that released a sum, counting published rounds and failed ones that reached min_devices (the key
    service may have decrypted them)."""
    settings = job.config.get("privacy")
    if settings is None:
        return None
    rounds = db.execute(select(Round.id, Round.status).where(
        Round.job_id == job.id, Round.status.in_(("published", "failed")))).all()
    tallies = round_tallies(db, [r.id for r in rounds if r.status == "failed"])
    released = sum(1 for r in rounds if r.status == "published"
                   or tallies.get(r.id, (0, 0))[0] >= job.config["min_devices"])
    return privacy_budget.budget(settings, released, job.config["rounds"])


def job_summary(db: Session, job: Job) -> dict:
    """A job with its configuration, every round (deadlines, extensions, timestamps) and its events."""
    rounds = db.scalars(select(Round).where(Round.job_id == job.id).order_by(Round.number)).all()
    return {**job_brief(db, job), "config": job.config, "crypto": job.crypto, "shared_values": job.shared_values,
            "upload_values": upload_values(job), "privacy_budget": privacy(db, job),
            "rounds": round_rows(db, rounds), "events": events(db, job)}


def round_rows(db: Session, rounds: list[Round]) -> list[dict]:
    """The rounds as the admin API shows them, with their contributions counted and reported accuracy."""
    ids = [r.id for r in rounds]
    accuracy, tallies = _reported_accuracy(db, ids), round_tallies(db, ids)
    return [_round_row(r, tallies.get(r.id, (0, 0)), accuracy.get(r.id)) for r in rounds]


def rounds_page(db: Session, job: Job, page: int, per_page: int) -> dict:
    """Round history, newest first."""
    total = db.scalar(select(func.count()).select_from(Round).where(Round.job_id == job.id))
    rounds = db.scalars(select(Round).where(Round.job_id == job.id).order_by(Round.number.desc())
                        .offset((page - 1) * per_page).limit(per_page)).all()
    return {"total": total, "page": page, "per_page": per_page, "pages": max(1, -(-total // per_page)),
            "rounds": round_rows(db, rounds)}


def chart_series(db: Session, job: Job) -> list[dict]:
    """Per round (oldest first, the latest CHART_ROUNDS): number, contributors, mean reported accuracy."""
    rounds = list(reversed(db.scalars(select(Round).where(Round.job_id == job.id)
                                      .order_by(Round.number.desc()).limit(CHART_ROUNDS)).all()))
    return [{"number": row["number"], "status": row["status"], "contributors": row["contributors"],
             "accuracy": row["reported_accuracy"]} for row in round_rows(db, rounds)]


def devices(db: Session, job: Job) -> list[dict]:
    """Enrolled devices: when, last seen (latest upload or report), rounds contributed, revoked."""
    uploads = dict(db.execute(select(Contribution.device_id, func.max(Contribution.accepted_at))
                              .join(Device, Device.id == Contribution.device_id).where(Device.job_id == job.id)
                              .group_by(Contribution.device_id)).all())
    counts = dict(db.execute(select(Contribution.device_id, func.count())
                             .join(Device, Device.id == Contribution.device_id).where(Device.job_id == job.id)
                             .group_by(Contribution.device_id)).all())
    reports = dict(db.execute(select(DeviceReport.device_id, func.max(DeviceReport.reported_at))
                              .join(Device, Device.id == DeviceReport.device_id).where(Device.job_id == job.id)
                              .group_by(DeviceReport.device_id)).all())
    rows = []
    for d in db.scalars(select(Device).where(Device.job_id == job.id).order_by(Device.enrolled_at)).all():
        seen = [t for t in (uploads.get(d.id), reports.get(d.id)) if t is not None]
        rows.append({"id": d.id, "name": d.name, "token_id": d.token_id, "enrolled_at": iso(d.enrolled_at),
                     "last_seen": iso(max(seen)) if seen else None, "rounds_contributed": counts.get(d.id, 0),
                     "revoked": d.revoked, "device_key": d.device_key})
    return rows


def tokens(db: Session, job: Job) -> list[dict]:
    now = utcnow()
    return [{"id": t.id, "max_uses": t.max_uses, "uses": t.uses, "expires_at": iso(t.expires_at),
             "expired": now > t.expires_at, "revoked": t.revoked}
            for t in db.scalars(select(EnrolmentToken).where(EnrolmentToken.job_id == job.id)
                                .order_by(EnrolmentToken.expires_at)).all()]


def versions(db: Session, job: Job) -> list[dict]:
    numbers = dict(db.execute(select(Round.id, Round.number).where(Round.job_id == job.id)).all())
    return [{"version": v.version, "round": numbers.get(v.round_id), "created_at": iso(v.created_at),
             "weights_sha256": v.weights_sha256}
            for v in db.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)
                                .order_by(ModelVersion.version.desc())).all()]
