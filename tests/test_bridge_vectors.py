"""The Java bridge's cross-language vectors are what the Python SDK makes today."""

import importlib.util

from tests.conftest import ROOT

VECTORS = ROOT / "android_bridge" / "src" / "test" / "resources" / "vectors"


def load_generator():
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "android_bridge" / "tools" / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_vectors_are_up_to_date_with_the_python_sdk(tmp_path):
    written = load_generator().write_vectors(tmp_path)
    assert {p.name for p in written} == {p.name for p in VECTORS.glob("*.json")}
    for fresh in written:
        committed = VECTORS / fresh.name
        assert fresh.read_bytes() == committed.read_bytes(), (
            f"{committed.relative_to(ROOT)} differs from what the Python SDK makes now: run "
            "python android_bridge/tools/make_vectors.py and make bridge")
