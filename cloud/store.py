"""Files under the data directory: bundles and published weights (running sums live in the database)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sdk.storage import write_atomically


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
