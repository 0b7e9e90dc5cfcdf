"""Round lifecycle: accept encrypted updates durably, close, decrypt the sum, publish v+1.

Every accepted update is added to the round's running sum, written to a new
file (atomically), and recorded in the same database transaction that points
the round at that file: an answer of "accepted" means it is durable, and a
crash at any point leaves the sum and the contributions consistent.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Callable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.errors import ApiError
from cloud.db import Contribution, Device, Job, ModelVersion, Round, utcnow
from cloud.lifecycle import round_ended
from cloud.store import FileStore
from sdk.crypto.codec import EncryptedSum
from sdk.crypto.errors import DuplicatePayloadError, PayloadError
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

log = logging.getLogger("fedwear.rounds")

# (aggregate bytes, job) -> (mean update, total weight, contributors)
Decrypt = Callable[[bytes, Job, Round], tuple[np.ndarray, int, int]]


def current_round(session: Session, job: Job) -> Round | None:
    return session.scalars(
        select(Round).where(Round.job_id == job.id).order_by(Round.id.desc()).limit(1)
    ).first()


MAX_ID = 2**31 - 1  # ids are 32-bit integers in every supported database


def device_round(session: Session, device: Device, round_id: int, lock: bool = False) -> Round:
    """Round `round_id` of the device's job; one 404 for a missing round, another job's, or an id out of range."""
    if not 0 <= round_id <= MAX_ID:
        raise _round_not_found(round_id)
    query = select(Round).where(Round.id == round_id)
    round_ = session.scalars(query.with_for_update() if lock else query).first()
    if round_ is None or round_.job_id != device.job_id:
        raise _round_not_found(round_id)
    return round_


def _round_not_found(round_id: int) -> ApiError:
    return ApiError(404, "round_not_found", f"round {round_id} is not a round of this device's job")


def _refusal(exc: PayloadError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


def _refuse_copies(session: Session, job_id: str, digest: str) -> None:
    """DuplicatePayloadError if these bytes were already accepted in the job (from another device)."""
    seen = session.scalars(
        select(Contribution.id).join(Round, Round.id == Contribution.round_id)
        .where(Round.job_id == job_id, Contribution.payload_sha256 == digest).limit(1)
    ).first()
    if seen is not None:
        raise DuplicatePayloadError("these payload bytes were already accepted from another device of this job")


def accept_update(session: Session, store: FileStore, device: Device, round_id: int,
                  payload: bytes, signature: str | None = None) -> tuple[dict, bool]:
    """Adds one device's payload to a round; returns (answer, replayed).

    The same payload again gets the first answer; a different one for the
    same round is a conflict. Nothing changes unless every check passes.
    """
    round_ = device_round(session, device, round_id, lock=True)
    digest = hashlib.sha256(payload).hexdigest()
    previous = session.scalars(
        select(Contribution).where(Contribution.round_id == round_id, Contribution.device_id == device.id)
    ).first()
    if previous is not None:
        if previous.payload_sha256 == digest:
            return previous.response, True
        raise ApiError(409, "already_contributed",
                       f"this device already sent a different update for round {round_id}")
    if round_.status != "open":
        raise ApiError(409, "round_closed", f"round {round_id} is {round_.status}, no longer accepting updates")
    if utcnow() > round_.deadline:
        raise ApiError(409, "deadline_passed", f"round {round_id}'s deadline passed at {round_.deadline.isoformat()}Z")
    job = session.get(Job, round_.job_id)
    params = CryptoParams.from_dict(job.crypto)
    public = PublicKey.from_json(job.public_key)
    if round_.sum_file:
        data = store.sum_file(job.id, round_.id, round_.sum_file).read_bytes()
        running = EncryptedSum.from_bytes(data, params, public, job.shared_values, round_.id)
    else:
        running = EncryptedSum(params, public, job.shared_values, round_.id)
    try:
        running.add(payload)
        _refuse_copies(session, round_.job_id, digest)
    except PayloadError as exc:
        raise _refusal(exc) from exc
    name = f"sum-{running.contributors}-{digest[:12]}.bin"
    store.write(store.sum_file(job.id, round_.id, name), running.to_bytes())
    old = round_.sum_file
    round_.sum_file = name
    round_.contributors = running.contributors
    round_.bytes_in += len(payload)
    if round_.contributors >= job.config["max_devices"]:
        round_.status = "closing"
        round_.closed_at = utcnow()
    answer = {"accepted": True, "round_id": round_.id, "contributors": round_.contributors,
              "round_status": round_.status}
    session.add(Contribution(round_id=round_.id, device_id=device.id, payload_sha256=digest,
                             size=len(payload), response=answer, signature=signature))
    session.commit()
    if old:
        store.sum_file(job.id, round_.id, old).unlink(missing_ok=True)
    return answer, False


def close_due_rounds(session: Session, now: datetime | None = None) -> None:
    """Open rounds past their deadline: close with the minimum, else extend or fail."""
    now = now or utcnow()
    due = session.scalars(
        select(Round).where(Round.status == "open", Round.deadline < now).with_for_update()
    ).all()
    for round_ in due:
        job = session.get(Job, round_.job_id)
        config = job.config
        if round_.contributors >= config["min_devices"]:
            round_.status, round_.closed_at = "closing", now
        elif config["on_deadline"] == "extend" and round_.extensions < config["max_extensions"]:
            round_.deadline = now + timedelta(seconds=config["round_timeout_s"])
            round_.extensions += 1
            log.info("round extended", extra={"fields": {"job": job.id, "round": round_.number,
                                                         "contributors": round_.contributors,
                                                         "min_devices": config["min_devices"]}})
        else:
            round_.status, round_.closed_at = "failed", now
            round_.error = f"deadline passed with {round_.contributors} of {config['min_devices']} devices"
            round_ended(session, job, round_)
    session.commit()


def publish_closed_rounds(session: Session, store: FileStore, decrypt: Decrypt) -> int:
    """Decrypts the sums of closing rounds and publishes the next model versions; returns how many."""
    published_now = 0
    closing = session.scalars(select(Round).where(Round.status == "closing").with_for_update()).all()
    for round_ in closing:
        job = session.get(Job, round_.job_id)
        aggregate = store.sum_file(job.id, round_.id, round_.sum_file).read_bytes()
        try:
            mean, total_weight, contributors = decrypt(aggregate, job, round_)
        except Exception as exc:  # the key service may be down: retried next tick
            round_.error = f"decryption failed: {exc}"
            log.warning("decryption failed", extra={"fields": {"job": job.id, "round": round_.number,
                                                               "error": round_.error}})
            continue
        if contributors != round_.contributors:
            round_.status, round_.error = "failed", "key service counted other contributors"
            round_ended(session, job, round_)
            continue
        weights = store.read_weights(job.id, round_.model_version) + mean
        version = round_.model_version + 1
        sha = store.write_weights(job.id, version, weights)
        session.add(ModelVersion(job_id=job.id, version=version, weights_sha256=sha, round_id=round_.id))
        round_.status, round_.published_at, round_.total_weight, round_.error = "published", utcnow(), total_weight, None
        job.current_version = version
        round_ended(session, job, round_)
        published_now += 1
        log.info("round published", extra={"fields": {"job": job.id, "round": round_.number, "model_version": version,
                                                      "contributors": contributors}})
    session.commit()
    return published_now
