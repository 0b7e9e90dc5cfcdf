"""One entry point to every dataset the simulator reads."""

from __future__ import annotations

from pathlib import Path

from device_sim import spswhar, synthetic, ucihar
from device_sim.dataset import Dataset
from device_sim.fetch import SOURCES, locate

NAMES = ("sp-sw-har", "uci-har", "synthetic")


def load_dataset(
    name: str,
    path: str | Path | None = None,
    device: str = "watch",
    download: bool = False,
    sha256: str | None = None,
    subjects: int = 8,
    seed: int = 0,
    show_progress: bool = True,
) -> Dataset:
    """Loads `name` from `path`, its environment variable or the cache (synthetic: generated)."""
    if name == "synthetic":
        return synthetic.generate(subjects=subjects, seed=seed)
    if name == "sp-sw-har":
        root = locate(SOURCES[name], spswhar.data_root, path, download, sha256, show_progress)
        return spswhar.load(root, device)
    if name == "uci-har":
        if device != "watch" and device != "waist":
            raise ValueError("uci-har has one device per subject (waist); leave --device out")
        root = locate(SOURCES[name], ucihar.data_root, path, download, sha256, show_progress)
        return ucihar.load(root)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
