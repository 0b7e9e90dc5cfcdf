"""The Keras twin of a model spec: the reference for gradients, the source of initial weights.

Inputs are normalised (the bundle normalises inside; the twin does not); the
outputs are the global and the personal head's logits (or values, for a
regression head). The personal layers start as copies of the shared layers
they mirror, so before personal training both heads agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sdk.bundle import WeightLayout
from sdk.model_spec import Layer, ModelSpec


def _keras_layer(layer: Layer, seed: int) -> tf.keras.layers.Layer:
    init = tf.keras.initializers.GlorotUniform(seed)
    if layer.type == "dense":
        return tf.keras.layers.Dense(layer.units, name=layer.name, kernel_initializer=init)
    if layer.type == "conv1d":
        return tf.keras.layers.Conv1D(layer.units, layer.kernel_size, name=layer.name, kernel_initializer=init)
    if layer.type == "relu":
        return tf.keras.layers.ReLU(name=layer.name)
    if layer.type == "global_average_pool":
        return tf.keras.layers.GlobalAveragePooling1D(name=layer.name)
    return tf.keras.layers.Flatten(name=layer.name)


def build_keras_model(spec: ModelSpec, seed: int = 0, offsets: dict[str, int] | None = None) -> tf.keras.Model:
    """The spec as a Keras model with outputs [global, personal]; Glorot-uniform kernels, zero biases.

    The i-th weighted shared layer's initialiser seed is ``seed + i``, or ``seed + offsets[name]``.
    """
    weighted = [layer.name for layer in spec.shared_layers if layer.weighted]
    seeds = {name: seed + (offsets or {}).get(name, i) for i, name in enumerate(weighted)}
    x = tf.keras.Input(spec.input.shape, name="input")
    h = x
    for layer in spec.shared_layers[: spec.branch_index]:
        h = _keras_layer(layer, seeds.get(layer.name, seed))(h)
    global_out = personal_out = h
    for layer in spec.shared_layers[spec.branch_index:]:
        global_out = _keras_layer(layer, seeds.get(layer.name, seed))(global_out)
    for layer in spec.personal_layers:
        personal_out = _keras_layer(layer, seeds.get(layer.copy_of, seed))(personal_out)
    model = tf.keras.Model(x, [global_out, personal_out], name="fedwear_model")
    for layer in spec.personal_layers:
        if layer.weighted:
            model.get_layer(layer.name).set_weights(model.get_layer(layer.copy_of).get_weights())
    return model


def branch_output(model: tf.keras.Model, spec: ModelSpec) -> tf.Tensor:
    """The Keras tensor the personal layers take: the output of ``branch_from`` (or the input)."""
    return model.input if spec.branch_index == 0 else model.get_layer(spec.branch_from).output


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
    for layer in dict.fromkeys(slot.name.split("/")[0] for slot in layout.tensors):
        model.get_layer(layer).set_weights([tensors[f"{layer}/kernel"], tensors[f"{layer}/bias"]])
