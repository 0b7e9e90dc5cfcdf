"""The activity-recognition model: a small 1D CNN with shared and personal parts.

Shared (federated): valid-padded Conv1D + ReLU layers (two by default;
``conv_filters`` sets how many and how wide), global average pooling, a dense
ReLU feature layer and the global classifier head.
Personal (never uploaded): a personal dense ReLU layer (the adapter) and a
personal head on the frozen pooled convolutional features: the local copies of
the top layers that FedHealth fine-tunes. They start equal to the shared dense
layer and the global head, so the personal model starts as the global one. Max pooling and batch norm are left out on purpose:
every gradient here stays within TFLite builtin ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from sdk.bundle import WeightLayout


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

    @property
    def features(self) -> int:
        """Width of the pooled convolutional features."""
        return self.conv_filters[-1]

    def shared_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        k, d = self.kernel_size, self.dense_units
        shapes = []
        inputs = self.channels
        for name, filters in zip(self.conv_layers, self.conv_filters):
            shapes += [(f"{name}/kernel", (k, inputs, filters)), (f"{name}/bias", (filters,))]
            inputs = filters
        return shapes + [
            ("dense/kernel", (self.features, d)),
            ("dense/bias", (d,)),
            ("head/kernel", (d, self.num_classes)),
            ("head/bias", (self.num_classes,)),
        ]

    def personal_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        d = self.dense_units
        return [
            ("adapter/kernel", (self.features, d)),
            ("adapter/bias", (d,)),
            ("personal_head/kernel", (d, self.num_classes)),
            ("personal_head/bias", (self.num_classes,)),
        ]

    @property
    def shared_layout(self) -> WeightLayout:
        return WeightLayout.from_shapes(self.shared_shapes())

    @property
    def personal_layout(self) -> WeightLayout:
        return WeightLayout.from_shapes(self.personal_shapes())


def build_keras_model(config: ModelConfig, seed: int = 0) -> tf.keras.Model:
    """The Keras twin of the bundle's model; outputs global and personal logits.

    Inputs are normalised windows of shape (batch, window_length, channels).
    """
    init = tf.keras.initializers.GlorotUniform
    x = tf.keras.Input((config.window_length, config.channels), name="window")
    h = x
    for i, (name, filters) in enumerate(zip(config.conv_layers, config.conv_filters)):
        seed_i = seed + i if i < 2 else seed + 2 + i  # seed + 2 and + 3 belong to the dense layer and the head
        h = tf.keras.layers.Conv1D(
            filters, config.kernel_size, activation="relu", name=name, kernel_initializer=init(seed_i)
        )(h)
    pooled = tf.keras.layers.GlobalAveragePooling1D(name="pool")(h)
    features = tf.keras.layers.Dense(
        config.dense_units, activation="relu", name="dense", kernel_initializer=init(seed + 2)
    )(pooled)
    global_logits = tf.keras.layers.Dense(
        config.num_classes, name="head", kernel_initializer=init(seed + 3)
    )(features)
    adapted = tf.keras.layers.Dense(
        config.dense_units, activation="relu", name="adapter", kernel_initializer=init(seed + 2)
    )(pooled)
    personal_logits = tf.keras.layers.Dense(
        config.num_classes, name="personal_head", kernel_initializer=init(seed + 3)
    )(adapted)
    model = tf.keras.Model(x, [global_logits, personal_logits], name="fedwear_har")
    model.get_layer("adapter").set_weights(model.get_layer("dense").get_weights())
    model.get_layer("personal_head").set_weights(model.get_layer("head").get_weights())
    return model


def keras_weights(model: tf.keras.Model, layout: WeightLayout) -> np.ndarray:
    """A flat vector of the model's weights in the layout's order."""
    tensors = {}
    for slot in layout.tensors:
        layer, kind = slot.name.split("/")
        kernel, bias = model.get_layer(layer).get_weights()
        tensors[slot.name] = kernel if kind == "kernel" else bias
    return layout.join(tensors)


def set_keras_weights(model: tf.keras.Model, layout: WeightLayout, flat: np.ndarray) -> None:
    """Writes a flat vector in the layout's order into the model."""
    tensors = layout.split(flat)
    layers = {slot.name.split("/")[0] for slot in layout.tensors}
    for layer in layers:
        model.get_layer(layer).set_weights([tensors[f"{layer}/kernel"], tensors[f"{layer}/bias"]])
