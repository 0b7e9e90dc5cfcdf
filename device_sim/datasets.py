"""One entry point to every dataset the simulator reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from device_sim import breast_cancer, spswhar, synthetic, ucihar
from device_sim.dataset import Dataset
from device_sim.fetch import SOURCES, locate

NAMES = ("sp-sw-har", "uci-har", "synthetic", "breast-cancer")


def load_dataset(
    name: str,
    path: str | Path | None = None,
    device: str = "watch",
    download: bool = False,
    sha256: str | None = None,
    subjects: int = 8,
    seed: int = 0,
    show_progress: bool = True,
    overlap: float | None = None,
    silos: int = 3,
) -> Dataset:
    """Loads `name` from `path`, its environment variable or the cache (synthetic: generated).

    ``overlap`` cuts the recordings into windows overlapping by that fraction
    instead of the dataset's own (sp-sw-har and synthetic: 0.5). ``silos``: the hospitals of breast-cancer.
    """
    spec = spswhar.SPEC if overlap is None else replace(spswhar.SPEC, overlap=overlap)
    if name == "breast-cancer":
        if overlap is not None:
            raise ValueError("breast-cancer holds feature vectors, not recordings: it has no windows to overlap")
        return breast_cancer.load(silos=silos, seed=seed)
    if name == "synthetic":
        return synthetic.generate(subjects=subjects, seed=seed, spec=spec)
    if name == "sp-sw-har":
        root = locate(SOURCES[name], spswhar.data_root, path, download, sha256, show_progress)
        return spswhar.load(root, device, spec)
    if name == "uci-har":
        if device != "watch" and device != "waist":
            raise ValueError("uci-har has one device per subject (waist); leave --device out")
        if overlap is not None:
            raise ValueError("uci-har is published already windowed; its windows cannot be cut again")
        root = locate(SOURCES[name], ucihar.data_root, path, download, sha256, show_progress)
        return ucihar.load(root)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
