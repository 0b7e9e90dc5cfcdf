"""Encryption off the critical path: randomisers computed ahead, drawn first at upload.

Almost all of a Paillier encryption's cost is its randomiser r^n mod n^2,
which does not depend on the update. A device computes randomisers while it
charges and idles, stores them in a RandomiserPool (one file per public key,
each randomiser removed from the file before it is used, so none is ever used
twice, even across crashes), and at upload encryption is packing and one
multiplication per ciphertext. When the pool runs short, the rest is computed
on the spot. Taking randomisers out of the file (truncate and fsync, so that a
crash cannot hand them out again) costs file-system time, so a round can
prefetch them in the background while it trains.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sdk.crypto.keys import PublicKey
from sdk.crypto.randomisers import RandomiserPool, RandomiserSource


@dataclass
class PoolFill:
    """What one fill did: randomisers added, the pool's size after (0 if blocked) and why it stopped early."""

    added: int
    size: int
    seconds: float
    stopped_by: str = ""


class PoolFirstRandomiser:
    """A randomiser source that takes from the pool first and computes what the pool lacks.

    One pool per public key and randomiser mode (the plan's ``crypto.randomiser``).

    ``last`` says where the randomisers of the latest take came from: "pool",
    "computed" or "mixed".
    """

    def __init__(self, folder: Path, public: PublicKey, mode: str, live: RandomiserSource) -> None:
        self.pool = RandomiserPool(Path(folder) / f"{public.fingerprint().hex()[:32]}-{mode}.pool", public)
        self.live = live
        self.last = ""
        self._lock = threading.Lock()
        self._prefetched: list = []  # out of the file already: used by the next take, or never
        self._prefetching: threading.Thread | None = None

    @property
    def stored(self) -> int:
        """Randomisers in the pool."""
        return len(self.pool)

    def _from_pool(self, count: int) -> list:
        with self._lock:
            stored = min(count, len(self.pool))
            return self.pool.take(stored) if stored else []

    def prefetch(self, count: int) -> None:
        """Starts taking up to `count` randomisers out of the pool in the background, for the next take."""
        self._wait()
        wanted = count - len(self._prefetched)
        if wanted > 0:
            self._prefetching = threading.Thread(target=lambda: self._prefetched.extend(self._from_pool(wanted)),
                                                 daemon=True)
            self._prefetching.start()

    def _wait(self) -> None:
        if self._prefetching is not None:
            self._prefetching.join()
            self._prefetching = None

    def take(self, count: int) -> list:
        self._wait()
        randomisers, self._prefetched = self._prefetched[:count], self._prefetched[count:]
        randomisers += self._from_pool(count - len(randomisers))
        stored = len(randomisers)
        randomisers += self.live.take(count - stored)
        self.last = "pool" if stored == count else "computed" if stored == 0 else "mixed"
        return randomisers

    def fill(self, max_count: int, max_seconds: float, chunk: int = 8) -> PoolFill:
        """Computes randomisers until the pool holds max_count or max_seconds have passed."""
        start = time.monotonic()
        added = 0
        while len(self.pool) < max_count:
            if time.monotonic() - start >= max_seconds:
                return PoolFill(added, len(self.pool), time.monotonic() - start, "time limit")
            fresh = self.live.take(min(chunk, max_count - len(self.pool)))
            with self._lock:
                self.pool.fill(len(fresh), _Given(fresh))
            added += len(fresh)
        return PoolFill(added, len(self.pool), time.monotonic() - start)


class _Given:
    """Randomisers already computed, handed to RandomiserPool.fill outside its lock."""

    def __init__(self, values: list) -> None:
        self.values = values

    def take(self, count: int) -> list:
        return self.values[:count]
