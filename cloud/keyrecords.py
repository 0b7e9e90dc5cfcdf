"""What the key service remembers, as write-once files: each job's registration, the device keys its operator
registered for it, and each sub-sum it decrypted.

A record is written once (a temporary file linked to its name, which fails
if the name exists), so two concurrent writers agree on the first one's
content, and a restart keeps every record.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def write_once(path: Path, data: bytes) -> bytes:
    """Creates `path` with `data` unless it exists; returns what the file holds (the first writer's data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
        return data
    finally:
        os.unlink(tmp)


class KeyRecords:
    """Registrations and decryptions under the key service's data directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "jobs"

    def _job_dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"job id must be 1-64 letters, digits, '-' or '_', got {job_id[:80]!r}")
        return self.root / job_id

    @staticmethod
    def _read(path: Path) -> dict | None:
        return json.loads(path.read_text()) if path.exists() else None

    def registration(self, job_id: str) -> dict | None:
        return self._read(self._job_dir(job_id) / "registration.json")

    def register(self, job_id: str, registration: dict) -> dict:
        """Records the job's registration unless one exists; returns the registration in force."""
        return json.loads(write_once(self._job_dir(job_id) / "registration.json", json.dumps(registration).encode()))

    def _device_file(self, job_id: str, device_id: str) -> Path:
        if not JOB_ID.match(device_id):
            raise ValueError(f"device id must be 1-64 letters, digits, '-' or '_', got {device_id[:80]!r}")
        return self._job_dir(job_id) / "devices" / f"{device_id}.json"

    def device_key(self, job_id: str, device_id: str) -> str | None:
        """The device key the operator registered for this device of the job, if any."""
        held = self._read(self._device_file(job_id, device_id))
        return None if held is None else held["device_key"]

    def register_device(self, job_id: str, device_id: str, device_key: str) -> str:
        """Records a device's key unless one is recorded; returns the key in force."""
        data = json.dumps({"device_key": device_key}).encode()
        return json.loads(write_once(self._device_file(job_id, device_id), data))["device_key"]

    @contextmanager
    def decrypting(self, job_id: str, part: int | None = None) -> Iterator[None]:
        """Holds a decryption lock (a file lock: across threads and processes), so each sub-sum is decrypted once
        even when asked for twice at the same time: the job's, or only that of sub-sum `part` (of any round;
        other sub-sums are then decrypted meanwhile). A job has one lock file per sub-sum it registered, however
        many rounds it runs or an aggregator claims."""
        name = "decrypting.lock" if part is None else f"decrypting-{part}.lock"
        path = self._job_dir(job_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _decryption_file(self, job_id: str, round_id: int, part: int) -> Path:
        return self._job_dir(job_id) / "decrypted" / f"{round_id}-{part}.json"

    def decryption(self, job_id: str, round_id: int, part: int) -> dict | None:
        """{"sha256": of what was decrypted, "answer": what was answered, "contributions": the devices and payload
        SHA-256s of a signed sub-sum (else empty)}, if sub-sum `part` of the round was decrypted."""
        return self._read(self._decryption_file(job_id, round_id, part))

    def round_decryptions(self, job_id: str, round_id: int) -> dict[int, dict]:
        """Every decrypted sub-sum of the round, by part."""
        folder = self._job_dir(job_id) / "decrypted"
        return {int(path.stem.split("-")[1]): json.loads(path.read_text())
                for path in folder.glob(f"{round_id}-*.json")} if folder.exists() else {}

    def record_decryption(self, job_id: str, round_id: int, part: int, sha256: str, answer: dict,
                          contributions: list[dict] | None = None) -> dict:
        """Records a decryption unless one of that sub-sum exists; returns the record in force."""
        data = json.dumps({"sha256": sha256, "answer": answer, "contributions": contributions or []}).encode()
        return json.loads(write_once(self._decryption_file(job_id, round_id, part), data))
