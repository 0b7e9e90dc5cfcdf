"""The model as a tf.Module whose signatures convert to TFLite builtin ops only.

Training steps use hand-derived gradients built from cloud.builtin_layers
(matmul, gather, pad, masks, reductions) instead of autodiff, whose ops
(ReluGrad and friends) would need the Flex delegate that tflite-runtime does
not ship.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cloud import builtin_layers as nn
from cloud.har_model import ModelConfig
from sdk.bundle import WeightLayout


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
    def _dense(self, x, layer):
        return nn.dense(x, self.v[f"{layer}/kernel"], self.v[f"{layer}/bias"])

    def _dense_grads(self, x, d_z, layer, g, want_input=True):
        """Stores the layer's kernel and bias gradients in g; returns its input gradient."""
        g[f"{layer}/kernel"], g[f"{layer}/bias"], d_x = nn.dense_grads(x, d_z, self.v[f"{layer}/kernel"], want_input)
        return d_x

    def _features(self, x):
        """(frames and outputs of every conv layer, pooled features, dense features)."""
        h = (x - self._mean) * self._inv_std
        convs = []
        for layer in self.config.conv_layers:
            framed, z = nn.conv1d(h, self.v[f"{layer}/kernel"], self.v[f"{layer}/bias"])
            h = tf.nn.relu(z)
            convs.append((framed, h))
        pooled = nn.global_average_pool(h)
        return convs, pooled, tf.nn.relu(self._dense(pooled, "dense"))

    def _personal_logits(self, pooled):
        adapted = tf.nn.relu(self._dense(pooled, "adapter"))
        return adapted, self._dense(adapted, "personal_head")

    def _infer(self, x):
        _, pooled, feat = self._features(x)
        _, personal_logits = self._personal_logits(pooled)
        return {
            "global_probs": tf.nn.softmax(self._dense(feat, "head")),
            "personal_probs": tf.nn.softmax(personal_logits),
        }

    # Training steps --------------------------------------------------------
    def _apply(self, grads: dict, lr, momentum):
        """SGD with momentum, as Keras does it: v = m*v - lr*g; w += v."""
        for name, grad in grads.items():
            velocity = self.velocity[name].assign(momentum * self.velocity[name] - lr * grad)
            self.v[name].assign_add(velocity)

    def _train_shared(self, x, y, lr, momentum):
        convs, pooled, feat = self._features(x)
        loss, d_logits = nn.softmax_cross_entropy(self._dense(feat, "head"), y)
        g = {}
        d_feat = self._dense_grads(feat, d_logits, "head", g)
        d_pooled = self._dense_grads(pooled, nn.relu_grad(d_feat, feat), "dense", g)
        d_h = nn.global_average_pool_grad(d_pooled, convs[-1][1])
        for i in reversed(range(len(convs))):
            layer, (framed, h) = self.config.conv_layers[i], convs[i]
            kernel, d_z = self.v[f"{layer}/kernel"], nn.relu_grad(d_h, h)
            g[f"{layer}/kernel"], g[f"{layer}/bias"] = nn.conv1d_kernel_grads(framed, d_z, kernel)
            if i > 0:
                d_h = nn.conv1d_input_grad(d_z, kernel)
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
        diff = (nn.outer_sum(a_c, a_c) - nn.outer_sum(f_c, f_c)) / denom
        return tf.reduce_sum(diff * diff) / (4 * d * d), nn.matmul(a_c, diff) / (d * d * denom)

    def _train_personal(self, x, y, lr, momentum, coral):
        _, pooled, feat = self._features(x)
        adapted, logits = self._personal_logits(pooled)
        loss, d_logits = nn.softmax_cross_entropy(logits, y)
        g = {}
        d_adapted = self._dense_grads(adapted, d_logits, "personal_head", g)
        coral_loss, d_coral = self._coral(adapted, feat)
        d_z = nn.relu_grad(d_adapted + coral * d_coral, adapted)
        self._dense_grads(pooled, d_z, "adapter", g, want_input=False)
        self._apply(g, lr, momentum)
        return {"loss": loss + coral * coral_loss}

    # Weights in and out -----------------------------------------------------
    def _get(self, layout: WeightLayout):
        return {"weights": tf.concat([tf.reshape(self.v[t.name], [-1]) for t in layout.tensors], 0)}

    def _set(self, layout: WeightLayout, weights):
        """New weights; their momentum starts again from zero."""
        for t in layout.tensors:
            self.v[t.name].assign(tf.reshape(weights[t.offset : t.offset + t.size], t.shape))
            self.velocity[t.name].assign(tf.zeros(t.shape))
        return self._get(layout)
