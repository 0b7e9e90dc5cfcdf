"""The package installs with its device extra into a fresh environment, and every Python block of the
README then runs as written, from another folder, against real services; the pins agree everywhere."""

import re
import shutil
import subprocess
import sys
import time
import tomllib

from tests.conftest import ROOT

# What the README's blocks use without defining it: a device's probes and a recording, small and made here.
FIXTURES = r'''
import sys
from types import SimpleNamespace

import numpy as np

server_url, enrolment_token, storage_dir = sys.argv[1], sys.argv[2], "device-store"
screen = SimpleNamespace(is_off=lambda: True)
battery = SimpleNamespace(is_charging=lambda: True, level=lambda: 0.9)
wifi = SimpleNamespace(is_unmetered=lambda: True)
t = np.arange(0, 24, 0.02)  # 24 s at 50 Hz; the activity changes every 4 s and shows in the signal
labels = (t // 4).astype(int) % 5
imu_xyz_xyz = np.stack([np.sin(t * 7 * (c + 1)) * (1 + 2 * labels) for c in range(6)], axis=1)
timestamps_s = t
chunks = [(t[i:i + 37], imu_xyz_xyz[i:i + 37], labels[i:i + 37]) for i in range(0, len(t), 37)]
updates = [np.random.default_rng(i).normal(0, 0.01, 500) for i in range(5)]
'''


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def copy_sources(target):
    """The repository's files without environments, outputs and caches (pip builds in the folder it gets)."""
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        ".git", ".venv", "out", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "tests"))


def test_pip_install_device_extra_then_the_readme_runs_elsewhere(cloud, bundle_dir, tmp_path):
    copy_sources(tmp_path / "src")
    venv = tmp_path / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          f"{tmp_path / 'src'}[device]"], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    print(f"venv and pip install .[device]: {time.perf_counter() - started:.1f} s")
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].lower() for line in listed.split()} - {"pip", "setuptools", "wheel"}
    # nothing else: cryptography (device attestation) brings cffi and pycparser
    assert installed == {"fedwear", "numpy", "tflite-runtime", "phe", "gmpy2", "cryptography", "cffi", "pycparser"}

    app = tmp_path / "app"
    shutil.copytree(bundle_dir, app / "bundle")  # the trainer block reads "bundle/"
    blocks = python_blocks()
    assert len(blocks) == 4  # the SDK, the schedule, the trainer, the codec: a new block needs its fixtures here
    (app / "readme.py").write_text(FIXTURES + "\n".join(blocks))
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=3)
    token = cloud.token(job["id"])
    run = subprocess.run([str(venv / "bin" / "python"), "readme.py", cloud.url, token], cwd=app,
                         capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "('a', 'b', 'c', 'd', 'e')"  # client.label_names
    assert lines[1] == "uploaded "
    assert lines[3] == "already_uploaded"  # the schedule's tick: the same round, not sent twice
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 1
    assert (app / "store" / "personal.npz").is_file() and (app / "device-store" / "credentials.json").is_file()


def pins(lines) -> dict[str, str]:
    """name (with marker, if any) -> version, of `name==version` requirement lines."""
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, rest = line.split("==", 1)
            version, _, marker = rest.partition(";")
            found[(name.strip().lower(), marker.strip())] = version.strip()
    return found


def test_pyproject_pins_match_the_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = pins(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared.update(pins(extra))
    device = pins((ROOT / "requirements-device.txt").read_text().splitlines())
    full = pins((ROOT / "requirements.txt").read_text().splitlines())
    assert pins(project["dependencies"]) == device
    for key, version in declared.items():
        assert full.get(key, device.get(key)) == version, key
    assert project["scripts"] == {"fedwear-cloud": "cloud.cli:main", "fedwear-sim": "device_sim.cli:main"}


def test_every_test_the_trust_model_names_exists():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Trust model", 1)[1].split("\n### ", 1)[0]
    named = set(re.findall(r"`(test_\w+)`", section))
    defined = {name for path in (ROOT / "tests").glob("test_*.py")
               for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    assert len(named) >= 20 and named - defined == set()
