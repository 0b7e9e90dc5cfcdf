"""Forward and backward passes of layers, written in TFLite builtin ops only.

The pieces of a training step that runs on plain tflite-runtime: autodiff ops
(ReluGrad, Conv2DBackpropInput, ...) need the Flex delegate, these do not.
Their op layout follows what TFLite's kernels run fastest (measured op by op
with variants of the training signatures, see docs/bundle.md):

- every product is one BATCH_MATMUL whose right operand is not marked
  transposed: FULLY_CONNECTED with a weight that is not a constant, and
  BATCH_MATMUL with ``adj_y``, take a path about three times slower, so a
  transposed weight is transposed explicitly first (a few thousand values);
- the k taps of a valid Conv1D are framed (im2col) by one GATHER with a fixed
  index tensor, faster than concatenating k shifted slices;
- the input gradient of a Conv1D (the adjoint of framing) adds k padded
  slices with ADD, faster than one ADD_N;
- a ReLU's gradient masks with the SIGN of its output, about eight times
  faster than GREATER and CAST.

Shapes: time series are (batch, steps, channels); kernels are Keras's
(kernel_size, in, out) for Conv1D and (in, out) for Dense.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """(n, k) @ (k, m) as one BATCH_MATMUL without transposed operands."""
    return tf.squeeze(tf.matmul(tf.expand_dims(a, 0), tf.expand_dims(b, 0)), 0)


def outer_sum(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a^T @ b for (n, k) and (n, m): the sum over rows of their outer products, (k, m)."""
    return tf.matmul(a, b, transpose_a=True)


def frames(h: tf.Tensor, k: int) -> tf.Tensor:
    """(B, T, C) -> (B, T-k+1, k*C): the k-sample frames of a valid Conv1D, tap-major."""
    steps, channels = h.shape[1] - k + 1, h.shape[2]
    taps = np.arange(steps)[:, None] + np.arange(k)[None, :]
    return tf.reshape(tf.gather(h, taps, axis=1), [-1, steps, k * channels])


def unframe(d_frames: tf.Tensor, k: int, channels: int) -> tf.Tensor:
    """Adjoint of frames: (B, T-k+1, k*C) -> (B, T, C), summing the overlaps."""
    total = None
    for j in range(k):
        part = tf.pad(d_frames[:, :, j * channels : (j + 1) * channels], [[0, 0], [j, k - 1 - j], [0, 0]])
        total = part if total is None else total + part
    return total


def conv1d(h: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Valid, stride-1 Conv1D before its activation: (frames of h, h * kernel + bias)."""
    k, cin, cout = kernel.shape
    framed = frames(h, k)
    steps = framed.shape[1]
    z = matmul(tf.reshape(framed, [-1, k * cin]), tf.reshape(kernel, [k * cin, cout]))
    return framed, tf.reshape(z, [-1, steps, cout]) + bias


def conv1d_kernel_grads(framed: tf.Tensor, d_z: tf.Tensor, kernel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Kernel and bias gradients of conv1d from its frames and the gradient of its output."""
    k, cin, cout = kernel.shape
    d_z_rows = tf.reshape(d_z, [-1, cout])
    d_kernel_t = matmul(tf.transpose(d_z_rows), tf.reshape(framed, [-1, k * cin]))  # (out, k*in): faster than framed^T @ d_z
    return tf.reshape(tf.transpose(d_kernel_t), [k, cin, cout]), tf.reduce_sum(d_z_rows, axis=0)


def conv1d_input_grad(d_z: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Gradient of conv1d's input from the gradient of its output: (B, T-k+1, out) -> (B, T, in)."""
    k, cin, cout = kernel.shape
    d_framed = matmul(tf.reshape(d_z, [-1, cout]), tf.transpose(tf.reshape(kernel, [k * cin, cout])))
    return unframe(tf.reshape(d_framed, [-1, d_z.shape[1], k * cin]), k, cin)


def dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """x @ kernel + bias, before the activation."""
    return matmul(x, kernel) + bias


def dense_grads(
    x: tf.Tensor, d_z: tf.Tensor, kernel: tf.Tensor, want_input: bool = True
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """Kernel, bias and (if wanted) input gradients of dense from the gradient of its output."""
    d_input = matmul(d_z, tf.transpose(kernel)) if want_input else None
    return outer_sum(x, d_z), tf.reduce_sum(d_z, axis=0), d_input


def relu_grad(d_out: tf.Tensor, out: tf.Tensor) -> tf.Tensor:
    """Gradient before a ReLU from the gradient after it and its output.

    The output is never negative, so its sign is the ReLU's derivative (1 where
    positive, 0 elsewhere): SIGN is one fast pass, GREATER and CAST are two slow ones.
    """
    return d_out * tf.sign(out)


def global_average_pool(h: tf.Tensor) -> tf.Tensor:
    """(B, T, C) -> (B, C): mean over time."""
    return tf.reduce_mean(h, axis=1)


def global_average_pool_grad(d_pooled: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
    """(B, C) -> (B, T, C), h's shape: each step of h receives 1/T of the pooled gradient.

    Broadcast by adding to zeros shaped like h: a shape computed from the batch
    size (FILL, BROADCAST_TO) would make every later tensor dynamic, reallocated
    on each call.
    """
    return tf.zeros_like(h) + tf.expand_dims(d_pooled / float(h.shape[1]), 1)


def flatten(h: tf.Tensor) -> tf.Tensor:
    """(B, T, C) -> (B, T*C), step-major."""
    return tf.reshape(h, [-1, h.shape[1] * h.shape[2]])


def flatten_grad(d_flat: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
    """(B, T*C) -> (B, T, C), h's shape."""
    return tf.reshape(d_flat, [-1, h.shape[1], h.shape[2]])


def softmax_cross_entropy(logits: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean softmax cross-entropy over the batch for one-hot y, and its gradient w.r.t. the logits."""
    batch = tf.cast(tf.shape(logits)[0], tf.float32)
    loss = -tf.reduce_sum(y * tf.nn.log_softmax(logits)) / batch
    return loss, (tf.nn.softmax(logits) - y) / batch


def mean_squared_error(predicted: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean over the batch and the outputs of (predicted - y)^2, and its gradient w.r.t. predicted."""
    count = tf.cast(tf.shape(predicted)[0], tf.float32) * float(predicted.shape[1])
    error = predicted - y
    return tf.reduce_sum(error * error) / count, 2.0 * error / count
