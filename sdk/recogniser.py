"""Always-on recognition with a bundle's int8 inference model, through a TFLite interpreter alone (tflite-runtime or LiteRT).

The int8 model holds one global model version's shared layers as constants
and gives the global head's probabilities and the pooled features. The
device's personal layers (two small dense layers, never uploaded) run on
those features here, so personalised recognition keeps the int8 feature
extractor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.bundle import Manifest, load_inference_model
from sdk import runtime
from sdk.trainer import check_windows


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Recogniser:
    """Class probabilities from the bundle's quantised inference model."""

    def __init__(self, bundle_dir: str | Path, kind: str = "int8", num_threads: int = 1,
                 runtime_name: str | None = None) -> None:
        """``runtime_name``: 'tflite-runtime' or 'litert'; default the one chosen at import (sdk.runtime)."""
        interpreter = runtime.interpreter_class(runtime_name or runtime.DEFAULT)
        self.manifest: Manifest
        self.manifest, path = load_inference_model(bundle_dir, kind)
        self.model_version = int(self.manifest.inference[kind]["model_version"])
        self._runner = interpreter(model_path=str(path), num_threads=num_threads).get_signature_runner()

    def outputs(self, windows, batch_size: int = 256) -> dict[str, np.ndarray]:
        """{"global_probs": (n, classes), "features": (n, features)} for raw windows."""
        x = check_windows(windows, self.manifest)
        parts = [self._runner(x=x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        widths = {name: detail["shape"][-1] for name, detail in self._runner.get_output_details().items()}
        return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros((0, widths[name]), np.float32)
                for name in ("global_probs", "features")}

    def predict_proba(self, windows, personal: np.ndarray | None = None) -> np.ndarray:
        """The global head's probabilities, or with ``personal`` weights (the trainer's
        ``get_weights("personal")``) those of the personal layers on the int8 features."""
        out = self.outputs(windows)
        if personal is None:
            return out["global_probs"]
        w = self.manifest.personal.split(personal)
        adapted = np.maximum(out["features"] @ w["adapter/kernel"] + w["adapter/bias"], 0)
        return _softmax(adapted @ w["personal_head/kernel"] + w["personal_head/bias"])

    def predict(self, windows, personal: np.ndarray | None = None) -> np.ndarray:
        """Predicted class indices."""
        return np.argmax(self.predict_proba(windows, personal), axis=1)
