"""The model bundle: a .tflite file and the JSON manifest that describes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdk.layout import TensorSlot, WeightLayout
from sdk.model_spec import HeadSpec, InputSpec, ModelSpec, SpecError
from sdk.storage import sha256_file

BUNDLE_FORMAT = 2
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
class Manifest:
    """What a device needs to know about a bundle's model (docs/bundle.md, format 2)."""

    model_version: int
    input: InputSpec
    head: HeadSpec
    layers: dict  # the layer spec: shared layers, branch_from, personal layers (each with copy_of)
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
    def spec(self) -> ModelSpec:
        return ModelSpec.from_manifest(self.input, self.head, self.layers)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names in output order (empty for a regression head)."""
        return self.head.label_names

    @property
    def num_classes(self) -> int:
        return len(self.head.label_names)

    @property
    def window_length(self) -> int:
        """Samples per window of a window input."""
        if self.input.kind != "window":
            raise BundleError(f"this bundle's input is {self.input.kind}, not windows")
        return self.input.shape[0]

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the bundle: the model, the manifest and the inference models it lists."""
        return (MODEL_FILE, MANIFEST_FILE, *(str(entry["file"]) for entry in self.inference.values()))

    def to_json(self) -> str:
        raw = asdict(self)
        raw.update(input=self.input.to_dict(), head=self.head.to_dict())
        return json.dumps(raw, indent=2)

    @staticmethod
    def from_json(text: str, source: str = "manifest") -> "Manifest":
        try:
            raw = json.loads(text)
            if raw.get("format") != BUNDLE_FORMAT:
                hint = (" any more: export the model again with this version" if raw.get("format") == 1
                        else f" (this SDK reads format {BUNDLE_FORMAT})")
                raise BundleError(f"{source}: bundle format {raw.get('format')!r} is not supported{hint}")
            layouts = {
                key: WeightLayout(tuple(TensorSlot(str(t["name"]), tuple(int(d) for d in t["shape"]), int(t["offset"]))
                                        for t in raw[key]["tensors"]))
                for key in ("shared", "personal")
            }
            manifest = Manifest(
                model_version=int(raw["model_version"]),
                input=InputSpec.from_dict(raw["input"]),
                head=HeadSpec.from_dict(raw["head"]),
                layers=dict(raw["layers"]),
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
            manifest.check()
            return manifest
        except BundleError:
            raise
        except SpecError as exc:
            raise BundleError(f"{source}: the layer spec is not valid: {exc}") from exc
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{source}: not a valid bundle manifest ({exc!r})") from exc

    def check(self) -> None:
        """Refuses a manifest whose parts disagree: layouts vs layer spec, normalisation vs input, file names."""
        spec = self.spec
        for part, layout, want in (("shared", self.shared, spec.shared_layout),
                                   ("personal", self.personal, spec.personal_layout)):
            if layout != want:
                raise BundleError(f"the {part} weight layout does not match the layer spec "
                                  f"({[t.name for t in layout.tensors]} against {[t.name for t in want.tensors]})")
        width = self.input.width
        if len(self.norm_mean) != width or len(self.norm_std) != width or min(self.norm_std) <= 0:
            raise BundleError(f"norm_mean and norm_std need {width} values (std positive), one per "
                              f"{'channel' if self.input.kind == 'window' else 'feature'}")
        for entry in self.inference.values():
            name = str(entry.get("file", ""))
            if not name or Path(name).name != name or name in (MODEL_FILE, MANIFEST_FILE):
                raise BundleError(f"inference file {name!r} must be a plain file name beside {MODEL_FILE}")


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


def job_form_files(directory: str | Path) -> dict[str, bytes]:
    """A bundle directory as the multipart files of ``POST /admin/jobs``: ``model``, ``manifest``, and each
    inference model the manifest lists, in the field named by its file."""
    manifest, _ = load_bundle(directory)
    fields = {MODEL_FILE: "model", MANIFEST_FILE: "manifest"}
    missing = [name for name in manifest.files if not (Path(directory) / name).is_file()]
    if missing:
        raise BundleError(f"{directory}: {', '.join(missing)} missing; the manifest lists them")
    return {fields.get(name, name): (Path(directory) / name).read_bytes() for name in manifest.files}


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
