"""Server-side selection: devices check in (GET /v1/plan) and the service picks each round's participants.

While a round is open, the devices that check in are selected first come, first served, up to the round's
quota: ``ceil(target_devices * over_selection)`` (over-selection, since some selected devices never upload;
the round still closes at ``max_devices`` uploads). The others are told when to check in again
(``retry_after``, pace steering). Only selected devices' uploads count; an upload from a device that did
not check in counts as its check-in, so it is refused only when the quota is full.

Exact under concurrent check-ins from several workers: a selection increments the round's counter row
with ``UPDATE ... WHERE selected < quota``, which PostgreSQL serialises per row (re-evaluating the
condition after waiting for a concurrent one) and SQLite runs one writer at a time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.api.errors import ApiError
from cloud.db import Contribution, Device, Job, Round, Selection, SelectionCount, utcnow
from cloud.lifecycle import ACTIVE

DEFAULT_OVER_SELECTION = 1.3
DEFAULT_RETRY_AFTER_S = 60.0
RETRY_SPREAD = 0.5  # retry_after is spread uniformly by +-50%: devices told at once come back apart


@dataclass(frozen=True)
class CheckIn:
    """What a check-in answered: selected for the open round, or when to check in again (None: never)."""

    selected: bool
    retry_after: int | None


def quota(config: dict) -> int:
    """Devices a round selects: its target (default max_devices) times the over-selection, rounded up."""
    target = config.get("target_devices") or config["max_devices"]
    return math.ceil(round(target * config.get("over_selection", DEFAULT_OVER_SELECTION), 6))


def retry_after(config: dict, rng: random.Random | None = None) -> int:
    """Seconds a device not selected waits before checking in again: the job's pace, spread by +-50%."""
    pace = config.get("retry_after_s", DEFAULT_RETRY_AFTER_S)
    return max(1, round(pace * (rng or random).uniform(1 - RETRY_SPREAD, 1 + RETRY_SPREAD)))


def is_selected(session: Session, round_id: int, device_id: str) -> bool:
    return session.scalars(select(Selection.id).where(Selection.round_id == round_id,
                                                      Selection.device_id == device_id)).first() is not None


def takes_check_ins(round_: Round | None) -> bool:
    """Whether a round can still select devices: open and before its deadline."""
    return round_ is not None and round_.status == "open" and utcnow() <= round_.deadline


def _counter(session: Session, round_id: int) -> None:
    """Makes the round's counter row unless it exists (a concurrent request may make it first)."""
    if session.get(SelectionCount, round_id) is not None:
        return
    try:
        with session.begin_nested():
            session.add(SelectionCount(round_id=round_id, selected=0))
    except IntegrityError:
        pass


def _select(session: Session, round_: Round, device_id: str, limit: int) -> bool:
    """Selects the device for the round if the quota has room; True when it is now selected."""
    _counter(session, round_.id)
    count = SelectionCount.selected
    taken = session.execute(update(SelectionCount).where(SelectionCount.round_id == round_.id, count < limit)
                            .values(selected=count + 1))
    if taken.rowcount != 1:
        return False
    try:
        with session.begin_nested():
            session.add(Selection(round_id=round_.id, device_id=device_id))
    except IntegrityError:  # a concurrent request of the same device selected it: give this slot back
        session.execute(update(SelectionCount).where(SelectionCount.round_id == round_.id)
                        .values(selected=count - 1))
    return True


def check_in(session: Session, job: Job, round_: Round | None, device_id: str, selects: bool = True) -> CheckIn:
    """The device's check-in for the job's current round; with ``selects=False``, its standing without
    selecting it (a plan read with check_in=false). The caller commits."""
    if job.status not in ACTIVE:
        return CheckIn(False, None)
    selected = round_ is not None and (
        is_selected(session, round_.id, device_id)
        or selects and takes_check_ins(round_) and _select(session, round_, device_id, quota(job.config)))
    return CheckIn(True, None) if selected else CheckIn(False, retry_after(job.config))


def awaits_upload(session: Session, round_: Round | None, device_id: str, state: CheckIn) -> bool:
    """Whether the device has a round to train for now: selected for an open round it has not uploaded to."""
    return state.selected and takes_check_ins(round_) and session.scalars(
        select(Contribution.id).where(Contribution.round_id == round_.id, Contribution.device_id == device_id)
    ).first() is None


def admit_upload(session: Session, device: Device, round_: Round) -> None:
    """Before an upload is added: its device must be selected for the round. An upload without a check-in
    is one (selected while the quota has room); 409 not_selected when the quota is full. A round that no
    longer takes check-ins is left to the upload's own checks (round closed, deadline passed, replay).
    The selection is committed before the upload is added."""
    if is_selected(session, round_.id, device.id) or not takes_check_ins(round_):
        return
    job = session.get(Job, round_.job_id)
    if not _select(session, round_, device.id, quota(job.config)):
        raise ApiError(409, "not_selected",
                       f"round {round_.id} selected its {quota(job.config)} devices and this device is not one "
                       "of them: check in again (GET /v1/plan) after the plan's retry_after")
    session.commit()  # the check-in holds whatever becomes of the upload, as a GET /v1/plan's would
