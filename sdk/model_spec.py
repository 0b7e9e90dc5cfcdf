"""A model as a layer stack: what is shared (federated) and what is personal.

A ``ModelSpec`` names the input (a window of a multichannel time series or a
vector of features), the shared hidden layers, input side first, and the head
(softmax classification or mean-squared-error regression), which adds the
output Dense layer. The personal layers are the device's local copies of the
shared layers that come after ``branch_from``: they take that shared layer's
output (a feature vector), start as copies of the shared layers they mirror,
and are trained on the device only. The exporter (``cloud.bundle_export``)
turns a spec into a trainable bundle; the manifest carries the spec, so a
device knows which personal tensor starts from which shared one.

Supported layers, each with gradients in TFLite builtin ops: ``dense`` (units),
``conv1d`` (filters as ``units``, ``kernel_size``; valid padding, stride 1),
``relu``, ``global_average_pool`` and ``flatten``. This module needs no
TensorFlow: it is the data both sides share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sdk.layout import WeightLayout

LAYER_TYPES = ("dense", "conv1d", "relu", "global_average_pool", "flatten")
WEIGHTED = ("dense", "conv1d")
INPUT_KINDS = ("window", "features")
HEAD_KINDS = ("classification", "regression")


class SpecError(ValueError):
    """A model spec that cannot be built; the message names the layer or field."""


@dataclass(frozen=True)
class Layer:
    """One layer; ``units`` is a Dense layer's width or a Conv1D's number of filters."""

    type: str
    name: str
    units: int = 0
    kernel_size: int = 0
    copy_of: str = ""  # a personal layer: the shared layer it starts as a copy of

    @property
    def weighted(self) -> bool:
        return self.type in WEIGHTED

    def to_dict(self) -> dict:
        out = {"type": self.type, "name": self.name}
        if self.type == "dense":
            out["units"] = self.units
        if self.type == "conv1d":
            out.update(filters=self.units, kernel_size=self.kernel_size)
        if self.copy_of:
            out["copy_of"] = self.copy_of
        return out

    @staticmethod
    def from_dict(raw: dict, index: int) -> "Layer":
        if not isinstance(raw, dict):
            raise SpecError(f"layer {index}: expected an object such as {{\"type\": \"dense\", \"units\": 16}}")
        unknown = set(raw) - {"type", "name", "units", "filters", "kernel_size", "copy_of"}
        if unknown:
            raise SpecError(f"layer {index}: unknown fields {sorted(unknown)}")
        kind = raw.get("type")
        if kind not in LAYER_TYPES:
            raise SpecError(f"layer {index}: type {kind!r} is not supported; choose one of {', '.join(LAYER_TYPES)}")
        name = str(raw.get("name") or "")
        units = raw.get("filters" if kind == "conv1d" else "units", 0)
        try:
            return Layer(kind, name, int(units or 0), int(raw.get("kernel_size") or 0), str(raw.get("copy_of") or ""))
        except (TypeError, ValueError) as exc:
            raise SpecError(f"layer {index} ({kind}): {exc}") from exc


@dataclass(frozen=True)
class InputSpec:
    """What the model takes: ``window`` (length, channels) at ``rate_hz``, or ``features`` (count,)."""

    kind: str
    shape: tuple[int, ...]
    rate_hz: float | None = None
    channels: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if self.kind not in INPUT_KINDS:
            raise SpecError(f"input kind {self.kind!r} is not supported; choose window or features")
        if self.kind == "window":
            if len(self.shape) != 2 or min(self.shape) < 1:
                raise SpecError(f"a window input has shape [length, channels], got {list(self.shape)}")
            if self.rate_hz is None or not self.rate_hz > 0:
                raise SpecError("a window input needs rate_hz > 0")
            if len(self.channels) != self.shape[1]:
                raise SpecError(f"a window input names its {self.shape[1]} channels, got {len(self.channels)} names")
        else:
            if len(self.shape) != 1 or self.shape[0] < 1:
                raise SpecError(f"a features input has shape [count], got {list(self.shape)}")
            if len(self.names) != self.shape[0]:
                raise SpecError(f"a features input names its {self.shape[0]} features, got {len(self.names)} names")

    @property
    def width(self) -> int:
        """Channels of a window, or the number of features: the length of the normalisation vectors."""
        return self.shape[-1]

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "shape": list(self.shape)}
        if self.kind == "window":
            out.update(rate_hz=self.rate_hz, channels=list(self.channels))
        else:
            out["names"] = list(self.names)
        return out

    @staticmethod
    def from_dict(raw: dict) -> "InputSpec":
        shape = tuple(raw.get("shape", ()))
        names = raw.get("names")
        if raw.get("kind") == "features" and names is None and len(shape) == 1:
            names = [f"x{i}" for i in range(int(shape[0]))]
        return InputSpec(raw.get("kind"), shape, raw.get("rate_hz"), tuple(raw.get("channels", ())),
                         tuple(names or ()))


@dataclass(frozen=True)
class HeadSpec:
    """The output: softmax ``classification`` over ``label_names``, or ``regression`` of one
    target (``target`` name, ``units``) with mean squared error; ``name`` names its Dense layer."""

    kind: str
    label_names: tuple[str, ...] = ()
    target: str = ""
    units: str = ""
    name: str = "head"

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        if self.kind not in HEAD_KINDS:
            raise SpecError(f"head kind {self.kind!r} is not supported; choose classification or regression")
        if self.kind == "classification" and len(self.label_names) < 2:
            raise SpecError("a classification head needs at least two label_names")
        if self.kind == "regression" and (self.label_names or not self.target):
            raise SpecError("a regression head names its target (and units), not label_names")

    @property
    def outputs(self) -> int:
        return len(self.label_names) if self.kind == "classification" else 1

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "name": self.name}
        if self.kind == "classification":
            out["label_names"] = list(self.label_names)
        else:
            out.update(target=self.target, units=self.units)
        return out

    @staticmethod
    def from_dict(raw: dict) -> "HeadSpec":
        return HeadSpec(raw.get("kind"), tuple(raw.get("label_names", ())), str(raw.get("target", "")),
                        str(raw.get("units", "")), str(raw.get("name") or "head"))


def _default_names(layers: list[Layer]) -> list[Layer]:
    """Names for unnamed layers: dense1, dense2, ..., conv1, ..., pool and flatten (then pool2, flatten2);
    a ReLU after layer X is X_relu."""
    counts: dict[str, int] = {}
    named, previous = [], ""
    short = {"dense": "dense", "conv1d": "conv", "global_average_pool": "pool", "flatten": "flatten"}
    for layer in layers:
        name = layer.name
        if not name:
            if layer.type == "relu":
                name = f"{previous}_relu" if previous else "relu"
            else:
                counts[layer.type] = counts.get(layer.type, 0) + 1
                base = short[layer.type]
                name = base if layer.type in ("global_average_pool", "flatten") and counts[layer.type] == 1 else (
                    f"{base}{counts[layer.type]}")
        named.append(Layer(layer.type, name, layer.units, layer.kernel_size, layer.copy_of))
        previous = name
    return named


@dataclass(frozen=True)
class ModelSpec:
    """Input, shared hidden layers, head, and where the personal layers branch off."""

    input: InputSpec
    layers: tuple[Layer, ...]
    head: HeadSpec
    branch_from: str
    personal_names: dict = field(default_factory=dict)  # shared layer name -> its personal copy's name

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(_default_names(list(self.layers))))
        object.__setattr__(self, "personal_names", dict(self.personal_names))
        self._validate()

    # The two stacks --------------------------------------------------------------
    @property
    def shared_layers(self) -> tuple[Layer, ...]:
        """The hidden layers and the head's Dense layer, input side first."""
        return self.layers + (Layer("dense", self.head.name, self.head.outputs),)

    @property
    def branch_index(self) -> int:
        """Index in shared_layers of the first layer after the branch point (0: the input itself)."""
        if self.branch_from == "input":
            return 0
        return [layer.name for layer in self.layers].index(self.branch_from) + 1

    @property
    def personal_layers(self) -> tuple[Layer, ...]:
        """Copies of the shared layers after the branch point, renamed, each knowing its original."""
        return tuple(Layer(layer.type, self.personal_name(layer.name), layer.units, layer.kernel_size, layer.name)
                     for layer in self.shared_layers[self.branch_index:])

    def personal_name(self, shared_name: str) -> str:
        return self.personal_names.get(shared_name, f"personal_{shared_name}")

    def shapes(self) -> list[tuple[int, ...]]:
        """The output shape (without the batch) of every shared layer, input shape first."""
        shapes = [self.input.shape]
        for layer in self.shared_layers:
            shapes.append(_output_shape(layer, shapes[-1]))
        return shapes

    @property
    def features(self) -> int:
        """Width of the branch point's output: what the personal layers take."""
        return self.shapes()[self.branch_index][0]

    @property
    def classifies_windows(self) -> bool:
        """A classifier of windows of a time series: its labels form sequences (sdk.decoding)."""
        return self.head.kind == "classification" and self.input.kind == "window"

    # Weight layouts -------------------------------------------------------------
    def weight_shapes(self, layers) -> list[tuple[str, tuple[int, ...]]]:
        """(tensor name, shape) of the layers' kernels and biases, in order."""
        by_name = dict(zip([layer.name for layer in self.shared_layers], self.shapes()[:-1]))
        out = []
        for layer in layers:
            if not layer.weighted:
                continue
            inputs = by_name[layer.copy_of or layer.name][-1]
            kernel = (layer.kernel_size, inputs, layer.units) if layer.type == "conv1d" else (inputs, layer.units)
            out += [(f"{layer.name}/kernel", kernel), (f"{layer.name}/bias", (layer.units,))]
        return out

    @property
    def shared_layout(self) -> WeightLayout:
        return WeightLayout.from_shapes(self.weight_shapes(self.shared_layers))

    @property
    def personal_layout(self) -> WeightLayout:
        return WeightLayout.from_shapes(self.weight_shapes(self.personal_layers))

    @property
    def personal_copies(self) -> list[tuple[str, str]]:
        """(personal tensor, shared tensor it starts as) for every personal weight tensor."""
        return [(f"{layer.name}/{part}", f"{layer.copy_of}/{part}")
                for layer in self.personal_layers if layer.weighted for part in ("kernel", "bias")]

    # Checks ------------------------------------------------------------------------
    def _validate(self) -> None:
        names = [layer.name for layer in self.shared_layers]
        if len(set(names)) != len(names):
            raise SpecError(f"layer names must be unique, {sorted({n for n in names if names.count(n) > 1})} repeat")
        for layer in self.shared_layers:
            if layer.weighted and layer.units < 1:
                raise SpecError(f"layer {layer.name!r} ({layer.type}) needs a positive "
                                f"{'filters' if layer.type == 'conv1d' else 'units'}")
            if layer.type == "conv1d" and layer.kernel_size < 1:
                raise SpecError(f"layer {layer.name!r} (conv1d) needs a positive kernel_size")
            if not layer.weighted and (layer.units or layer.kernel_size):
                raise SpecError(f"layer {layer.name!r} ({layer.type}) has no units or kernel")
        shapes = self.shapes()  # SpecError when a layer cannot take its input (the head: a feature vector)
        if not self.branch_from:
            raise SpecError("personal.branch_from is missing: name the shared layer whose output the personal "
                            "layers take (or 'input')")
        if self.branch_from != "input" and self.branch_from not in names[:-1]:
            raise SpecError(f"branch_from {self.branch_from!r} is not a hidden shared layer "
                            f"(they are: {', '.join(names[:-1]) or 'none'}; or 'input')")
        if len(shapes[self.branch_index]) != 1:
            raise SpecError(f"personal layers branch from a feature vector, but {self.branch_from!r} gives shape "
                            f"{list(shapes[self.branch_index])}; branch after global_average_pool, flatten or dense")
        unknown = set(self.personal_names) - set(names[self.branch_index:])
        if unknown:
            raise SpecError(f"personal_names renames {sorted(unknown)}, which are not shared layers after "
                            f"{self.branch_from!r}")
        taken = names + [layer.name for layer in self.personal_layers]
        if len(set(taken)) != len(taken):
            raise SpecError(f"personal layer names clash with others: "
                            f"{sorted({n for n in taken if taken.count(n) > 1})}")

    # JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The spec as the manifest's ``layers`` field (the personal stack written out)."""
        return {"shared": [layer.to_dict() for layer in self.layers],
                "branch_from": self.branch_from,
                "personal": [layer.to_dict() for layer in self.personal_layers]}

    def to_json_spec(self) -> dict:
        """The spec as a user writes it: input, layers, head and personal."""
        personal = {"branch_from": self.branch_from}
        if self.personal_names:
            personal["names"] = dict(self.personal_names)
        return {"input": self.input.to_dict(), "layers": [layer.to_dict() for layer in self.layers],
                "head": self.head.to_dict(), "personal": personal}

    @staticmethod
    def from_dict(raw: dict) -> "ModelSpec":
        """A spec from its JSON form (``to_json_spec``); SpecError names what is wrong."""
        if not isinstance(raw, dict):
            raise SpecError("a model spec is a JSON object with input, layers, head and personal")
        unknown = set(raw) - {"input", "layers", "head", "personal"}
        if unknown:
            raise SpecError(f"unknown model spec fields {sorted(unknown)}")
        try:
            personal = raw.get("personal") or {}
            return ModelSpec(InputSpec.from_dict(raw["input"]),
                             tuple(Layer.from_dict(layer, i) for i, layer in enumerate(raw.get("layers", []))),
                             HeadSpec.from_dict(raw["head"]), str(personal.get("branch_from", "")),
                             dict(personal.get("names", {})))
        except KeyError as exc:
            raise SpecError(f"a model spec needs {exc.args[0]!r}") from exc
        except (TypeError, AttributeError) as exc:
            raise SpecError(f"malformed model spec: {exc}") from exc

    @staticmethod
    def from_manifest(input_spec: InputSpec, head: HeadSpec, layers: dict) -> "ModelSpec":
        """The spec a manifest describes (its ``input``, ``head`` and ``layers`` fields)."""
        personal = [Layer.from_dict(layer, i) for i, layer in enumerate(layers["personal"])]
        spec = ModelSpec(input_spec, tuple(Layer.from_dict(layer, i) for i, layer in enumerate(layers["shared"])),
                         head, str(layers["branch_from"]),
                         {p.copy_of: p.name for p in personal if p.name != f"personal_{p.copy_of}"})
        if spec.personal_layers != tuple(personal):
            raise SpecError("the manifest's personal layers are not copies of the shared layers after "
                            f"{spec.branch_from!r}")
        return spec


def _output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A layer's output shape for an input shape (without the batch); SpecError if it cannot take it."""
    if layer.type == "dense":
        if len(shape) != 1:
            raise SpecError(f"layer {layer.name!r} (dense) takes a feature vector, got shape {list(shape)}; "
                            f"put global_average_pool or flatten before it")
        return (layer.units,)
    if layer.type == "relu":
        return shape
    if len(shape) != 2:
        raise SpecError(f"layer {layer.name!r} ({layer.type}) takes a time series [steps, channels], "
                        f"got shape {list(shape)}")
    if layer.type == "conv1d":
        steps = shape[0] - layer.kernel_size + 1
        if steps < 1:
            raise SpecError(f"layer {layer.name!r} (conv1d, kernel {layer.kernel_size}) leaves no step of "
                            f"{shape[0]}; use fewer or smaller kernels")
        return (steps, layer.units)
    if layer.type == "global_average_pool":
        return (shape[1],)
    return (math.prod(shape),)  # flatten
