"""Round lifecycle: accept encrypted updates durably, close, decrypt the sub-sums, publish v+1.

An accepted update is multiplied into one of the round's shard sums
(cloud.db.ShardSum): the new sum is written as the shard's next generation,
a file of the data directory fsynced beside the current one
(cloud.store.FileStore.write_sum), and the transaction that records the
contribution makes that generation current. An answer of "accepted" means it
is durable, and a crash at any point leaves sums and contributions
consistent: an uncommitted generation is never read, and the next upload to
the shard writes over it. The database so carries rows of a few bytes, not
the sums' hundreds of kilobytes per upload.
An upload locks only one shard with room (SKIP LOCKED on PostgreSQL) and
writes no row that every upload writes, so several workers, on one host or
many, add to one round at once. The shards' capacities sum to max_devices;
after its commit, an upload closes the round if the shards are full.

At close the shards are grouped into sub-sums (cloud.subsums), each
decrypted by the key service and range-checked on its own. No database
transaction is open while the key service is called.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.errors import ApiError
from cloud.attested_rounds import signed_subsum
from cloud.db import Contribution, Device, Job, ModelVersion, Round, ShardSum, utcnow
from cloud.keyclient import Decryption, KeyServiceRefusal
from cloud.lifecycle import UNFINISHED_ROUNDS, fail_round, record, round_ended
from cloud.store import FileStore, MissingSumError
from cloud.subsums import Outcome, answer_problem, combine, group_shards
from cloud.transitions import published_counts, upload_values
from sdk.crypto.codec import EncryptedSum
from sdk.crypto.errors import DuplicatePayloadError, PayloadError
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams

log = logging.getLogger("fedwear.rounds")

# (sub-sum as sent to the key service, job, round, part) -> the key service's answer
Decrypt = Callable[[bytes, Job, Round, int], Decryption]
DEFAULT_SUBSUMS = 4  # cloud.api.schemas.JobSettings.subsums
CLAIM = timedelta(seconds=150)  # how long one publisher holds a closing round (longer than a key-service call)


def current_round(session: Session, job: Job) -> Round | None:
    return session.scalars(
        select(Round).where(Round.job_id == job.id).order_by(Round.id.desc()).limit(1)
    ).first()


MAX_ID = 2**31 - 1  # ids are 32-bit integers in every supported database


def device_round(session: Session, device: Device, round_id: int) -> Round:
    """Round `round_id` of the device's job; one 404 for a missing round, another job's, or an id out of range."""
    if not 0 <= round_id <= MAX_ID:
        raise _round_not_found(round_id)
    round_ = session.get(Round, round_id)
    if round_ is None or round_.job_id != device.job_id:
        raise _round_not_found(round_id)
    return round_


def _round_not_found(round_id: int) -> ApiError:
    return ApiError(404, "round_not_found", f"round {round_id} is not a round of this device's job")


def _round_closed(round_: Round) -> ApiError:
    return ApiError(409, "round_closed", f"round {round_.id} is {round_.status}, no longer accepting updates")


def _refuse_copies(session: Session, job_id: str, digest: str) -> None:
    """DuplicatePayloadError if these bytes were already accepted in the job (from another device)."""
    seen = session.scalars(
        select(Contribution.id).join(Round, Round.id == Contribution.round_id)
        .where(Round.job_id == job_id, Contribution.payload_sha256 == digest).limit(1)
    ).first()
    if seen is not None:
        raise DuplicatePayloadError("these payload bytes were already accepted from another device of this job")


def _lock_shard(session: Session, round_id: int) -> ShardSum | None:
    """The emptiest shard of the round with room that no other upload holds (when all are held, the emptiest with
    room, waited for), locked; None when every shard is full."""
    query = (select(ShardSum).where(ShardSum.round_id == round_id, ShardSum.contributors < ShardSum.capacity)
             .order_by(ShardSum.contributors, ShardSum.shard).limit(1))
    return (session.scalars(query.with_for_update(skip_locked=True)).first()
            or session.scalars(query.with_for_update()).first())


def round_tallies(session: Session, round_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per round: (contributions accepted, their bytes), as committed (and as this session wrote)."""
    if not round_ids:
        return {}
    rows = session.execute(select(Contribution.round_id, func.count(), func.sum(Contribution.size))
                           .where(Contribution.round_id.in_(round_ids)).group_by(Contribution.round_id)).all()
    return {round_id: (count, int(size)) for round_id, count, size in rows}


def _filled(round_id: int):
    """SELECT the number of contributions the round's shards hold."""
    return select(func.coalesce(func.sum(ShardSum.contributors), 0)).where(ShardSum.round_id == round_id)


def close_if_full(session: Session, round_id: int, max_devices: int) -> bool:
    """Closes the round (open -> closing) if its shards hold max_devices contributions; True if this call closed it.

    One conditional UPDATE, run after each commit of uploads (and by every tick,
    for an upload killed between its commit and this): whichever caller sees
    the round full first closes it, exactly once.
    """
    full = _filled(round_id).scalar_subquery() >= max_devices
    closed = session.execute(
        update(Round).where(Round.id == round_id, Round.status == "open", full)
        .values(status="closing", closed_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    session.commit()
    return closed == 1


def closed_after_commit(session: Session, round_id: int, max_devices: int) -> bool:
    """close_if_full right after uploads committed; a database error there leaves the closing to the round ticker,
    since the uploads stand."""
    try:
        return close_if_full(session, round_id, max_devices)
    except SQLAlchemyError:
        session.rollback()
        return False


@dataclass(frozen=True)
class Acceptance:
    """What became of an upload: the answer, whether it repeats an earlier one, whether this upload closed the round."""

    answer: dict
    replayed: bool = False
    closed: bool = False


def add_alone(session: Session, store: FileStore, device: Device, round_id: int, payload: bytes,
              signature: str | None = None) -> Acceptance:
    """Adds one device's payload to a round in a transaction of its own, then closes the round if it is full.

    The same payload again gets the first answer; a different one for the
    same round is a conflict. Nothing changes unless every check passes.
    Uploads normally arrive in batches (cloud.batches), which decide here
    what they cannot decide together.
    """
    try:
        return _accept(session, store, device, round_id, payload, signature)
    except IntegrityError:  # the same device, or the same bytes, committed concurrently: answer as if after it
        session.rollback()
        return _accept(session, store, device, round_id, payload, signature)


@dataclass(frozen=True)
class Checked:
    """An upload that passed the checks made before any shard is locked: its job, its round's size, its digest,
    and its verified signature (attested jobs)."""

    job: Job
    max_devices: int
    digest: str
    signature: str | None = None

    def contribution(self, round_id: int, device_id: str, shard: int, payload: bytes, answer: dict) -> Contribution:
        """The contribution's row; an attested job keeps the payload for the key service until the round ends."""
        attested = self.job.config.get("require_attestation")
        return Contribution(round_id=round_id, device_id=device_id, shard=shard, payload_sha256=self.digest,
                            size=len(payload), response=answer, signature=self.signature,
                            payload=payload if attested else None)


def check_upload(session: Session, device: Device, round_id: int, payload: bytes,
                 signature: str | None = None) -> Checked | Acceptance:
    """The checks before a shard is locked: the first answer again for a replay (Acceptance), else Checked.

    ApiError for another round's id, a different update from this device,
    a round no longer open or past its deadline.
    """
    round_ = device_round(session, device, round_id)
    digest = hashlib.sha256(payload).hexdigest()
    previous = session.scalars(
        select(Contribution).where(Contribution.round_id == round_id, Contribution.device_id == device.id)
    ).first()
    if previous is not None:
        if previous.payload_sha256 == digest:
            return Acceptance(previous.response, replayed=True)
        raise ApiError(409, "already_contributed",
                       f"this device already sent a different update for round {round_id}")
    if round_.status != "open":
        raise _round_closed(round_)
    if utcnow() > round_.deadline:
        raise ApiError(409, "deadline_passed", f"round {round_id}'s deadline passed at {round_.deadline.isoformat()}Z")
    job = session.get(Job, round_.job_id)
    return Checked(job, job.config["max_devices"], digest, signature)


def locked_shard(session: Session, store: FileStore, job: Job, round_id: int) -> tuple[ShardSum, EncryptedSum]:
    """A shard of the round with room, locked, and its sum to add to; ApiError when the round is no longer open.

    The round's status is read after the shard is locked: a publisher reads
    the shards with a lock that waits for this upload, after the round left
    `open`, so an upload is either in the sum it reads or refused.
    """
    shard = _lock_shard(session, round_id)
    status = session.scalar(select(Round.status).where(Round.id == round_id))
    if status != "open" or shard is None:
        raise ApiError(409, "round_closed", f"round {round_id} is {status if status != 'open' else 'full'}, "
                                            "no longer accepting updates")
    params, public = CryptoParams.from_dict(job.crypto), PublicKey.from_json(job.public_key)
    if not shard.generation:
        return shard, EncryptedSum(params, public, upload_values(job), round_id)
    try:
        stored = store.read_sum(job.id, round_id, shard.shard, shard.generation)
    except MissingSumError as exc:
        session.rollback()
        raise _lost(session, job, round_id, exc) from None
    return shard, EncryptedSum.from_bytes(stored, params, public, upload_values(job), round_id)


def _lost(session: Session, job: Job, round_id: int, exc: MissingSumError) -> ApiError:
    """Fails a round whose sum file is missing (no retry brings it back; the job goes on as after any failed
    round); the answer for an upload to it."""
    number = session.scalar(select(Round.number).where(Round.id == round_id))
    try:
        fail_round(session, job.id, number, str(exc), by="the service")
        log.error("sum missing", extra={"fields": {"job": job.id, "round": number, "error": str(exc)}})
    except ApiError:  # another upload or publisher failed it first
        session.rollback()
    return ApiError(409, "round_closed", f"round {round_id} failed: {exc}")


def shard_written(session: Session, store: FileStore, job: Job, shard: ShardSum, running: EncryptedSum,
                  max_devices: int) -> dict:
    """Writes the shard's next generation and its count (the row not yet committed); the answer for the
    contributions just added. After the commit, `superseded` removes the generation it replaced."""
    store.write_sum(job.id, shard.round_id, shard.shard, shard.generation + 1, running.to_bytes())
    shard.generation, shard.contributors = shard.generation + 1, running.contributors
    session.flush()
    contributors = session.scalar(_filled(shard.round_id))
    return {"accepted": True, "round_id": shard.round_id, "contributors": contributors,
            "round_status": "closing" if contributors >= max_devices else "open"}


def superseded(store: FileStore, job: Job, shard: ShardSum) -> None:
    """Removes the generation a committed write of the shard replaced."""
    store.discard_sum(job.id, shard.round_id, shard.shard, shard.generation - 1)


def refusal(exc: PayloadError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


def _accept(session: Session, store: FileStore, device: Device, round_id: int, payload: bytes,
            signature: str | None) -> Acceptance:
    """Adds the payload to a shard with room and records the contribution, in one transaction."""
    checked = check_upload(session, device, round_id, payload, signature)
    if isinstance(checked, Acceptance):
        return checked
    shard, running = locked_shard(session, store, checked.job, round_id)
    try:
        running.add(payload)
        _refuse_copies(session, checked.job.id, checked.digest)
    except PayloadError as exc:
        raise refusal(exc) from exc
    answer = shard_written(session, store, checked.job, shard, running, checked.max_devices)
    session.add(checked.contribution(round_id, device.id, shard.shard, payload, answer))
    session.commit()
    superseded(store, checked.job, shard)
    return Acceptance(answer, closed=closed_after_commit(session, round_id, checked.max_devices))


def close_due_rounds(session: Session, now: datetime | None = None) -> None:
    """Open rounds that are full close; those past their deadline close with the minimum, else extend or fail."""
    now = now or utcnow()
    for round_id, job_id in session.execute(select(Round.id, Round.job_id).where(Round.status == "open")).all():
        close_if_full(session, round_id, session.get(Job, job_id).config["max_devices"])
    due = session.scalars(
        select(Round).where(Round.status == "open", Round.deadline < now).with_for_update()
    ).all()
    ids = [r.id for r in due]
    if ids:  # wait for uploads still adding to these rounds' shards, so that the count below holds them
        session.execute(select(ShardSum.id).where(ShardSum.round_id.in_(ids)).with_for_update(read=True)).all()
    tallies = round_tallies(session, ids)
    for round_ in due:
        job = session.get(Job, round_.job_id)
        config = job.config
        contributors = tallies.get(round_.id, (0, 0))[0]
        if contributors >= config["min_devices"]:
            round_.status, round_.closed_at = "closing", now
        elif config["on_deadline"] == "extend" and round_.extensions < config["max_extensions"]:
            round_.deadline = now + timedelta(seconds=config["round_timeout_s"])
            round_.extensions += 1
            log.info("round extended", extra={"fields": {"job": job.id, "round": round_.number,
                                                         "contributors": contributors,
                                                         "min_devices": config["min_devices"]}})
        else:
            round_.status, round_.closed_at = "failed", now
            round_.error = f"deadline passed with {contributors} of {config['min_devices']} devices"
            round_ended(session, job, round_)
    session.commit()


@dataclass(frozen=True)
class SubsumCall:
    """One sub-sum to decrypt: its index, what the key service is sent (its aggregate, or its signed
    contributions), and the contributions the database counted in it."""

    part: int
    subsum: bytes
    counted: int


def subsum_calls(session: Session, store: FileStore, job: Job, round_: Round) -> list[SubsumCall]:
    """The round's shards grouped into sub-sums (cloud.subsums.group_shards), each multiplied into one aggregate
    or, for a job that requires attestation, given as its signed contributions (cloud.attested_rounds).

    Reads every shard FOR SHARE: an upload still adding to one (it saw the
    round open) is waited for, so its contribution is in the sum.
    """
    locked = session.scalars(select(ShardSum).where(ShardSum.round_id == round_.id)
                             .with_for_update(read=True)).all()
    shards = {s.shard: s for s in locked if s.contributors > 0}
    counted = dict(session.execute(select(Contribution.shard, func.count()).where(Contribution.round_id == round_.id)
                                   .group_by(Contribution.shard)).all())
    params, public = CryptoParams.from_dict(job.crypto), PublicKey.from_json(job.public_key)
    groups = group_shards({i: s.contributors for i, s in shards.items()}, job.config["min_devices"],
                          job.config.get("subsums", DEFAULT_SUBSUMS))
    calls = []
    for part, group in enumerate(groups):
        if job.config.get("require_attestation"):  # the key service verifies and multiplies them itself
            subsum = signed_subsum(session, round_.id, group, sum(shards[shard].contributors for shard in group))
        else:
            total = EncryptedSum(params, public, upload_values(job), round_.id)
            for shard in group:
                total.add_sum(store.read_sum(job.id, round_.id, shard, shards[shard].generation))
            subsum = total.to_bytes()
        calls.append(SubsumCall(part, subsum, sum(counted.get(shard, 0) for shard in group)))
    return calls


def _decrypt_all(decrypt: Decrypt, job: Job, round_: Round, calls: list[SubsumCall]) -> list[Outcome]:
    """Every sub-sum decrypted and checked, or dropped with the reason; KeyServiceError (not a refusal) propagates."""
    params = CryptoParams.from_dict(job.crypto)

    def outcome(call: SubsumCall) -> Outcome:
        try:
            answer = decrypt(call.subsum, job, round_, call.part)
        except KeyServiceRefusal as exc:
            return Outcome(call.part, call.counted, dropped=str(exc))
        problem = answer_problem(answer.mean, answer.total_weight, answer.contributors, call.counted,
                                 upload_values(job), params)
        return Outcome(call.part, call.counted, answer.total_weight, None if problem else answer.mean, problem)

    with ThreadPoolExecutor(max(1, len(calls))) as pool:  # the key service decrypts them side by side
        return list(pool.map(outcome, calls))


def publish_round(sessions: sessionmaker, store: FileStore, decrypt: Decrypt, round_id: int) -> bool:
    """Decrypts a closing round's sub-sums and publishes the next model version, or fails the round; True if published.

    Reads what it needs and ends that transaction, calls the key service, then
    writes the result in a new transaction that first checks the round is
    still closing. One publisher at a time claims the round (for CLAIM, so a
    killed one is replaced); when the key service cannot be reached the round
    stays closing, retried next tick.
    """
    if not _claim(sessions, round_id):
        return False
    with sessions() as db:
        round_ = db.get(Round, round_id)
        job = db.get(Job, round_.job_id)
    try:
        with sessions() as db:
            calls = subsum_calls(db, store, job, round_)
        outcomes = _decrypt_all(decrypt, job, round_, calls)
    except MissingSumError as exc:  # no retry brings it back
        with sessions() as db:
            _lost(db, job, round_id, exc)
        return False
    except Exception as exc:  # unreachable, or failing (5xx): retried next tick
        _note(sessions, round_id, f"decryption failed, retried: {exc}")
        log.warning("decryption failed", extra={"fields": {"job": job.id, "round": round_.number, "error": str(exc)}})
        return False
    with sessions() as db:
        round_ = db.scalars(select(Round).where(Round.id == round_id).with_for_update()).one()
        if round_.status != "closing":
            return False
        published = _finish(db, store, db.get(Job, round_.job_id), round_, outcomes)
        db.commit()
    return published


def _claim(sessions: sessionmaker, round_id: int) -> bool:
    """Whether this caller may publish the round: it is closing and no other publisher's claim runs."""
    now = utcnow()
    with sessions() as db:
        claimed = db.execute(
            update(Round).where(Round.id == round_id, Round.status == "closing",
                                or_(Round.publishing_until.is_(None), Round.publishing_until < now))
            .values(publishing_until=now + CLAIM).execution_options(synchronize_session=False)).rowcount
        db.commit()
    return claimed == 1


def _note(sessions: sessionmaker, round_id: int, error: str) -> None:
    """Records why the round waits and gives up the claim, so the next tick tries again."""
    with sessions() as db:
        round_ = db.scalars(select(Round).where(Round.id == round_id).with_for_update()).one()
        if round_.status == "closing":
            round_.error, round_.publishing_until = error, None
        db.commit()


def _finish(db: Session, store: FileStore, job: Job, round_: Round, outcomes: list[Outcome]) -> bool:
    """Publishes the weighted mean of the kept sub-sums, or fails the round when none is kept."""
    round_.subsums = [o.record() for o in outcomes]
    dropped = [o for o in outcomes if o.dropped]
    for o in dropped:
        record(db, job, "subsum_dropped", f"sub-sum {o.part} of {len(outcomes)} ({o.contributors} contributions): "
                                          f"{o.dropped}", round_.number)
    reasons = "; ".join(f"{o.part}: {o.dropped}" for o in dropped)
    kept = [o for o in outcomes if not o.dropped]
    if not kept:
        round_.status = "failed"
        round_.error = f"every sub-sum was dropped: {reasons}"
        round_ended(db, job, round_)
        return False
    mean, total_weight, contributors = combine(kept)
    weights = store.read_weights(job.id, round_.model_version) + mean[: job.shared_values]
    version = round_.model_version + 1
    sha = store.write_weights(job.id, version, weights)
    if job.transition_classes:
        store.write_transitions(job.id, version, published_counts(  # rounds before: the versions before
            store.read_transitions(job.id, round_.model_version, job.transition_classes), round_.model_version - 1,
            mean[job.shared_values:], total_weight, job.transition_classes))
    db.add(ModelVersion(job_id=job.id, version=version, weights_sha256=sha, round_id=round_.id))
    round_.status, round_.published_at, round_.total_weight = "published", utcnow(), total_weight
    round_.error = (f"published without {len(dropped)} of {len(outcomes)} sub-sums ({len(dropped)} dropped: "
                    f"{reasons})") if dropped else None
    job.current_version = version
    round_ended(db, job, round_)
    log.info("round published", extra={"fields": {"job": job.id, "round": round_.number, "model_version": version,
                                                  "contributors": contributors, "subsums": len(outcomes),
                                                  "dropped": len(dropped)}})
    return True


def publish_closed_rounds(sessions: sessionmaker, store: FileStore, decrypt: Decrypt) -> int:
    """Decrypts and publishes every closing round; returns how many were published."""
    with sessions() as db:
        closing = db.scalars(select(Round.id).where(Round.status == "closing").order_by(Round.id)).all()
    return sum(publish_round(sessions, store, decrypt, round_id) for round_id in closing)


def discard_ended_sums(session: Session, store: FileStore) -> None:
    """Removes the shard sums of every round that ended (published, failed or deleted): only an open or closing
    round's sums are read again."""
    found = store.rounds_with_sums()
    if found:
        live = set(session.scalars(select(Round.id).where(Round.id.in_([round_id for _, round_id in found]),
                                                          Round.status.in_(UNFINISHED_ROUNDS))))
        for job_id, round_id in found:
            if round_id not in live:
                store.discard_sums(job_id, round_id)
