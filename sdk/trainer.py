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


def check_windows(windows, manifest: Manifest) -> np.ndarray:
    """Windows as float32 (n, window_length, channels), refused if shaped otherwise or not finite."""
    x = np.asarray(windows, dtype=np.float32)
    want = (manifest.window_length, len(manifest.channels))
    if x.ndim != 3 or x.shape[1:] != want:
        raise ValueError(f"windows must have shape (n, {want[0]}, {want[1]}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("windows contain NaN or infinite values")
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
    def _check_windows(self, windows) -> np.ndarray:
        return check_windows(windows, self.manifest)

    def _one_hot(self, labels, n: int) -> np.ndarray:
        y = np.asarray(labels).reshape(-1)
        if y.shape[0] != n:
            raise ValueError(f"{n} windows but {y.shape[0]} labels")
        k = self.manifest.num_classes
        if y.size and (y.min() < 0 or y.max() >= k or not np.issubdtype(y.dtype, np.integer)):
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
        x = self._check_windows(windows)
        y = self._one_hot(labels, len(x))
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
        """Class probabilities from the 'global' or the 'personal' head."""
        if head not in ("global", "personal"):
            raise ValueError(f"head must be 'global' or 'personal', got {head!r}")
        x = self._check_windows(windows)
        runner = self._runners["infer"]
        outs = [
            runner(x=x[i : i + batch_size])[f"{head}_probs"] for i in range(0, len(x), batch_size)
        ]
        if not outs:
            return np.zeros((0, self.manifest.num_classes), np.float32)
        return np.concatenate(outs)

    def predict(self, windows, head: str = "global") -> np.ndarray:
        """Predicted class indices."""
        return np.argmax(self.predict_proba(windows, head), axis=1)

    def evaluate(self, windows, labels, head: str = "global") -> dict:
        """Accuracy and macro-F1 on labelled windows."""
        truth = np.asarray(labels).reshape(-1)
        return {**scores(truth, self.predict(windows, head), self.manifest.num_classes), "windows": int(truth.size)}

    # Weights ----------------------------------------------------------------
    def get_weights(self, part: str = "shared") -> np.ndarray:
        """The shared or personal weights as one flat float32 vector."""
        return np.array(self._runners[f"get_{part}"]()["weights"], dtype=np.float32)

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
