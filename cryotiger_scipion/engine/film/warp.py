"""Backward bilinear warping: out(y, x) = image(y + dy, x + dx).

Flow channel 0 is dx, channel 1 is dy, in pixels.  Sample positions outside
the image are clamped to the border.  Coordinates are computed in float32
whatever the image dtype.
"""
from __future__ import annotations

import tensorflow as tf


def warp(image: tf.Tensor, flow: tf.Tensor) -> tf.Tensor:
    """Backward bilinear warp of ``image`` by ``flow`` (module doc).

    ``image`` (B, H, W, C) any float dtype; ``flow`` (B, H, W, 2) in pixels,
    channel 0 = dx, channel 1 = dy.  Returns (B, H, W, C) in image's dtype:
    out(y, x) = image(y + dy, x + dx), sample positions clamped to the border."""
    shape = tf.shape(image)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    flow = tf.cast(flow, tf.float32)
    gy, gx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    hmax = tf.cast(h - 1, tf.float32)
    wmax = tf.cast(w - 1, tf.float32)
    x = tf.clip_by_value(gx[None] + flow[..., 0], 0.0, wmax)
    y = tf.clip_by_value(gy[None] + flow[..., 1], 0.0, hmax)
    x0f = tf.floor(x)
    y0f = tf.floor(y)
    wx = (x - x0f)[..., None]
    wy = (y - y0f)[..., None]
    x0 = tf.cast(x0f, tf.int32)
    y0 = tf.cast(y0f, tf.int32)
    x1 = tf.minimum(x0 + 1, w - 1)
    y1 = tf.minimum(y0 + 1, h - 1)
    base = (tf.range(b) * h * w)[:, None, None]
    flat = tf.reshape(image, tf.stack([-1, c]))

    def gather(yy, xx):
        return tf.gather(flat, base + yy * w + xx)

    dt = image.dtype
    wx = tf.cast(wx, dt)
    wy = tf.cast(wy, dt)
    top = gather(y0, x0) + wx * (gather(y0, x1) - gather(y0, x0))
    bottom = gather(y1, x0) + wx * (gather(y1, x1) - gather(y1, x0))
    return top + wy * (bottom - top)
