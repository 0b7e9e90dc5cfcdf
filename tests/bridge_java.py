"""The Java bridge from Python tests and benchmarks: build it once, run its command-line tools."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JAR = ROOT / "android_bridge" / "build" / "fedwear-bridge.jar"
JSON_JAR = Path("/usr/share/java/com.android.json.jar")


def build() -> str:
    """Compiles the library (make bridge-build, a no-op when up to date); returns its class path."""
    proc = subprocess.run(["make", "-s", "bridge-build"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"make bridge-build failed:\n{proc.stdout}\n{proc.stderr}")
    return f"{JAR}:{JSON_JAR}"


def run_tool(classpath: str, tool: str, *args, jvm: tuple = (), timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs org.fedwear.bridge.tools.<tool> with the arguments; the process, finished."""
    return subprocess.run(["java", *jvm, "-cp", classpath, f"org.fedwear.bridge.tools.{tool}", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    """The JSON line a tool printed last."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"no JSON output (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])
