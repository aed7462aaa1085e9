"""The FILM network wired from its parts: pyramid -> features -> flows -> warp -> fusion.

``FilmNet(config, seed)`` builds the variables (named as in the published
models, see ``FilmNet.named_variables``); ``net(x0, x1)`` maps two (B, H, W, 3)
images in [0, 1] (H, W multiples of 2**(pyramid_levels-1); callers pad to 64)
to the mid-frame (B, H, W, 3).  Time is 0.5, as in the published models, unless
the configuration is time-conditioned (``FilmConfig.time_conditioning``, issue
13): then ``net(x0, x1, time=t)`` makes the frame at fraction t (B,) of the gap.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from .config import FilmConfig
from .feature_extractor import FeatureExtractor
from .flow_estimator import PyramidFlowEstimator
from .fusion import Fusion
from .layers import image_pyramid
from .warp import warp


class FilmNet(tf.Module):
    """The FILM network (Reda et al., "FILM: Frame Interpolation for Large
    Motion", ECCV 2022) as a ``tf.Module`` (no Keras), variable prefixes
    ``feat_net``, ``predict_flow``, ``fusion`` as in the published models.

    ``config``: the options (default ``FilmConfig.published()``), validated;
    ``seed``: seed of the numpy generator that draws the initial weights.

    Raises:
        InputError: from ``FilmConfig.validate`` for an invalid ``config``.
    """

    def __init__(self, config: Optional[FilmConfig] = None, seed: int = 0):
        super().__init__(name="film_net")
        self.config = (config or FilmConfig.published()).validate()
        rng = np.random.default_rng(seed)
        self.feature_extractor = FeatureExtractor(self.config, rng)
        self.flow_estimator = PyramidFlowEstimator(self.config, rng)
        self.fusion = Fusion(self.config, rng)

    # -- variables -----------------------------------------------------------------
    def named_variables(self) -> Dict[str, tf.Variable]:
        """{'feat_net/sub_extractor/cfeat_conv_0/kernel': var, ...}: every variable by
        its name without the ':0' suffix (the published models' names)."""
        return {v.name.split(":")[0]: v for v in self.variables}

    def count_params(self) -> int:
        """Number of weight values (34,436,667 for the published configuration)."""
        return int(sum(np.prod(v.shape) for v in self.variables))

    # -- forward -------------------------------------------------------------------
    def __call__(self, x0: tf.Tensor, x1: tf.Tensor, dtype=tf.float32, aux: bool = False,
                 time=None):
        """Mid-frame of ``x0`` and ``x1`` (B, H, W, 3) float; returns (B, H, W, 3) float32,
        or a dict with 'image' and the auxiliary outputs when ``aux``.

        ``dtype``: compute dtype of the convolutions (float32, float16, bfloat16);
        flows and sampling coordinates stay float32.  ``time``: (B,) or (B, 1)
        fractions in (0, 1) of the output between x0 and x1; used only by a
        time-conditioned configuration (others make t = 0.5 whatever is given).
        """
        if not self.config.average_symmetries:
            return self.forward_once(x0, x1, dtype, aux, time)
        # F(x0, x1) = mean over g in {1, R} and the pair order of g^-1 f(g x0, g x1),
        # R = rotation by 180 degrees: F commutes with R and is symmetric in its
        # inputs exactly, so no direction and no input is preferred (a shift s
        # that the weights learned becomes +-s: centred).  One call, batch 4B.
        n = tf.shape(x0)[0]
        rot = lambda t: tf.reverse(t, axis=[1, 2])  # noqa: E731
        a = tf.concat([x0, rot(x0), x1, rot(x1)], axis=0)
        b = tf.concat([x1, rot(x1), x0, rot(x0)], axis=0)
        t = self._time(time, n)              # swapping the inputs turns t into 1 - t
        out = self.forward_once(a, b, dtype, aux, tf.concat([t, t, 1.0 - t, 1.0 - t], axis=0))
        image = out["image"] if aux else out
        image = 0.25 * (image[:n] + rot(image[n:2 * n]) + image[2 * n:3 * n] + rot(image[3 * n:]))
        if not aux:
            return image
        # Auxiliary outputs: those of the plain pass (x0, x1), and the spread
        # (population std, per pixel and channel) of the four aligned passes
        # whose mean is the image: the self-ensemble's uncertainty (confidence maps).
        passes = tf.stack([out["image"][:n], rot(out["image"][n:2 * n]), out["image"][2 * n:3 * n],
                           rot(out["image"][3 * n:])], axis=0)
        aux_out = {k: image if k == "image" else ([t[:n] for t in v] if isinstance(v, list) else v[:n])
                   for k, v in out.items()}
        aux_out["image_spread"] = tf.math.reduce_std(passes, axis=0)
        return aux_out

    def _time(self, time, n) -> tf.Tensor:
        """(n,) float32 fractions: ``time`` for a time-conditioned network, else 0.5."""
        if time is None or not self.config.time_conditioning:
            return tf.fill([n], 0.5)
        return tf.reshape(tf.cast(time, tf.float32), [-1])

    def forward_once(self, x0: tf.Tensor, x1: tf.Tensor, dtype=tf.float32, aux: bool = False,
                     time=None):
        """One pass of the network (what ``__call__`` averages over symmetries
        when ``config.average_symmetries``); the trainer's loss uses this, so
        training costs one pass per pair.

        Arguments as for ``__call__``: ``x0``, ``x1`` (B, H, W, 3) in [0, 1],
        H and W multiples of 2**(pyramid_levels-1); ``dtype`` the compute dtype;
        ``time`` (B,) or (B, 1) fractions, used only when time-conditioned.
        Returns the (B, H, W, 3) float32 image, or with ``aux`` a dict:
        'image', 'x0_warped' and 'x1_warped' (B, H, W, 3) (the inputs warped
        to t at full resolution), 'forward_flow_pyramid' / 'backward_flow_pyramid'
        (fusion levels, finest first, (B, h_i, w_i, 2) float32 pixels: F(0->1)
        and F(1->0), not yet scaled by t), the residual flow pyramids
        (all levels) and 'time' (B, 1)."""
        cfg = self.config
        n = tf.shape(x0)[0]
        t = tf.reshape(self._time(time, n), [-1, 1, 1, 1])
        both = tf.cast(tf.concat([x0, x1], axis=0), dtype)
        pyr = image_pyramid(both, cfg.pyramid_levels)
        feats = self.feature_extractor(pyr)
        # One pass for both directions: (a, b) = (f0, f1) then (f1, f0) along the batch.
        swapped = [tf.concat([f[n:], f[:n]], axis=0) for f in feats]
        flows, residuals = self.flow_estimator(feats, swapped)
        levels = cfg.fusion_pyramid_levels
        fusion_in = []
        for i in range(levels):
            f01, f10 = flows[i][:n], flows[i][n:]   # rows :n = F(0->1), rows n: = F(1->0)
            if cfg.symmetric_flow:          # a bias common to both directions cancels
                d = 0.5 * (f01 - f10)
                fw, bw = (1.0 - t) * d, -t * d
            else:                           # published: t = 0.5, fw = 0.5 F(0->1), bw = 0.5 F(1->0)
                fw, bw = (1.0 - t) * f01, t * f10
            both_i = tf.concat([pyr[i], feats[i]], axis=-1)
            w0 = warp(both_i[:n], bw)       # image 0 warped to time t
            w1 = warp(both_i[n:], fw)       # image 1 warped to time t
            parts = [w0, w1, tf.cast(bw, dtype), tf.cast(fw, dtype)]
            if cfg.time_conditioning:
                parts.append(tf.cast(t * tf.ones_like(fw[..., :1]), dtype))
            fusion_in.append(tf.concat(parts, axis=-1))
        image = tf.cast(self.fusion(fusion_in), tf.float32)
        if not aux:
            return image
        return {
            "image": image,
            "x0_warped": tf.cast(fusion_in[0][..., :3], tf.float32),
            "x1_warped": tf.cast(fusion_in[0][..., 3 + cfg.feature_channels(0):6 + cfg.feature_channels(0)],
                                 tf.float32),
            "forward_flow_pyramid": [f[:n] for f in flows[:levels]],
            "backward_flow_pyramid": [f[n:] for f in flows[:levels]],
            "forward_residual_flow_pyramid": [r[:n] for r in residuals],
            "backward_residual_flow_pyramid": [r[n:] for r in residuals],
            "time": tf.reshape(t, [-1, 1]),
        }


def build_film(config: Optional[FilmConfig] = None, seed: int = 0) -> FilmNet:
    """A FILM network with freshly initialised weights (Glorot uniform, zero bias).

    ``config``: default ``FilmConfig.published()``; ``seed``: weight seed.

    Raises:
        InputError: for an invalid ``config`` (``FilmConfig.validate``).
    """
    return FilmNet(config, seed=seed)
