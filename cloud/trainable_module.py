"""The model as a tf.Module whose signatures convert to TFLite builtin ops only.

Training steps use hand-derived gradients (matmul, transpose, pad, masks,
reductions) instead of autodiff, whose ops (ReluGrad and friends) would need
the Flex delegate that tflite-runtime does not ship. The im2col form of a
valid Conv1D makes its weight gradient one matmul and its input gradient a sum
of shifted slices.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cloud.har_model import ModelConfig
from sdk.bundle import WeightLayout


def _frames(h: tf.Tensor, k: int) -> tf.Tensor:
    """(B, T, C) -> (B, T-k+1, k*C): the k-sample frames of a valid Conv1D."""
    t_out = h.shape[1] - k + 1
    return tf.concat([h[:, j : j + t_out, :] for j in range(k)], axis=2)


def _unframe(d_frames: tf.Tensor, k: int, channels: int) -> tf.Tensor:
    """Adjoint of _frames: (B, T-k+1, k*C) -> (B, T, C), summing overlaps."""
    parts = [
        tf.pad(d_frames[:, :, j * channels : (j + 1) * channels], [[0, 0], [j, k - 1 - j], [0, 0]])
        for j in range(k)
    ]
    return tf.add_n(parts)


def _matmul_2d(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """(B, T, n) @ (n, m) -> (B, T, m)."""
    t, n = a.shape[1], a.shape[2]
    out = tf.matmul(tf.reshape(a, [-1, n]), b)
    return tf.reshape(out, [-1, t, b.shape[1]])


def _outer_sum(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """sum over batch and time of a^T b for (B, T, n), (B, T, m) -> (n, m)."""
    return tf.matmul(tf.reshape(a, [-1, a.shape[2]]), tf.reshape(b, [-1, b.shape[2]]), transpose_a=True)


def _relu_mask(h: tf.Tensor) -> tf.Tensor:
    return tf.cast(h > 0, tf.float32)


class TrainableHarModule(tf.Module):
    """Variables, inference and SGD training steps of the HAR model."""

    def __init__(
        self,
        config: ModelConfig,
        shared: np.ndarray,
        personal: np.ndarray,
        norm_mean: np.ndarray,
        norm_std: np.ndarray,
    ) -> None:
        super().__init__(name="fedwear_har")
        self.config = config
        self.shared_layout: WeightLayout = config.shared_layout
        self.personal_layout: WeightLayout = config.personal_layout
        self._mean = tf.constant(np.asarray(norm_mean, np.float32).reshape(1, 1, -1))
        self._inv_std = tf.constant(1.0 / np.asarray(norm_std, np.float32).reshape(1, 1, -1))
        self.v = {}
        self.velocity = {}
        for layout, flat in ((self.shared_layout, shared), (self.personal_layout, personal)):
            for name, value in layout.split(flat).items():
                self.v[name] = tf.Variable(value, name=name.replace("/", "_"))
                self.velocity[name] = tf.Variable(
                    tf.zeros_like(value), name=name.replace("/", "_") + "_velocity"
                )
        x_spec = tf.TensorSpec([None, config.window_length, config.channels], tf.float32, "x")
        y_spec = tf.TensorSpec([None, config.num_classes], tf.float32, "y")
        step_specs = [
            x_spec,
            y_spec,
            tf.TensorSpec([], tf.float32, "lr"),
            tf.TensorSpec([], tf.float32, "momentum"),
        ]
        self.infer = tf.function(self._infer, input_signature=[x_spec])
        self.train_shared = tf.function(self._train_shared, input_signature=step_specs)
        self.train_personal = tf.function(
            self._train_personal, input_signature=step_specs + [tf.TensorSpec([], tf.float32, "coral")]
        )
        self.get_shared = tf.function(lambda: self._get(self.shared_layout), input_signature=[])
        self.get_personal = tf.function(lambda: self._get(self.personal_layout), input_signature=[])
        self.set_shared = tf.function(
            lambda weights: self._set(self.shared_layout, weights),
            input_signature=[tf.TensorSpec([self.shared_layout.size], tf.float32, "weights")],
        )
        self.set_personal = tf.function(
            lambda weights: self._set(self.personal_layout, weights),
            input_signature=[tf.TensorSpec([self.personal_layout.size], tf.float32, "weights")],
        )

    def signatures(self) -> dict:
        return {
            "infer": self.infer,
            "train_shared": self.train_shared,
            "train_personal": self.train_personal,
            "get_shared": self.get_shared,
            "set_shared": self.set_shared,
            "get_personal": self.get_personal,
            "set_personal": self.set_personal,
        }

    # Forward pieces --------------------------------------------------------
    def _conv(self, h, layer):
        kernel = self.v[f"{layer}/kernel"]
        k, cin, cout = kernel.shape
        frames = _frames(h, k)
        z = _matmul_2d(frames, tf.reshape(kernel, [k * cin, cout])) + self.v[f"{layer}/bias"]
        return frames, tf.nn.relu(z)

    def _features(self, x):
        """(frames and outputs of every conv layer, pooled features, dense features)."""
        h = (x - self._mean) * self._inv_std
        convs = []
        for layer in self.config.conv_layers:
            frames, h = self._conv(h, layer)
            convs.append((frames, h))
        pooled = tf.reduce_mean(h, axis=1)
        feat = tf.nn.relu(tf.matmul(pooled, self.v["dense/kernel"]) + self.v["dense/bias"])
        return convs, pooled, feat

    def _personal_logits(self, pooled):
        adapted = tf.nn.relu(tf.matmul(pooled, self.v["adapter/kernel"]) + self.v["adapter/bias"])
        logits = tf.matmul(adapted, self.v["personal_head/kernel"]) + self.v["personal_head/bias"]
        return adapted, logits

    def _infer(self, x):
        _, pooled, feat = self._features(x)
        global_logits = tf.matmul(feat, self.v["head/kernel"]) + self.v["head/bias"]
        _, personal_logits = self._personal_logits(pooled)
        return {
            "global_probs": tf.nn.softmax(global_logits),
            "personal_probs": tf.nn.softmax(personal_logits),
        }

    # Training steps --------------------------------------------------------
    @staticmethod
    def _loss_and_grad(logits, y):
        """Mean softmax cross-entropy and its gradient w.r.t. the logits."""
        batch = tf.cast(tf.shape(logits)[0], tf.float32)
        loss = -tf.reduce_sum(y * tf.nn.log_softmax(logits)) / batch
        return loss, (tf.nn.softmax(logits) - y) / batch

    @staticmethod
    def _dense_grads(inputs, d_out, kernel):
        """Kernel, bias and input gradients of inputs @ kernel + bias."""
        return (
            tf.matmul(inputs, d_out, transpose_a=True),
            tf.reduce_sum(d_out, axis=0),
            tf.matmul(d_out, kernel, transpose_b=True),
        )

    def _conv_grads(self, frames, d_z, layer, want_input):
        kernel = self.v[f"{layer}/kernel"]
        k, cin, cout = kernel.shape
        d_kernel = tf.reshape(_outer_sum(frames, d_z), [k, cin, cout])
        d_bias = tf.reduce_sum(d_z, axis=[0, 1])
        d_input = None
        if want_input:
            d_frames = _matmul_2d(d_z, tf.transpose(tf.reshape(kernel, [k * cin, cout])))
            d_input = _unframe(d_frames, k, cin)
        return d_kernel, d_bias, d_input

    def _apply(self, grads: dict, lr, momentum):
        """SGD with momentum, as Keras does it: v = m*v - lr*g; w += v."""
        for name, grad in grads.items():
            velocity = self.velocity[name].assign(momentum * self.velocity[name] - lr * grad)
            self.v[name].assign_add(velocity)

    def _train_shared(self, x, y, lr, momentum):
        convs, pooled, feat = self._features(x)
        logits = tf.matmul(feat, self.v["head/kernel"]) + self.v["head/bias"]
        loss, d_logits = self._loss_and_grad(logits, y)
        g = {}
        g["head/kernel"], g["head/bias"], d_feat = self._dense_grads(
            feat, d_logits, self.v["head/kernel"]
        )
        d_dense = d_feat * _relu_mask(feat)
        g["dense/kernel"], g["dense/bias"], d_pooled = self._dense_grads(
            pooled, d_dense, self.v["dense/kernel"]
        )
        top = convs[-1][1]
        d_h = tf.expand_dims(d_pooled / float(top.shape[1]), 1) * tf.ones_like(top)
        for i in reversed(range(len(convs))):
            layer = self.config.conv_layers[i]
            frames, h = convs[i]
            g[f"{layer}/kernel"], g[f"{layer}/bias"], d_h = self._conv_grads(
                frames, d_h * _relu_mask(h), layer, want_input=i > 0
            )
        self._apply(g, lr, momentum)
        return {"loss": loss}

    @staticmethod
    def _coral(adapted, feat):
        """CORAL term and its gradient: ||cov(adapted) - cov(feat)||_F^2 / (4 d^2), feat held fixed."""
        n = tf.cast(tf.shape(adapted)[0], tf.float32)
        denom = tf.maximum(n - 1.0, 1.0)
        d = float(adapted.shape[1])
        a_c = adapted - tf.reduce_mean(adapted, axis=0, keepdims=True)
        f_c = feat - tf.reduce_mean(feat, axis=0, keepdims=True)
        diff = (tf.matmul(a_c, a_c, transpose_a=True) - tf.matmul(f_c, f_c, transpose_a=True)) / denom
        return tf.reduce_sum(diff * diff) / (4 * d * d), tf.matmul(a_c, diff) / (d * d * denom)

    def _train_personal(self, x, y, lr, momentum, coral):
        _, pooled, feat = self._features(x)
        adapted, logits = self._personal_logits(pooled)
        loss, d_logits = self._loss_and_grad(logits, y)
        g = {}
        g["personal_head/kernel"], g["personal_head/bias"], d_adapted = self._dense_grads(
            adapted, d_logits, self.v["personal_head/kernel"]
        )
        coral_loss, d_coral = self._coral(adapted, feat)
        loss = loss + coral * coral_loss
        d_z = (d_adapted + coral * d_coral) * _relu_mask(adapted)
        g["adapter/kernel"], g["adapter/bias"], _ = self._dense_grads(
            pooled, d_z, self.v["adapter/kernel"]
        )
        self._apply(g, lr, momentum)
        return {"loss": loss}

    # Weights in and out -----------------------------------------------------
    def _get(self, layout: WeightLayout):
        return {"weights": tf.concat([tf.reshape(self.v[t.name], [-1]) for t in layout.tensors], 0)}

    def _set(self, layout: WeightLayout, weights):
        """New weights; their momentum starts again from zero."""
        for t in layout.tensors:
            self.v[t.name].assign(tf.reshape(weights[t.offset : t.offset + t.size], t.shape))
            self.velocity[t.name].assign(tf.zeros(t.shape))
        return self._get(layout)
