"""Convolution with explicitly named variables (no Keras), shared by every part.

Variables are named like the published models' Keras variables
(``feat_net/sub_extractor/cfeat_conv_0/kernel``), so weights can be imported by name.
Kernels are HWIO float32; computation may run in another dtype (the kernel is
cast at use).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

LEAKY_SLOPE = 0.2


class Conv2D(tf.Module):
    """2D convolution, stride 1, 'same' padding, bias, optional LeakyReLU(0.2).

    ``path`` is the variable prefix, e.g. 'predict_flow/flow_predictor_0/conv_1';
    ``size`` the kernel size (int, or (kh, kw)); ``cin`` / ``cout`` the input and
    output channels; ``leaky`` adds LeakyReLU(``LEAKY_SLOPE``).
    Weights: Glorot-uniform kernel (kh, kw, cin, cout) float32 and zero bias
    (cout,) (Keras' defaults) drawn from ``rng``.
    Called on x (B, h, w, cin) of any float dtype -> (B, h, w, cout) in x's dtype
    (``padding='VALID'``: (B, h-kh+1, w-kw+1, cout)).
    """

    def __init__(self, path: str, size, cin: int, cout: int, leaky: bool, rng: np.random.Generator):
        super().__init__(name=None)
        kh, kw = (size, size) if isinstance(size, int) else size
        limit = np.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
        init = rng.uniform(-limit, limit, size=(kh, kw, cin, cout)).astype(np.float32)
        self.path = path
        self.leaky = leaky
        self.kernel = tf.Variable(init, name=f"{path}/kernel")
        self.bias = tf.Variable(np.zeros(cout, np.float32), name=f"{path}/bias")

    def __call__(self, x: tf.Tensor, padding: str = "SAME") -> tf.Tensor:
        k = tf.cast(self.kernel, x.dtype)
        y = tf.nn.conv2d(x, k, strides=1, padding=padding)
        y = tf.nn.bias_add(y, tf.cast(self.bias, x.dtype))
        if self.leaky:
            y = tf.nn.leaky_relu(y, alpha=LEAKY_SLOPE)
        return y


def avg_pool2(x: tf.Tensor) -> tf.Tensor:
    """2x2 average pooling, stride 2, 'valid': (B, h, w, C) -> (B, h//2, w//2, C)."""
    return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")


def image_pyramid(image: tf.Tensor, levels: int) -> list:
    """[image, pool(image), ...]: ``levels`` images, finest first.

    ``image`` (B, H, W, C); level i is (B, H/2**i, W/2**i, C) (``avg_pool2``
    repeated; FILM's image pyramid, Reda et al., ECCV 2022)."""
    out = [image]
    for _ in range(levels - 1):
        out.append(avg_pool2(out[-1]))
    return out
