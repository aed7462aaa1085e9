"""Fusion decoder: U-Net style decoder from the warped pyramids to the image.

Start from the coarsest fusion level (no conv there); for each finer level i:
nearest-neighbour 2x upsample, 2x2 linear conv of ``fusion_filters(i)`` (TF
'same': pad 0 top/left, 1 bottom/right), concat(skip_i, up), two 3x3 leaky
convs.  A final 1x1 linear conv gives 3 channels (not clipped).
Variables are ``fusion/conv2d``, ``fusion/conv2d_1``, ... in creation order:
level 0 (2x2, 3x3, 3x3), level 1, ..., then the output conv last, as Keras
names them in the published models.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .config import FilmConfig
from .layers import Conv2D


def _keras_name(k: int) -> str:
    return "fusion/conv2d" if k == 0 else f"fusion/conv2d_{k}"


def fusion_filters(config: FilmConfig, level: int) -> int:
    """Width of decoder level ``level``: filters * 2**level, capped at
    filters * 2**specialized_levels (64, 128, 256, 512 published)."""
    return config.filters * 2 ** min(level, config.specialized_levels)


def centred_up_conv(conv, x: tf.Tensor) -> tf.Tensor:
    """The 2x2 ``conv`` applied centred to the nearest-upsampled ``x`` (B, h, w, C).

    A 2x2 mean first (zero padding of one pixel on every side, 'valid': h+1 x
    w+1), then the 2x2 conv 'valid' (h x w).  The pair is one 3x3 kernel
    [k0/2, (k0+k1)/2, k1/2] per axis centred on the output pixel with zero
    padding on both sides, so the decoder is equivariant to flips; the
    published 'same' 2x2 conv looks at pixels y and y+1 only (half a pixel
    down-right, the image moves up-left)."""
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    x = 0.25 * (x[:, :-1, :-1] + x[:, 1:, :-1] + x[:, :-1, 1:] + x[:, 1:, 1:])
    return conv(x, padding="VALID")


class Fusion(tf.Module):
    """FILM's fusion decoder (Reda et al., ECCV 2022), variable prefix ``fusion``.

    Built from ``config`` (``fusion_pyramid_levels``, ``filters``,
    ``fusion_upsampling``: 'centred' uses ``centred_up_conv``), weights drawn
    from ``rng`` in the published creation order (module doc).
    """

    def __init__(self, config: FilmConfig, rng: np.random.Generator):
        super().__init__(name="fusion")
        self.centred = config.fusion_upsampling == "centred"
        n = config.fusion_pyramid_levels
        self.levels = []
        k = 0
        for i in range(n - 1):
            f = fusion_filters(config, i)
            cin_up = config.fusion_channels(n - 1) if i == n - 2 else fusion_filters(config, i + 1)
            up = Conv2D(_keras_name(k), 2, cin_up, f, False, rng)
            c1 = Conv2D(_keras_name(k + 1), 3, config.fusion_channels(i) + f, f, True, rng)
            c2 = Conv2D(_keras_name(k + 2), 3, f, f, True, rng)
            self.levels.append([up, c1, c2])
            k += 3
        self.output_conv = Conv2D(_keras_name(k), 1, fusion_filters(config, 0), 3, False, rng)

    def __call__(self, pyramid: list) -> tf.Tensor:
        """Decode the fusion pyramid into the output image.

        ``pyramid``: fusion inputs finest first, level i (B, h_i, w_i,
        config.fusion_channels(i)) (warped images+features, flows, optional t).
        Returns (B, H, W, 3) of the finest level, in its dtype, linear (not
        clipped to [0, 1])."""
        net = pyramid[-1]
        for i in range(len(pyramid) - 2, -1, -1):
            up, c1, c2 = self.levels[i]
            size = tf.shape(pyramid[i])[1:3]
            net = tf.image.resize(net, size, method="nearest")
            net = centred_up_conv(up, net) if self.centred else up(net)
            net = tf.concat([pyramid[i], net], axis=-1)
            net = c2(c1(net))
        return self.output_conv(net)
