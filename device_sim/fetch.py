"""Finding a dataset on disk, or downloading it once into a cache.

A download streams to a partial file with a progress bar, is checked against
its SHA-256 (the pinned one, or on first use the one it is recorded with, so
that a later copy that differs is refused), and is unpacked safely (no path
may leave the cache). Archives inside the archive are unpacked as well.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from device_sim.dataset import DataError
from sdk.storage import sha256_file

CACHE_ENV = "FEDWEAR_CACHE"


@dataclass(frozen=True)
class Source:
    """Where a public dataset is published."""

    name: str
    url: str
    env: str
    sha256: str | None = None


SOURCES = {
    "sp-sw-har": Source(
        "sp-sw-har",
        "https://github.com/GeoTecINIT/sp-sw-har-dataset/archive/1408d85.zip",
        "FEDWEAR_SPSWHAR",
    ),
    "uci-har": Source(
        "uci-har",
        "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip",
        "FEDWEAR_UCIHAR",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "fedwear"))


def _download(url: str, target: Path, show_progress: bool) -> None:
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress(
                *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                console=Console(stderr=True), disable=not show_progress,
            ) as bar, open(partial, "wb") as out:
                task = bar.add_task(f"download {target.name}", total=total)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"{url}: download failed ({exc}); check the network or pass --data") from exc
    os.replace(partial, target)


def _extract_one(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                dest = (into / member).resolve()
                if not dest.is_relative_to(into.resolve()):
                    raise DataError(f"{archive}: member {member!r} would unpack outside the cache")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a zip archive ({exc})") from exc


def _safe_extract(archive: Path, into: Path, max_nested: int = 16) -> None:
    """Unpacks the archive, then every zip it holds, at most `max_nested` of them."""
    _extract_one(archive, into)
    for _ in range(max_nested):
        inner = next((p for p in sorted(into.rglob("*.zip")) if "__MACOSX" not in p.parts), None)
        if inner is None:
            return
        held = inner.with_name(inner.name + ".nested")
        os.replace(inner, held)
        _extract_one(held, inner.parent)
        held.unlink()
    raise DataError(f"{archive}: more than {max_nested} nested archives")


def fetch(
    source: Source, sha256: str | None = None, show_progress: bool = True, root: Path | None = None
) -> Path:
    """The unpacked folder of a source, downloading it on first use."""
    base = (root or cache_dir()) / source.name
    done = base / "unpacked"
    pinned = sha256 or source.sha256
    marker = base / "sha256"
    if done.is_dir() and marker.is_file():
        recorded = marker.read_text().strip()
        if pinned and recorded != pinned:
            raise DataError(f"{base}: cached copy has sha256 {recorded}, expected {pinned}; delete it to fetch again")
        return done
    base.mkdir(parents=True, exist_ok=True)
    archive = base / "archive.zip"
    _download(source.url, archive, show_progress)
    actual = sha256_file(archive)
    if pinned and actual != pinned:
        archive.unlink()
        raise DataError(f"{source.url}: sha256 {actual} does not match the expected {pinned}")
    staging = base / "unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _safe_extract(archive, staging)
    shutil.rmtree(done, ignore_errors=True)
    os.replace(staging, done)
    marker.write_text(actual + "\n")
    archive.unlink()
    return done


def locate(
    source: Source,
    finder: Callable[[Path], Path],
    path: str | Path | None = None,
    download: bool = False,
    sha256: str | None = None,
    show_progress: bool = True,
) -> Path:
    """The dataset folder: an explicit path, the source's environment variable, or the cache.

    ``finder`` turns a candidate folder into the dataset's root or raises DataError.
    """
    given = path or os.environ.get(source.env)
    if given:
        return finder(Path(given))
    cached = cache_dir() / source.name / "unpacked"
    if not cached.is_dir() and not download:
        raise DataError(
            f"{source.name}: no data given. Pass --data PATH, set {source.env}, "
            f"or add --download to fetch it from {source.url} into {cache_dir()}"
        )
    unpacked = fetch(source, sha256, show_progress) if download else cached
    for candidate in [unpacked, *sorted(p for p in unpacked.rglob("*") if p.is_dir())]:
        try:
            return finder(candidate)
        except DataError:
            continue
    raise DataError(f"{unpacked}: the downloaded archive does not hold a {source.name} dataset")
