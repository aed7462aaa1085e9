"""Cascaded feature extractor: one set of weights for every scale and both images.

Sub-level j = two 3x3 leaky convs of ``filters * 2**j`` channels (variables
``feat_net/sub_extractor/cfeat_conv_{2j}``, ``..._{2j+1}``, as published), with 2x2 average pooling between
sub-levels.  Pyramid level i runs min(levels - i, sub_levels) sub-levels; the
feature at level i concatenates S_i[0], S_{i-1}[1], S_{i-2}[2], ... (those that
exist), i.e. 64, 192, 448, 960, 960, ... channels in the published configuration.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .config import FilmConfig
from .layers import Conv2D, avg_pool2


class FeatureExtractor(tf.Module):
    """FILM's scale-agnostic cascaded feature extractor (Reda et al., ECCV 2022),
    variable prefix ``feat_net``.

    Built from ``config`` (``sub_levels``, ``filters``) with weights drawn from
    ``rng``; the same weights serve every pyramid level and both images.
    """

    def __init__(self, config: FilmConfig, rng: np.random.Generator):
        super().__init__(name="feat_net")
        self.config = config
        self.convs = []
        cin = 3
        for k in range(2 * config.sub_levels):
            cout = config.filters * 2 ** (k // 2)
            self.convs.append(Conv2D(f"feat_net/sub_extractor/cfeat_conv_{k}", 3, cin, cout, True, rng))
            cin = cout

    def __call__(self, pyramid: list) -> list:
        """Features of one image pyramid.

        ``pyramid``: list of (B, h_i, w_i, 3) images, finest first (h_i = H / 2**i,
        from ``layers.image_pyramid``).  Returns one feature map per level,
        (B, h_i, w_i, config.feature_channels(i)), in the images' dtype."""
        levels = len(pyramid)
        subs = []
        for i, image in enumerate(pyramid):
            x = image
            s = []
            for j in range(min(levels - i, self.config.sub_levels)):
                if j > 0:
                    x = avg_pool2(x)
                x = self.convs[2 * j + 1](self.convs[2 * j](x))
                s.append(x)
            subs.append(s)
        feats = []
        for i in range(levels):
            parts = [subs[i - j][j] for j in range(self.config.sub_levels)
                     if i - j >= 0 and j < len(subs[i - j])]
            feats.append(parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1))
        return feats
