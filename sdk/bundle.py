"""The model bundle: a .tflite file and the JSON manifest that describes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sdk.storage import sha256_file

BUNDLE_FORMAT = 1
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
INT8_FILE = "infer_int8.tflite"  # optional: the quantised inference-only model
SIGNATURES = (
    "infer",
    "train_shared",
    "train_personal",
    "get_shared",
    "set_shared",
    "get_personal",
    "set_personal",
)


class BundleError(ValueError):
    """A bundle is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class TensorSlot:
    """One weight tensor's place in a flat weight vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class WeightLayout:
    """The tensors of a flat weight vector, in order."""

    tensors: tuple[TensorSlot, ...]

    @staticmethod
    def from_shapes(named_shapes: list[tuple[str, tuple[int, ...]]]) -> "WeightLayout":
        slots, offset = [], 0
        for name, shape in named_shapes:
            slot = TensorSlot(name, tuple(int(d) for d in shape), offset)
            slots.append(slot)
            offset += slot.size
        return WeightLayout(tuple(slots))

    @property
    def size(self) -> int:
        return sum(t.size for t in self.tensors)

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The named tensors of a flat vector."""
        flat = np.asarray(flat, dtype=np.float32).reshape(-1)
        if flat.size != self.size:
            raise ValueError(f"weight vector has {flat.size} values, the layout needs {self.size}")
        return {t.name: flat[t.offset : t.offset + t.size].reshape(t.shape) for t in self.tensors}

    def join(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        """One flat float32 vector from named tensors."""
        return np.concatenate(
            [np.asarray(tensors[t.name], np.float32).reshape(-1) for t in self.tensors]
        )


@dataclass(frozen=True)
class Manifest:
    """What a device needs to know about a bundle's model."""

    model_version: int
    window_length: int
    rate_hz: float
    channels: tuple[str, ...]
    label_names: tuple[str, ...]
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    shared: WeightLayout
    personal: WeightLayout
    model_sha256: str
    signatures: tuple[str, ...] = SIGNATURES
    format: int = BUNDLE_FORMAT
    notes: dict = field(default_factory=dict)
    inference: dict = field(default_factory=dict)  # kind -> {file, sha256, model_version, quantisation}

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_json(text: str, source: str = "manifest") -> "Manifest":
        try:
            raw = json.loads(text)
            if raw.get("format") != BUNDLE_FORMAT:
                raise BundleError(
                    f"{source}: bundle format {raw.get('format')!r} is not supported "
                    f"(this SDK reads format {BUNDLE_FORMAT})"
                )
            layouts = {
                key: WeightLayout(
                    tuple(
                        TensorSlot(t["name"], tuple(t["shape"]), int(t["offset"]))
                        for t in raw[key]["tensors"]
                    )
                )
                for key in ("shared", "personal")
            }
            return Manifest(
                model_version=int(raw["model_version"]),
                window_length=int(raw["window_length"]),
                rate_hz=float(raw["rate_hz"]),
                channels=tuple(raw["channels"]),
                label_names=tuple(raw["label_names"]),
                norm_mean=tuple(float(x) for x in raw["norm_mean"]),
                norm_std=tuple(float(x) for x in raw["norm_std"]),
                shared=layouts["shared"],
                personal=layouts["personal"],
                model_sha256=str(raw["model_sha256"]),
                signatures=tuple(raw["signatures"]),
                format=BUNDLE_FORMAT,
                notes=dict(raw.get("notes", {})),
                inference={str(kind): dict(entry) for kind, entry in raw.get("inference", {}).items()},
            )
        except BundleError:
            raise
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{source}: not a valid bundle manifest ({exc!r})") from exc


def load_bundle(directory: str | Path) -> tuple[Manifest, Path]:
    """Reads and checks a bundle directory; returns its manifest and model path."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    model_path = directory / MODEL_FILE
    for path in (manifest_path, model_path):
        if not path.is_file():
            raise BundleError(f"{path}: missing; a bundle directory holds {MODEL_FILE} and {MANIFEST_FILE}")
    manifest = Manifest.from_json(manifest_path.read_text(), str(manifest_path))
    actual = sha256_file(model_path)
    if actual != manifest.model_sha256:
        raise BundleError(
            f"{model_path}: sha256 {actual} does not match the manifest's {manifest.model_sha256}"
        )
    return manifest, model_path


def load_inference_model(directory: str | Path, kind: str = "int8") -> tuple[Manifest, Path]:
    """The manifest and the path of a bundle's inference-only model, its hash checked."""
    manifest, _ = load_bundle(directory)
    entry = manifest.inference.get(kind)
    if entry is None:
        raise BundleError(f"{directory}: the bundle lists no {kind!r} inference model "
                          f"(it has: {', '.join(manifest.inference) or 'none'})")
    path = Path(directory) / Path(str(entry.get("file", ""))).name
    if not path.is_file():
        raise BundleError(f"{path}: missing; the manifest lists it as the {kind} inference model")
    if sha256_file(path) != entry.get("sha256"):
        raise BundleError(f"{path}: sha256 does not match the manifest's")
    return manifest, path
