"""Job lifecycle: open rounds, decide what follows a round, and the operator's stop, abort, fail and delete.

A job is `running`, `stopping` (no new round after the open one ends),
`stopped`, `aborted` or `finished`. Every change is recorded as a JobEvent
with its reason and time. A job whose last `max_failed_rounds` rounds all
failed stops by itself.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from cloud.api.errors import ApiError
from cloud.db import Base, Contribution, Device, Job, JobEvent, Round, ShardSum, utcnow
from cloud.store import FileStore

log = logging.getLogger("fedwear.lifecycle")

ACTIVE = ("running", "stopping")
ENDED = ("stopped", "aborted", "finished")
UNFINISHED_ROUNDS = ("open", "closing")
DEFAULT_MAX_FAILED_ROUNDS = 10
SHARDS = 16  # shard sums per round (fewer when max_devices is smaller): uploads lock one each, so this many add at once


def record(session: Session, job: Job, kind: str, reason: str = "", round_number: int | None = None) -> None:
    """Adds one event to the job's history and logs it."""
    session.add(JobEvent(job_id=job.id, kind=kind, reason=reason, round_number=round_number))
    log.info("job event", extra={"fields": {"job": job.id, "event": kind, "round": round_number, "reason": reason}})


def _set_status(session: Session, job: Job, status: str, reason: str, round_number: int | None = None) -> None:
    job.status = status
    record(session, job, status, reason, round_number)


def open_round(session: Session, job: Job, number: int) -> Round:
    round_ = Round(
        job_id=job.id,
        number=number,
        model_version=job.current_version,
        status="open",
        deadline=utcnow() + timedelta(seconds=job.config["round_timeout_s"]),
    )
    session.add(round_)
    session.flush()
    session.add_all(ShardSum(round_id=round_.id, shard=shard, capacity=capacity)
                    for shard, capacity in enumerate(shard_capacities(job.config["max_devices"])))
    return round_


def shard_capacities(max_devices: int) -> list[int]:
    """How many contributions each of a round's shards takes: as even as possible, summing to max_devices."""
    shards = min(SHARDS, max_devices)
    return [max_devices // shards + (shard < max_devices % shards) for shard in range(shards)]


def consecutive_failures(session: Session, job: Job) -> int:
    """How many of the job's latest rounds failed in a row."""
    statuses = session.scalars(select(Round.status).where(Round.job_id == job.id).order_by(Round.number.desc())).all()
    count = 0
    for status in statuses:
        if status != "failed":
            break
        count += 1
    return count


def forget_payloads(session: Session, round_: Round) -> None:
    """Drops the payloads an attested round kept for the key service (cloud.signed_subsums): it has ended."""
    session.execute(update(Contribution).where(Contribution.round_id == round_.id, Contribution.payload.is_not(None))
                    .values(payload=None).execution_options(synchronize_session=False))


def round_ended(session: Session, job: Job, round_: Round) -> None:
    """After a round was published or failed: drop its kept payloads, then stop, finish, or open the next round."""
    session.flush()
    forget_payloads(session, round_)
    limit = job.config.get("max_failed_rounds", DEFAULT_MAX_FAILED_ROUNDS)
    if job.status not in ACTIVE:
        return
    if round_.status == "failed" and limit and consecutive_failures(session, job) >= limit:
        _set_status(session, job, "stopped", f"{limit} rounds in a row failed; the last: {round_.error}",
                    round_.number)
    elif job.status == "stopping":
        _set_status(session, job, "stopped", f"stopped by the operator after round {round_.number}", round_.number)
    elif published_rounds(session, job) >= job.config["rounds"]:
        _set_status(session, job, "finished", f"{job.config['rounds']} rounds published", round_.number)
    else:
        open_round(session, job, round_.number + 1)


def published_rounds(session: Session, job: Job) -> int:
    return session.scalar(select(func.count()).select_from(Round)
                          .where(Round.job_id == job.id, Round.status == "published"))


def locked_job(session: Session, job_id: str) -> Job:
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise ApiError(404, "job_not_found", f"job {job_id} does not exist")
    return job


def _unfinished_rounds(session: Session, job: Job) -> list[Round]:
    return session.scalars(select(Round).where(Round.job_id == job.id, Round.status.in_(UNFINISHED_ROUNDS))
                           .with_for_update()).all()


def _fail(round_: Round, reason: str) -> None:
    round_.status, round_.closed_at, round_.error = "failed", utcnow(), reason


def stop_job(session: Session, job_id: str, reason: str = "") -> Job:
    """No new round after the open one ends (at once when none is open)."""
    job = locked_job(session, job_id)
    if job.status != "running":
        raise ApiError(409, "job_not_running", f"job {job.id} is {job.status}; only a running job can be stopped")
    if _unfinished_rounds(session, job):
        _set_status(session, job, "stopping", reason or "stop requested by the operator")
    else:
        _set_status(session, job, "stopped", reason or "stopped by the operator")
    session.commit()
    return job


def abort_job(session: Session, job_id: str, reason: str = "") -> Job:
    """Fails the open round now and ends the job."""
    job = locked_job(session, job_id)
    if job.status not in ACTIVE:
        raise ApiError(409, "job_not_running", f"job {job.id} is already {job.status}")
    reason = reason or "aborted by the operator"
    for round_ in _unfinished_rounds(session, job):
        _fail(round_, f"job aborted: {reason}")
        forget_payloads(session, round_)
        record(session, job, "round_failed", f"job aborted: {reason}", round_.number)
    _set_status(session, job, "aborted", reason)
    session.commit()
    return job


def fail_round(session: Session, job_id: str, number: int, reason: str, by: str = "the operator") -> Round:
    """Fails an open or closing round (`by` whom, for its error); the next one opens unless the job is stopping."""
    job = locked_job(session, job_id)
    round_ = session.scalars(select(Round).where(Round.job_id == job.id, Round.number == number)
                             .with_for_update()).first()
    if round_ is None:
        raise ApiError(404, "round_not_found", f"job {job.id} has no round {number}")
    if round_.status not in UNFINISHED_ROUNDS:
        raise ApiError(409, "round_not_open", f"round {number} is {round_.status}; only an open or closing round can fail")
    _fail(round_, f"failed by {by}: {reason}")
    record(session, job, "round_failed", reason, number)
    round_ended(session, job, round_)
    session.commit()
    return round_


def delete_job(session: Session, store: FileStore, job_id: str) -> None:
    """Deletes an ended job's rows (every table that refers to it) and its files."""
    job = locked_job(session, job_id)
    if job.status not in ENDED:
        raise ApiError(409, "job_not_ended", f"job {job.id} is {job.status}: stop or abort it before deleting it")
    rounds = select(Round.id).where(Round.job_id == job.id).scalar_subquery()
    devices = select(Device.id).where(Device.job_id == job.id).scalar_subquery()
    for table in reversed(Base.metadata.sorted_tables):
        if table.name == "jobs":
            continue
        columns = table.c
        if "job_id" in columns:
            session.execute(delete(table).where(columns.job_id == job.id))
        elif "round_id" in columns:
            session.execute(delete(table).where(columns.round_id.in_(rounds)))
        elif "device_id" in columns:
            session.execute(delete(table).where(columns.device_id.in_(devices)))
    session.execute(delete(Job).where(Job.id == job.id))
    session.commit()
    shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
    log.info("job deleted", extra={"fields": {"job": job_id}})
