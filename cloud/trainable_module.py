"""A model spec as a tf.Module whose signatures convert to TFLite builtin ops only.

Training steps use hand-derived gradients built from cloud.builtin_layers
(matmul, gather, pad, masks, reductions) instead of autodiff, whose ops
(ReluGrad and friends) would need the Flex delegate that tflite-runtime does
not ship. The forward pass records what each layer's gradient needs; the
backward pass walks the records in reverse and stops below the lowest layer
that trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cloud import builtin_layers as nn
from sdk.bundle import WeightLayout
from sdk.model_spec import Layer, ModelSpec


@dataclass
class Record:
    """One layer's pass: its input, output and (Conv1D) frames."""

    layer: Layer
    input: tf.Tensor
    output: tf.Tensor
    frames: tf.Tensor | None = None


class TrainableModule(tf.Module):
    """Variables, inference and SGD training steps of a model spec."""

    def __init__(self, spec: ModelSpec, shared: np.ndarray, personal: np.ndarray, norm_mean: np.ndarray,
                 norm_std: np.ndarray) -> None:
        super().__init__(name="fedwear_model")
        self.spec = spec
        self.shared_layout, self.personal_layout = spec.shared_layout, spec.personal_layout
        stats = (1,) * len(spec.input.shape) + (-1,)  # broadcast over the batch (and the steps of a window)
        self._mean = tf.constant(np.asarray(norm_mean, np.float32).reshape(stats))
        self._inv_std = tf.constant(1.0 / np.asarray(norm_std, np.float32).reshape(stats))
        self.v = {}
        self.velocity = {}
        for layout, flat in ((self.shared_layout, shared), (self.personal_layout, personal)):
            for name, value in layout.split(flat).items():
                self.v[name] = tf.Variable(value, name=name.replace("/", "_"))
                self.velocity[name] = tf.Variable(tf.zeros_like(value), name=name.replace("/", "_") + "_velocity")
        self.classifies = spec.head.kind == "classification"
        x_spec = tf.TensorSpec([None, *spec.input.shape], tf.float32, "x")
        y_spec = tf.TensorSpec([None, spec.head.outputs], tf.float32, "y")
        scalar = [tf.TensorSpec([], tf.float32, name) for name in ("lr", "momentum")]
        ignored = [tf.TensorSpec([], tf.float32, "ignored")]  # Java's runSignature needs an input
        self.infer = tf.function(self._infer, input_signature=[x_spec])
        self.train_shared = tf.function(self._train_shared, input_signature=[x_spec, y_spec, *scalar])
        self.train_personal = tf.function(
            self._train_personal, input_signature=[x_spec, y_spec, *scalar, tf.TensorSpec([], tf.float32, "coral")])
        self.get_shared = tf.function(lambda ignored: self._get(self.shared_layout), input_signature=ignored)
        self.get_personal = tf.function(lambda ignored: self._get(self.personal_layout), input_signature=ignored)
        self.set_shared = tf.function(
            lambda weights: self._set(self.shared_layout, weights),
            input_signature=[tf.TensorSpec([self.shared_layout.size], tf.float32, "weights")])
        self.set_personal = tf.function(
            lambda weights: self._set(self.personal_layout, weights),
            input_signature=[tf.TensorSpec([self.personal_layout.size], tf.float32, "weights")])

    def signatures(self) -> dict:
        return {name: getattr(self, name) for name in
                ("infer", "train_shared", "train_personal", "get_shared", "set_shared", "get_personal",
                 "set_personal")}

    # Forward ---------------------------------------------------------------------
    def _layer(self, layer: Layer, h: tf.Tensor) -> Record:
        if layer.type == "conv1d":
            framed, z = nn.conv1d(h, self.v[f"{layer.name}/kernel"], self.v[f"{layer.name}/bias"])
            return Record(layer, h, z, framed)
        if layer.type == "dense":
            return Record(layer, h, nn.dense(h, self.v[f"{layer.name}/kernel"], self.v[f"{layer.name}/bias"]))
        if layer.type == "relu":
            return Record(layer, h, tf.nn.relu(h))
        if layer.type == "global_average_pool":
            return Record(layer, h, nn.global_average_pool(h))
        return Record(layer, h, nn.flatten(h))

    def _forward(self, layers, h: tf.Tensor) -> list[Record]:
        records = []
        for layer in layers:
            records.append(self._layer(layer, h))
            h = records[-1].output
        return records

    def _trunk(self, x: tf.Tensor) -> tf.Tensor:
        """The normalised input through the shared layers below the branch point (frozen in personal steps)."""
        h = (x - self._mean) * self._inv_std
        for layer in self.spec.shared_layers[: self.spec.branch_index]:
            h = self._layer(layer, h).output
        return h

    def _output(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(logits) if self.classifies else logits

    def _infer(self, x):
        branch = self._trunk(x)
        outputs = {}
        for head, layers in (("global", self.spec.shared_layers[self.spec.branch_index:]),
                             ("personal", self.spec.personal_layers)):
            outputs[f"{head}_{'probs' if self.classifies else 'values'}"] = self._output(
                self._forward(layers, branch)[-1].output)
        return outputs

    # Backward ---------------------------------------------------------------------
    def _loss(self, output: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return nn.softmax_cross_entropy(output, y) if self.classifies else nn.mean_squared_error(output, y)

    def _backward(self, records: list[Record], d: tf.Tensor, grads: dict) -> tf.Tensor | None:
        """Stores the weight gradients of the recorded layers in grads, from the gradient of the last
        one's output; returns the gradient of the first one's input, or None when nothing below trains."""
        for i in reversed(range(len(records))):
            r, below = records[i], any(rec.layer.weighted for rec in records[:i])
            name = r.layer.name
            if r.layer.type == "dense":
                grads[f"{name}/kernel"], grads[f"{name}/bias"], d = nn.dense_grads(
                    r.input, d, self.v[f"{name}/kernel"], below)
            elif r.layer.type == "conv1d":
                kernel = self.v[f"{name}/kernel"]
                grads[f"{name}/kernel"], grads[f"{name}/bias"] = nn.conv1d_kernel_grads(r.frames, d, kernel)
                d = nn.conv1d_input_grad(d, kernel) if below else None
            elif not below:
                return None
            elif r.layer.type == "relu":
                d = nn.relu_grad(d, r.output)
            elif r.layer.type == "global_average_pool":
                d = nn.global_average_pool_grad(d, r.input)
            else:
                d = nn.flatten_grad(d, r.input)
            if d is None:
                return None
        return d

    def _apply(self, grads: dict, lr, momentum):
        """SGD with momentum, as Keras does it: v = m*v - lr*g; w += v."""
        for name, grad in grads.items():
            velocity = self.velocity[name].assign(momentum * self.velocity[name] - lr * grad)
            self.v[name].assign_add(velocity)

    def _train_shared(self, x, y, lr, momentum):
        records = self._forward(self.spec.shared_layers, (x - self._mean) * self._inv_std)
        loss, d_out = self._loss(records[-1].output, y)
        grads = {}
        self._backward(records, d_out, grads)
        self._apply(grads, lr, momentum)
        return {"loss": loss}

    @staticmethod
    def _coral(adapted, feat):
        """CORAL term and its gradient: ||cov(adapted) - cov(feat)||_F^2 / (4 d^2), feat held fixed."""
        n = tf.cast(tf.shape(adapted)[0], tf.float32)
        denom = tf.maximum(n - 1.0, 1.0)
        d = float(adapted.shape[1])
        a_c = adapted - tf.reduce_mean(adapted, axis=0, keepdims=True)
        f_c = feat - tf.reduce_mean(feat, axis=0, keepdims=True)
        diff = (nn.outer_sum(a_c, a_c) - nn.outer_sum(f_c, f_c)) / denom
        return tf.reduce_sum(diff * diff) / (4 * d * d), nn.matmul(a_c, diff) / (d * d * denom)

    def _train_personal(self, x, y, lr, momentum, coral):
        """One step on the personal layers. The CORAL term aligns the covariance of the personal head's
        input with that of the global head's input (the shared layers after the branch, held fixed)."""
        branch = self._trunk(x)
        records = self._forward(self.spec.personal_layers, branch)
        shared_top = self.spec.shared_layers[self.spec.branch_index:-1]
        feat = self._forward(shared_top, branch)[-1].output if shared_top else branch
        loss, d_out = self._loss(records[-1].output, y)
        grads = {}
        head = records[-1]
        adapted = head.input
        below = any(r.layer.weighted for r in records[:-1])
        grads[f"{head.layer.name}/kernel"], grads[f"{head.layer.name}/bias"], d_adapted = nn.dense_grads(
            adapted, d_out, self.v[f"{head.layer.name}/kernel"], below)
        coral_loss, d_coral = self._coral(adapted, feat)
        if below:
            self._backward(records[:-1], d_adapted + coral * d_coral, grads)
        self._apply(grads, lr, momentum)
        return {"loss": loss + coral * coral_loss}

    # Weights in and out -----------------------------------------------------------
    def _get(self, layout: WeightLayout):
        return {"weights": tf.concat([tf.reshape(self.v[t.name], [-1]) for t in layout.tensors], 0)}

    def _set(self, layout: WeightLayout, weights):
        """New weights; their momentum starts again from zero."""
        for t in layout.tensors:
            self.v[t.name].assign(tf.reshape(weights[t.offset : t.offset + t.size], t.shape))
            self.velocity[t.name].assign(tf.zeros(t.shape))
        return self._get(layout)
