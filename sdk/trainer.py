"""Trains and runs a model bundle on a device through a TFLite interpreter alone (tflite-runtime or LiteRT)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sdk.bundle import Manifest, load_bundle
from sdk import runtime
from sdk.metrics import scores
from sdk.storage import write_atomically


def check_inputs(inputs, manifest: Manifest) -> np.ndarray:
    """Windows (n, length, channels) or feature vectors (n, features) as the manifest's input spec says,
    as float32; refused if shaped otherwise or not finite."""
    x = np.asarray(inputs, dtype=np.float32)
    spec = manifest.input
    what = "windows" if spec.kind == "window" else "feature vectors"
    if x.ndim != 1 + len(spec.shape) or x.shape[1:] != spec.shape:
        hint = "" if spec.kind == "window" else f" (features: {', '.join(spec.names[:5])}{', ...' * (spec.shape[0] > 5)})"
        raise ValueError(f"{what} must have shape (n, {', '.join(map(str, spec.shape))}), got {x.shape}{hint}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


@dataclass
class FitHistory:
    """Mean training loss per epoch."""

    loss: list[float]


class TFLiteTrainer:
    """Inference, SGD training and weight access for one model bundle."""

    def __init__(self, bundle_dir: str | Path, num_threads: int = 1, runtime_name: str | None = None) -> None:
        """``runtime_name``: 'tflite-runtime' or 'litert'; default the one chosen at import (sdk.runtime)."""
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest
        self.manifest, model_path = load_bundle(bundle_dir)
        self.runtime = runtime_name or runtime.DEFAULT
        interpreter = runtime.interpreter_class(self.runtime)
        self._interpreter = interpreter(model_path=str(model_path), num_threads=num_threads)
        self._runners = {
            name: self._interpreter.get_signature_runner(name) for name in self.manifest.signatures
        }

    # Data checks ------------------------------------------------------------
    @property
    def classifies(self) -> bool:
        return self.manifest.head.kind == "classification"

    def _check_inputs(self, inputs) -> np.ndarray:
        return check_inputs(inputs, self.manifest)

    def _targets(self, labels, n: int) -> np.ndarray:
        """One-hot classes (classification) or an (n, 1) column of target values (regression)."""
        y = np.asarray(labels).reshape(-1)
        if y.shape[0] != n:
            what = "windows" if self.manifest.input.kind == "window" else "feature vectors"
            raise ValueError(f"{n} {what} but {y.shape[0]} {'labels' if self.classifies else 'targets'}")
        if not self.classifies:
            if y.size and not (np.issubdtype(y.dtype, np.number) and np.all(np.isfinite(y))):
                raise ValueError(f"targets ({self.manifest.head.target}) must be finite numbers")
            return y.astype(np.float32).reshape(-1, 1)
        k = self.manifest.num_classes
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k):
            raise ValueError(f"labels must be integers in [0, {k - 1}]")
        return np.eye(k, dtype=np.float32)[y]

    # Training ---------------------------------------------------------------
    def train_step(
        self, part: str, x: np.ndarray, y_one_hot: np.ndarray, lr: float, momentum: float = 0.0,
        coral: float = 0.0,
    ) -> float:
        """One SGD step on 'shared' or 'personal' weights; returns the batch loss.

        ``coral`` weights the CORAL term of a personal step (0: none).
        """
        runner = self._runners[f"train_{part}"]
        inputs = {"x": x, "y": y_one_hot, "lr": np.float32(lr), "momentum": np.float32(momentum)}
        if part == "personal":
            inputs["coral"] = np.float32(coral)
        out = runner(**inputs)
        return float(out["loss"])

    def fit(
        self,
        windows,
        labels,
        epochs: int = 1,
        batch_size: int = 32,
        lr: float = 0.02,
        momentum: float = 0.9,
        part: str = "shared",
        seed: int = 0,
        on_epoch: Callable[[int, float], None] | None = None,
        coral: float = 0.0,
    ) -> FitHistory:
        """SGD with momentum over shuffled mini-batches, `epochs` times.

        Momentum carries over between calls; set_weights resets it.
        ``on_epoch(epoch, mean_loss)`` is called after every epoch.
        """
        if part not in ("shared", "personal"):
            raise ValueError(f"part must be 'shared' or 'personal', got {part!r}")
        if epochs < 0 or batch_size < 1 or not lr > 0 or not 0 <= momentum < 1 or coral < 0:
            raise ValueError("epochs must be >= 0, batch_size >= 1, lr > 0, 0 <= momentum < 1, coral >= 0")
        x = self._check_inputs(windows)
        y = self._targets(labels, len(x))
        rng = np.random.default_rng(seed)
        history = FitHistory([])
        for _ in range(epochs):
            order = rng.permutation(len(x))
            losses = [
                self.train_step(part, x[idx], y[idx], lr, momentum, coral)
                for idx in np.array_split(order, max(1, int(np.ceil(len(x) / batch_size))))
                if idx.size
            ]
            history.loss.append(float(np.mean(losses)) if losses else float("nan"))
            if on_epoch is not None:
                on_epoch(len(history.loss), history.loss[-1])
        return history

    # Inference ------------------------------------------------------------
    def predict_proba(self, windows, head: str = "global", batch_size: int = 256) -> np.ndarray:
        """Class probabilities (n, classes), or for a regression head the values (n, 1), of the
        'global' or the 'personal' head."""
        if head not in ("global", "personal"):
            raise ValueError(f"head must be 'global' or 'personal', got {head!r}")
        x = self._check_inputs(windows)
        runner = self._runners["infer"]
        name = f"{head}_{'probs' if self.classifies else 'values'}"
        outs = [runner(x=x[i : i + batch_size])[name] for i in range(0, len(x), batch_size)]
        if not outs:
            return np.zeros((0, self.manifest.head.outputs), np.float32)
        return np.concatenate(outs)

    def predict(self, windows, head: str = "global") -> np.ndarray:
        """Predicted class indices, or predicted values of a regression head."""
        out = self.predict_proba(windows, head)
        return np.argmax(out, axis=1) if self.classifies else out[:, 0]

    def evaluate(self, windows, labels, head: str = "global") -> dict:
        """Accuracy and macro-F1 (classification) or mean squared and absolute error (regression)."""
        truth = np.asarray(labels).reshape(-1)
        predicted = self.predict(windows, head)
        if self.classifies:
            return {**scores(truth, predicted, self.manifest.num_classes), "windows": int(truth.size)}
        error = predicted - truth
        return {"mse": float(np.mean(error**2)) if truth.size else float("nan"),
                "mae": float(np.mean(np.abs(error))) if truth.size else float("nan"), "windows": int(truth.size)}

    # Weights ----------------------------------------------------------------
    def get_weights(self, part: str = "shared") -> np.ndarray:
        """The shared or personal weights as one flat float32 vector."""
        return np.array(self._runners[f"get_{part}"](ignored=np.float32(0))["weights"], dtype=np.float32)

    def set_weights(self, flat, part: str = "shared") -> None:
        """Replaces the shared or personal weights with a flat float32 vector."""
        layout = self.manifest.shared if part == "shared" else self.manifest.personal
        vec = np.asarray(flat, dtype=np.float32).reshape(-1)
        if vec.size != layout.size:
            raise ValueError(f"{part} weights need {layout.size} values, got {vec.size}")
        if not np.all(np.isfinite(vec)):
            raise ValueError(f"{part} weights contain NaN or infinite values")
        self._runners[f"set_{part}"](weights=vec)

    def save_personal(self, path: str | Path) -> None:
        """Stores the personal weights on the device (atomic write)."""
        buffer = io.BytesIO()
        np.savez(buffer, personal=self.get_weights("personal"))
        write_atomically(path, buffer.getvalue(), mode=0o600)

    def load_personal(self, path: str | Path) -> None:
        """Loads personal weights saved by save_personal."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                weights = data["personal"]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a personal-weights file ({exc})") from exc
        self.set_weights(weights, "personal")
