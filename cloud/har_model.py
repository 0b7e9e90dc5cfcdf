"""The activity-recognition model: a small 1D CNN, one model spec among others.

Shared (federated): valid-padded Conv1D + ReLU layers (two by default;
``conv_filters`` sets how many and how wide), global average pooling, a dense
ReLU feature layer and the global classifier head.
Personal (never uploaded): a personal dense ReLU layer (the adapter) and a
personal head on the frozen pooled convolutional features: the local copies of
the top layers that FedHealth fine-tunes. They start equal to the shared dense
layer and the global head, so the personal model starts as the global one. Max
pooling and batch norm are left out on purpose: every gradient here stays
within TFLite builtin ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from cloud import keras_twin
from sdk.bundle import WeightLayout
from sdk.model_spec import HeadSpec, InputSpec, Layer, ModelSpec
from sdk.windowing import CHANNELS


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the model."""

    window_length: int = 50
    channels: int = 6
    num_classes: int = 5
    conv_filters: tuple[int, ...] = (32, 64)
    kernel_size: int = 5
    dense_units: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_filters", tuple(int(f) for f in self.conv_filters))
        if not self.conv_filters or min(self.conv_filters) < 1:
            raise ValueError(f"conv_filters needs at least one positive width, got {self.conv_filters}")
        if self.kernel_size < 1 or self.dense_units < 1:
            raise ValueError("kernel_size and dense_units must be positive")
        steps = self.window_length - len(self.conv_filters) * (self.kernel_size - 1)
        if steps < 1:
            raise ValueError(
                f"{len(self.conv_filters)} convolutions of kernel {self.kernel_size} leave no step of a "
                f"{self.window_length}-sample window; use fewer or smaller kernels"
            )

    @property
    def conv_layers(self) -> list[str]:
        """Names of the convolutional layers, input side first: conv1, conv2, ..."""
        return [f"conv{i + 1}" for i in range(len(self.conv_filters))]

    def spec(self, label_names=None, rate_hz: float = 50.0) -> ModelSpec:
        """The model spec: convolutions with ReLU, pooling, a dense ReLU layer and the head; the adapter and
        the personal head branch from the pooled features."""
        labels = tuple(label_names) if label_names is not None else tuple(f"c{i}" for i in range(self.num_classes))
        if len(labels) != self.num_classes:
            raise ValueError(f"{len(labels)} label names for {self.num_classes} classes")
        names = CHANNELS if self.channels == len(CHANNELS) else tuple(f"ch{i}" for i in range(self.channels))
        layers = []
        for name, filters in zip(self.conv_layers, self.conv_filters):
            layers += [Layer("conv1d", name, filters, self.kernel_size), Layer("relu", f"{name}_relu")]
        layers += [Layer("global_average_pool", "pool"), Layer("dense", "dense", self.dense_units),
                   Layer("relu", "dense_relu")]
        return ModelSpec(InputSpec("window", (self.window_length, self.channels), rate_hz, names), tuple(layers),
                         HeadSpec("classification", labels), branch_from="pool", personal_names={"dense": "adapter"})

    def seed_offsets(self) -> dict[str, int]:
        """Initialiser seeds as this model always had them: conv1, conv2 +0, +1; dense +2; head +3; conv3... +4..."""
        return {**{name: (i if i < 2 else 2 + i) for i, name in enumerate(self.conv_layers)}, "dense": 2, "head": 3}

    @property
    def shared_layout(self) -> WeightLayout:
        return self.spec().shared_layout

    @property
    def personal_layout(self) -> WeightLayout:
        return self.spec().personal_layout


def build_keras_model(config: ModelConfig, seed: int = 0) -> tf.keras.Model:
    """The Keras twin of the activity model; outputs global and personal logits of normalised windows."""
    return keras_twin.build_keras_model(config.spec(), seed, config.seed_offsets())
