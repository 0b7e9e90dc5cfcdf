"""Group commit: a worker process's concurrent uploads to one round, added to one shard in one transaction.

Each upload is checked on its own first (cloud.rounds.check_upload). While
one batch of a round is being written, the uploads that arrive at the same
process wait and go into the next batch: one read and one write of a shard's
sum, one commit and one check whether the round is full, for several
uploads. Each upload is answered only after its batch committed (accepted
means durable). Whatever a batch cannot decide alone (two uploads of one
device or of the same bytes in it, or a commit refused because another
process committed one of them first) is decided one upload at a time by
cloud.rounds.add_alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.api.errors import ApiError
from cloud.db import Contribution, Device, Round
from cloud.rounds import (
    Acceptance,
    Checked,
    add_alone,
    check_upload,
    closed_after_commit,
    locked_shard,
    refusal,
    shard_written,
    superseded,
)
from cloud.store import FileStore
from sdk.crypto.codec import EncryptedSum
from sdk.crypto.errors import DuplicatePayloadError, PayloadError

MAX_BATCH = 32  # uploads one transaction adds at most


@dataclass(eq=False)
class Pending:
    """One checked upload waiting for its batch; `outcome` is set when it is decided, `wake` then."""

    device_id: str
    payload: bytes
    checked: Checked
    wake: threading.Event = field(default_factory=threading.Event)
    outcome: Acceptance | BaseException | None = None

    def decide(self, outcome: Acceptance | BaseException) -> None:
        self.outcome = outcome
        self.wake.set()


class UploadBatcher:
    """The uploads of one process in batches per round: one thread at a time writes a round's batch."""

    def __init__(self, store: FileStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._waiting: dict[int, list[Pending]] = {}
        self._writing: set[int] = set()

    def accept(self, session: Session, device: Device, round_id: int, payload: bytes,
               signature: str | None = None) -> Acceptance:
        """Adds one device's payload to a round, answered as cloud.rounds.add_alone answers; each batch's commit is
        followed by one check that closes the round if it is full (exactly once: cloud.rounds.close_if_full)."""
        checked = check_upload(session, device, round_id, payload, signature)
        if isinstance(checked, Acceptance):
            return checked
        item = Pending(device.id, payload, checked)
        session.expunge(checked.job)  # read by the thread that writes the batch, as loaded here
        session.rollback()  # no transaction stays open while this upload waits (SQLite: its write lock)
        with self._lock:
            self._waiting.setdefault(round_id, []).append(item)
            writes = round_id not in self._writing
            self._writing.add(round_id)
        if not writes:
            item.wake.wait()
        while item.outcome is None:  # this thread writes the next batch, which holds this upload
            self._write_next(session, round_id)
        if isinstance(item.outcome, BaseException):
            raise item.outcome
        return item.outcome

    def _write_next(self, session: Session, round_id: int) -> None:
        """Writes the round's waiting uploads, then wakes one that waits since, to write the next batch."""
        with self._lock:
            batch = self._waiting.pop(round_id, [])
            if len(batch) > MAX_BATCH:
                self._waiting[round_id] = batch[MAX_BATCH:]
                batch = batch[:MAX_BATCH]
        try:
            while batch:
                batch = _add_batch(session, self._store, round_id, batch)
        except Exception as exc:  # the database failed: every upload of the batch gets the error
            session.rollback()
            for item in batch:
                if item.outcome is None:
                    item.decide(exc)
        with self._lock:
            waiting = self._waiting.get(round_id)
            if waiting:
                waiting[0].wake.set()  # its outcome is None: it writes the next batch
            else:
                self._writing.discard(round_id)


def _add_batch(session: Session, store: FileStore, round_id: int, batch: list[Pending]) -> list[Pending]:
    """Adds as many uploads of the batch as one shard has room for, in one transaction; returns the rest."""
    job, max_devices = batch[0].checked.job, batch[0].checked.max_devices
    try:
        shard, running = locked_shard(session, store, job, round_id)
    except ApiError as exc:
        session.rollback()
        for item in batch:
            item.decide(ApiError(exc.status, exc.code, exc.message))
        return []
    room = shard.capacity - shard.contributors
    taken, rest = batch[:room], batch[room:]
    seen = set(session.scalars(
        select(Contribution.payload_sha256).join(Round, Round.id == Contribution.round_id)
        .where(Round.job_id == job.id, Contribution.payload_sha256.in_([i.checked.digest for i in taken]))))
    added, devices, digests = [], set(), set()
    for item in taken:
        if item.device_id in devices or item.checked.digest in digests:
            rest.append(item)  # decided alone once this batch is written
            continue
        try:
            if item.checked.digest in seen:  # its own faults first, as when alone
                EncryptedSum(running.params, running.public, running.values, round_id).add(item.payload)
                raise DuplicatePayloadError("these payload bytes were already accepted from another device of "
                                            "this job")
            running.add(item.payload)
        except PayloadError as exc:
            item.decide(refusal(exc))
            continue
        devices.add(item.device_id)
        digests.add(item.checked.digest)
        added.append(item)
    if not added:
        session.rollback()
        return _alone(session, store, round_id, rest)
    answer = shard_written(session, store, job, shard, running, max_devices)
    session.add_all(item.checked.contribution(round_id, item.device_id, shard.shard, item.payload, answer)
                    for item in added)
    try:
        session.commit()
    except IntegrityError:  # another process committed one of these devices or bytes first
        session.rollback()
        return _alone(session, store, round_id, added) + rest
    superseded(store, job, shard)
    closed = closed_after_commit(session, round_id, max_devices)
    for index, item in enumerate(added):
        item.decide(Acceptance(answer, closed=closed and index == 0))  # one upload starts publication
    return rest


def _alone(session: Session, store: FileStore, round_id: int, items: list[Pending]) -> list[Pending]:
    """Decides the first upload on its own (cloud.rounds.add_alone); returns the others."""
    if items:
        first, items = items[0], items[1:]
        try:
            first.decide(add_alone(session, store, session.get(Device, first.device_id), round_id, first.payload,
                                   first.checked.signature))
        except ApiError as exc:
            session.rollback()
            first.decide(exc)
    return items
