"""Java bridge against the Python SDK: seconds to encrypt one update, both randomisers, one core.

Measured in one run, pinned to one core (the JVM is told so too): for each update size and
randomiser, the Java library (org.fedwear.bridge.tools.Encrypt, in its own JVM) and the Python
SDK encode the same kind of update under the same 2048-bit key and parameters. Each figure is the
fastest of `--repeats` encryptions (the JVM's first includes compiling its hot paths); the
short-exponent tables are built once per process and timed apart. "pool" is encryption at upload
time with a randomiser pool filled beforehand (filled here with short-exponent randomisers, not
timed, as a device fills it while charging). The first size's Java payload is summed with a
Python one and decrypted, to show the timed payloads are right.

    python benchmarks/bench_bridge.py [--json] [--sizes 16000,100000] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402

from sdk.crypto.codec import AggregateDecryptor, EncryptedSum, UpdateEncoder  # noqa: E402
from sdk.crypto.keys import generate_keypair  # noqa: E402
from sdk.crypto.params import CryptoParams  # noqa: E402
from sdk.crypto.randomisers import RandomiserPool, make_randomiser  # noqa: E402
from tests import bridge_java  # noqa: E402

MODES = ("standard", "short-exponent", "pool")
WEIGHT = 100
ROUND = 1


def python_encrypt(params, public, update, repeats: int, pool: Path | None) -> tuple[float, float, bytes]:
    """(fastest encryption s, randomiser set-up s, last payload)."""
    start = time.perf_counter()
    randomiser = make_randomiser(params.randomiser, public)
    if pool is not None:
        filled = RandomiserPool(pool, public)
        filled.fill(repeats * params.plaintexts_for(update.size), randomiser)
        randomiser = filled
    encoder = UpdateEncoder(params, public, randomiser, seed=0)
    setup = time.perf_counter() - start
    times, payload = [], b""
    for _ in range(repeats):
        start = time.perf_counter()
        payload = encoder.encode(update, WEIGHT, round_id=ROUND).payload
        times.append(time.perf_counter() - start)
    return min(times), setup, payload


def java_encrypt(classpath, work: Path, params, public, update, repeats: int,
                 pool: Path | None) -> tuple[float, float, bytes]:
    crypto, update_file, out = work / "crypto.json", work / "update.f32", work / "payload.bin"
    crypto.write_text(json.dumps({**params.to_dict(), "public_key": public.to_json()}))
    update_file.write_bytes(update.astype("<f4").tobytes())
    extra = () if pool is None else ("--pool", pool)
    proc = bridge_java.run_tool(classpath, "Encrypt", "--crypto", crypto, "--update", update_file, "--weight", WEIGHT,
                                "--round", ROUND, "--out", out, "--repeat", repeats, *extra,
                                jvm=("-XX:ActiveProcessorCount=1",), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"Java Encrypt failed: {proc.stderr}")
    report = bridge_java.last_json(proc)
    return min(report["encrypt_s"]), report["randomiser_setup_s"], out.read_bytes()


def check(params, public, private, update, payloads) -> float:
    """Largest error of the decrypted mean of the payloads (all of `update`) against the clipped update."""
    total = EncryptedSum(params, public, update.size, ROUND)
    for payload in payloads:
        total.add(payload)
    mean = AggregateDecryptor(params, private).decrypt(total.to_bytes(), 2, update.size, ROUND).mean
    return float(np.max(np.abs(mean - np.clip(update, -params.clip, params.clip))))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--sizes", default="16000,100000", show_default=True, help="Update sizes (parameters).")
@click.option("--repeats", default=3, show_default=True, help="Encryptions per size; the fastest counts.")
def main(as_json: bool, sizes: str, repeats: int) -> None:
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # the JVM started below inherits it
    classpath = bridge_java.build()
    java_version = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    public, private = generate_keypair(2048)
    rng = np.random.default_rng(0)
    report: dict = {"key_bits": 2048, "core": core, "repeats": repeats, "java": java_version,
                    "java_encrypt_s": {}, "python_encrypt_s": {}, "java_over_python": {},
                    "setup_s": {"java": {}, "python": {}}, "max_abs_error": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for i, values in enumerate(int(s) for s in sizes.split(",")):
            update = rng.normal(0, 0.05, values).astype(np.float32)
            for key in ("java_encrypt_s", "python_encrypt_s", "java_over_python"):
                report[key][str(values)] = {}
            for mode in MODES:
                pooled = mode == "pool"
                params = CryptoParams(max_weight=WEIGHT, randomiser="short-exponent" if pooled else mode)
                pools = [Path(tmp) / f"{language}-{values}.pool" if pooled else None for language in ("java", "py")]
                java_s, java_setup, java_payload = java_encrypt(classpath, Path(tmp), params, public, update, repeats,
                                                                pools[0])
                python_s, python_setup, python_payload = python_encrypt(params, public, update, repeats, pools[1])
                report["java_encrypt_s"][str(values)][mode] = round(java_s, 4)
                report["python_encrypt_s"][str(values)][mode] = round(python_s, 4)
                report["java_over_python"][str(values)][mode] = round(java_s / python_s, 2)
                report["setup_s"]["java"][mode] = round(java_setup, 3)
                report["setup_s"]["python"][mode] = round(python_setup, 3)
                if i == 0:
                    report["max_abs_error"][mode] = check(params, public, private, update,
                                                          [java_payload, python_payload])
    if as_json:
        print(json.dumps(report))
        return
    print(f"one core ({report['java']}), 2048-bit key, fastest of {repeats}")
    for values in report["java_encrypt_s"]:
        for mode in MODES:
            print(f"{values:>7} {mode:15} java {report['java_encrypt_s'][values][mode]:8.3f} s   "
                  f"python {report['python_encrypt_s'][values][mode]:8.3f} s   "
                  f"java/python {report['java_over_python'][values][mode]:.2f}")
    print(f"short-exponent table: java {report['setup_s']['java']['short-exponent']} s, "
          f"python {report['setup_s']['python']['short-exponent']} s (pool: filled beforehand, not timed)")


if __name__ == "__main__":
    main()
