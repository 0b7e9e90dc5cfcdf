import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = r"""
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
try:
    import tensorflow  # noqa: F401
    raise SystemExit("tensorflow imported although it was blocked")
except ImportError:
    pass
import json
import numpy as np
from sdk.trainer import TFLiteTrainer
import sdk.client  # noqa: F401  (the whole device SDK, not only the trainer)
import sdk.recogniser  # noqa: F401
from sdk.windowing import make_windows

bundle, store = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
t = np.arange(0, 20, 0.01)
labels = (t // 4).astype(int) % 5  # the activity changes every 4 s and shows in the signal
values = np.stack([np.sin(t * 7 * (c + 1)) * (1 + 2 * labels) for c in range(6)], axis=1)
values[:, 2] += 9.8
w = make_windows(t, values, labels)
trainer = TFLiteTrainer(bundle)
before = trainer.get_weights()
history = trainer.fit(w.data, w.labels, epochs=8, batch_size=8, lr=0.05)
after = trainer.get_weights()
trainer.set_weights(after)
personal = trainer.fit(w.data, w.labels, epochs=3, part="personal")
trainer.save_personal(store)
reloaded = TFLiteTrainer(bundle)
reloaded.load_personal(store)
print(json.dumps({
    "tf_loaded": any(m == "tensorflow" or m.startswith("tensorflow.") for m, v in sys.modules.items() if v),
    "loss": history.loss,
    "moved": float(np.abs(after - before).max()),
    "predictions": trainer.predict(w.data).tolist()[:5],
    "accuracy": trainer.evaluate(w.data, w.labels)["accuracy"],
    "personal_same": bool(np.array_equal(reloaded.get_weights("personal"), trainer.get_weights("personal"))),
    "windows": len(w),
    "runtime": trainer.runtime,
}))
"""


@pytest.mark.parametrize("runtime", ["tflite-runtime", "litert"])
def test_sdk_trainer_runs_where_tensorflow_cannot_be_imported(bundle_dir, tmp_path, runtime):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(bundle_dir), str(tmp_path / "personal.npz")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "FEDWEAR_TFLITE_RUNTIME": runtime},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tf_loaded"] is False
    assert out["runtime"] == runtime
    assert out["moved"] > 0
    assert out["loss"][-1] < out["loss"][0]  # it learns
    assert out["accuracy"] > 0.5
    assert out["personal_same"] is True
    assert len(out["predictions"]) == 5


def test_sdk_sources_never_import_tensorflow():
    for path in (ROOT / "sdk").rglob("*.py"):
        text = path.read_text()
        assert "import tensorflow" not in text and "from tensorflow" not in text, path
    device_requirements = (ROOT / "requirements-device.txt").read_text().lower()
    assert "tensorflow" not in device_requirements.replace("no tensorflow", "")


def test_runtime_is_chosen_at_import_and_can_be_forced():
    from sdk import runtime

    assert runtime.installed() == ["tflite-runtime", "litert"]  # both in the test environment
    assert runtime.choose({}) == "tflite-runtime"  # preferred where it is installed
    assert runtime.choose({"FEDWEAR_TFLITE_RUNTIME": "litert"}) == "litert"
    with pytest.raises(ValueError, match="choose one of tflite-runtime, litert"):
        runtime.choose({"FEDWEAR_TFLITE_RUNTIME": "tensorflow"})
