"""Files under the data directory: bundles, published weights and the generations of rounds' shard sums.

A shard's sum is a file per generation (cloud.rounds): an upload writes the
next generation beside the current one, fsynced, before the database commit
that makes it current, so a crash at any point leaves the committed
generation whole. Every aggregator replica must see the same directory.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

from sdk.storage import write_atomically


class MissingSumError(LookupError):
    """A shard's committed sum is not in the data directory (removed by hand, or a restore without it)."""


@lru_cache(maxsize=1024)
def _published_table(path: str) -> tuple[float, ...]:
    """A published transition table's values (FileNotFoundError, not cached, while there is none)."""
    return tuple(np.frombuffer(Path(path).read_bytes(), "<f8").tolist())


class FileStore:
    """Paths and atomic writes for one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def bundle_file(self, job_id: str, name: str) -> Path:
        return self.job_dir(job_id) / "bundle" / name

    def weights_file(self, job_id: str, version: int) -> Path:
        return self.job_dir(job_id) / "weights" / f"v{version}.f32"

    def write(self, path: Path, data: bytes) -> str:
        """Writes atomically; returns the SHA-256 of what was written."""
        write_atomically(path, data)
        return hashlib.sha256(data).hexdigest()

    def write_weights(self, job_id: str, version: int, weights: np.ndarray) -> str:
        return self.write(self.weights_file(job_id, version), np.asarray(weights, "<f4").tobytes())

    def read_weights(self, job_id: str, version: int) -> np.ndarray:
        return np.frombuffer(self.weights_file(job_id, version).read_bytes(), "<f4").copy()

    def transitions_file(self, job_id: str, version: int) -> Path:
        return self.job_dir(job_id) / "weights" / f"v{version}.transitions.f64"

    def write_transitions(self, job_id: str, version: int, counts: np.ndarray) -> None:
        self.write(self.transitions_file(job_id, version), np.asarray(counts, "<f8").tobytes())

    def read_transitions(self, job_id: str, version: int, classes: int) -> np.ndarray | None:
        """The transition counts a model version carries; None before a round published any. A version's table
        never changes once published, so each is read from disk once (every plan serves it)."""
        try:
            table = _published_table(str(self.transitions_file(job_id, version)))
        except FileNotFoundError:
            return None
        return np.array(table).reshape(classes + 1, classes)

    def sums_dir(self, job_id: str, round_id: int) -> Path:
        return self.job_dir(job_id) / "sums" / f"r{round_id}"

    def sum_file(self, job_id: str, round_id: int, shard: int, generation: int) -> Path:
        return self.sums_dir(job_id, round_id) / f"s{shard}.g{generation}"

    def write_sum(self, job_id: str, round_id: int, shard: int, generation: int, data: bytes) -> None:
        """Writes a shard sum's generation durably (fsynced file and folder) before the commit that refers to it."""
        write_atomically(self.sum_file(job_id, round_id, shard, generation), data)

    def read_sum(self, job_id: str, round_id: int, shard: int, generation: int) -> bytes:
        """A shard sum's committed generation; MissingSumError if the data directory lost it."""
        path = self.sum_file(job_id, round_id, shard, generation)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise MissingSumError(f"the sum of shard {shard} (generation {generation}) is missing from the data "
                                  f"directory ({path.relative_to(self.root)})") from None

    def discard_sum(self, job_id: str, round_id: int, shard: int, generation: int) -> None:
        """Removes a generation that a committed one replaced (a crash before this leaves it until the round ends)."""
        self.sum_file(job_id, round_id, shard, generation).unlink(missing_ok=True)

    def rounds_with_sums(self) -> list[tuple[str, int]]:
        """(job, round) of every round that still has a folder of sums."""
        return [(folder.parent.parent.name, int(folder.name[1:]))
                for folder in self.root.glob("jobs/*/sums/r*") if folder.name[1:].isdigit()]

    def discard_sums(self, job_id: str, round_id: int) -> None:
        shutil.rmtree(self.sums_dir(job_id, round_id), ignore_errors=True)
