"""The Java bridge's cross-language vectors are what the Python SDK makes today."""

import importlib.util
import json
import math

from tests.conftest import ROOT

VECTORS = ROOT / "android_bridge" / "src" / "test" / "resources" / "vectors"
FLOAT_TOLERANCE = 1e-13  # relative; CPUs differ in the last bit of numpy's float math (the Java tests allow 1e-12)


def load_generator():
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "android_bridge" / "tools" / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(fresh, committed, where: str = "") -> list[str]:
    """Where two JSON values differ: structure, integers and strings exactly, floats beyond FLOAT_TOLERANCE."""
    if isinstance(fresh, float) or isinstance(committed, float):
        same = isinstance(fresh, (int, float)) and isinstance(committed, (int, float)) and math.isclose(
            fresh, committed, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-300)
        return [] if same else [f"{where}: {committed!r} committed, {fresh!r} now"]
    if isinstance(fresh, dict) and isinstance(committed, dict):
        if fresh.keys() != committed.keys():
            return [f"{where}: keys {sorted(committed)} committed, {sorted(fresh)} now"]
        return [d for key in fresh for d in differences(fresh[key], committed[key], f"{where}.{key}")]
    if isinstance(fresh, list) and isinstance(committed, list):
        if len(fresh) != len(committed):
            return [f"{where}: {len(committed)} items committed, {len(fresh)} now"]
        return [d for i, (a, b) in enumerate(zip(fresh, committed)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if fresh == committed and type(fresh) is type(committed) else [
        f"{where}: {committed!r} committed, {fresh!r} now"]


def test_differences_names_what_changed():
    assert differences({"a": [1.0, 2, "x"]}, {"a": [1.0 + 1e-16, 2, "x"]}) == []
    assert differences({"a": [1.0]}, {"a": [1.0001]}) == [".a[0]: 1.0001 committed, 1.0 now"]
    assert differences({"a": 2}, {"a": 3}) == [".a: 3 committed, 2 now"]
    assert differences({"a": "ff"}, {"a": "fe"}) == [".a: 'fe' committed, 'ff' now"]
    assert differences({"a": [1]}, {"a": [1, 2]}) == [".a: 2 items committed, 1 now"]
    assert differences({"a": 1}, {"b": 1}) == [": keys ['b'] committed, ['a'] now"]


def test_committed_vectors_are_up_to_date_with_the_python_sdk(tmp_path):
    written = load_generator().write_vectors(tmp_path)
    assert {p.name for p in written} == {p.name for p in VECTORS.glob("*.json")}
    for fresh in written:
        committed = VECTORS / fresh.name
        changed = differences(json.loads(fresh.read_text()), json.loads(committed.read_text()))
        assert not changed, (f"{committed.relative_to(ROOT)} differs from what the Python SDK makes now "
                             f"({'; '.join(changed[:3])}): run python android_bridge/tools/make_vectors.py and "
                             "make bridge")
