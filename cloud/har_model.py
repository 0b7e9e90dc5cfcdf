"""The activity-recognition model: a small 1D CNN with shared and personal parts.

Shared (federated): two valid-padded Conv1D + ReLU layers, global average
pooling, a dense ReLU feature layer and the global classifier head.
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
    conv1_filters: int = 32
    conv2_filters: int = 64
    kernel_size: int = 5
    dense_units: int = 64

    def shared_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        k, c, f1, f2, d = (
            self.kernel_size,
            self.channels,
            self.conv1_filters,
            self.conv2_filters,
            self.dense_units,
        )
        return [
            ("conv1/kernel", (k, c, f1)),
            ("conv1/bias", (f1,)),
            ("conv2/kernel", (k, f1, f2)),
            ("conv2/bias", (f2,)),
            ("dense/kernel", (f2, d)),
            ("dense/bias", (d,)),
            ("head/kernel", (d, self.num_classes)),
            ("head/bias", (self.num_classes,)),
        ]

    def personal_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        d = self.dense_units
        return [
            ("adapter/kernel", (self.conv2_filters, d)),
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
    h = tf.keras.layers.Conv1D(
        config.conv1_filters, config.kernel_size, activation="relu", name="conv1",
        kernel_initializer=init(seed),
    )(x)
    h = tf.keras.layers.Conv1D(
        config.conv2_filters, config.kernel_size, activation="relu", name="conv2",
        kernel_initializer=init(seed + 1),
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
