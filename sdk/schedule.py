"""Taking part in rounds from an app's periodic background job, only when the device is idle,
charging and on an unmetered network.

A round stays open for the job's round timeout (default 300 s, more when it is
extended), so call `tick()` at least every couple of minutes while the app may
run in the background (Android WorkManager, watchOS background refresh). A tick
that finds the device busy costs nothing; one that finds no new round costs one
plan request of about 1 KB; training and the upload happen once per round. When
the service did not select the device, the next check-in waits at least the
`retry_after` it asked for.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import numpy as np

from sdk.client import FedWearClient, RoundOutcome

TrainingData = Callable[[], tuple[np.ndarray, np.ndarray]]


class ParticipationSchedule:
    """Calls `client.participate()` at most every `every_s` seconds (or the service's `retry_after`, when
    longer), when idle, charging and unmetered."""

    def __init__(self, client: FedWearClient, training_data: TrainingData, every_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``training_data()`` returns the labelled windows to train on (read only when a round is taken)."""
        missing = [name for name in ("is_idle", "is_charging", "is_unmetered") if getattr(client.conditions, name) is None]
        if missing:
            raise ValueError(f"give the client's DeviceConditions the probes {', '.join(missing)}: "
                             "the schedule trains only when the device is idle, charging and unmetered")
        self.client, self.training_data, self.every_s, self.clock = client, training_data, every_s, clock
        self.conditions = replace(client.conditions, require_idle=True, require_charging=True,
                                  require_unmetered=True)
        self._due: float | None = None

    def tick(self) -> RoundOutcome | None:
        """None when the next check-in is not due yet; otherwise what this participation did."""
        now = self.clock()
        if self._due is not None and now < self._due:
            return None
        blocked = self.conditions.blocked_by()
        if blocked:
            return RoundOutcome(None, "skipped", blocked)
        windows, labels = self.training_data()
        outcome = self.client.participate(windows, labels)
        self._due = now + max(self.every_s, outcome.retry_after or 0)
        return outcome
