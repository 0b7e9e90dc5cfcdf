"""Always-on recognition with a bundle's int8 inference model, through a TFLite interpreter alone (tflite-runtime or LiteRT).

The int8 model holds one global model version's shared layers as constants
and gives the global head's output and the features at the branch point. The
device's personal layers (small dense layers, never uploaded; the manifest's
layer spec lists them) run on those features here, so personalised
recognition keeps the int8 feature extractor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.bundle import Manifest, load_inference_model
from sdk import runtime
from sdk.trainer import check_inputs


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
        self.classifies = self.manifest.head.kind == "classification"
        self.output = "global_probs" if self.classifies else "global_values"

    def outputs(self, windows, batch_size: int = 256) -> dict[str, np.ndarray]:
        """{"global_probs" (n, classes) or "global_values" (n, 1), "features": (n, features)} for raw inputs."""
        x = check_inputs(windows, self.manifest)
        parts = [self._runner(x=x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        widths = {name: detail["shape"][-1] for name, detail in self._runner.get_output_details().items()}
        return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros((0, widths[name]), np.float32)
                for name in (self.output, "features")}

    def predict_proba(self, windows, personal: np.ndarray | None = None) -> np.ndarray:
        """The global head's output, or with ``personal`` weights (the trainer's
        ``get_weights("personal")``) that of the personal layers on the int8 features."""
        out = self.outputs(windows)
        if personal is None:
            return out[self.output]
        w = self.manifest.personal.split(personal)
        h = out["features"]
        for layer in self.manifest.spec.personal_layers:  # dense and ReLU: they take a feature vector
            h = h @ w[f"{layer.name}/kernel"] + w[f"{layer.name}/bias"] if layer.weighted else np.maximum(h, 0)
        return _softmax(h) if self.classifies else h

    def predict(self, windows, personal: np.ndarray | None = None) -> np.ndarray:
        """Predicted class indices, or values of a regression head."""
        out = self.predict_proba(windows, personal)
        return np.argmax(out, axis=1) if self.classifies else out[:, 0]
