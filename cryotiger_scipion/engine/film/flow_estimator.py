"""Pyramid flow estimator: coarse-to-fine residual flow from two feature pyramids.

Estimator E_i: concat(feat_a, warp(feat_b, v)) -> N 3x3 leaky convs of F
filters -> 1x1 leaky conv of F/2 -> 1x1 linear conv of 2 (variables
``predict_flow/flow_predictor_{i}/conv_k`` for the ``specialized_levels`` finest
levels, ``predict_flow/flow_predictor_shared/conv_k`` for the coarser ones).
v_top = E(a_top, b_top); then per finer level v = resize(2 v) (bilinear,
half-pixel centres) + E_i(a_i, warp(b_i, v)).  Flows are float32 pixels,
channel 0 = dx, and warp b onto a.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .config import FilmConfig
from .layers import Conv2D
from .warp import warp


class FlowPredictor(tf.Module):
    """One flow estimator E_i: residual flow at one pyramid level (see module doc).

    ``path``: variable prefix ('predict_flow/flow_predictor_0', ...); ``cin``:
    channels of concat(feat_a, feat_b_warped) (2 x feature channels);
    ``num_convs`` 3x3 leaky convs of ``filters``, then a 1x1 leaky conv of
    ``filters // 2`` and a 1x1 linear conv of 2.  Called with two (B, h, w, C)
    features -> (B, h, w, 2) float32 flow in pixels (channel 0 = dx).
    """

    def __init__(self, path: str, cin: int, num_convs: int, filters: int, rng: np.random.Generator):
        super().__init__(name=None)
        self.convs = []
        c = cin
        for k in range(num_convs):
            self.convs.append(Conv2D(f"{path}/conv_{k}", 3, c, filters, True, rng))
            c = filters
        self.convs.append(Conv2D(f"{path}/conv_{num_convs}", 1, c, filters // 2, True, rng))
        self.convs.append(Conv2D(f"{path}/conv_{num_convs + 1}", 1, filters // 2, 2, False, rng))

    def __call__(self, feat_a: tf.Tensor, feat_b_warped: tf.Tensor) -> tf.Tensor:
        x = tf.concat([feat_a, feat_b_warped], axis=-1)
        for conv in self.convs:
            x = conv(x)
        return tf.cast(x, tf.float32)


class PyramidFlowEstimator(tf.Module):
    """FILM's coarse-to-fine pyramid flow estimator (Reda et al., ECCV 2022),
    variable prefix ``predict_flow``.

    One ``FlowPredictor`` for each of the ``config.specialized_levels`` finest
    levels and one shared by the coarser levels, weights drawn from ``rng``.
    """

    def __init__(self, config: FilmConfig, rng: np.random.Generator):
        super().__init__(name="predict_flow")
        self.config = config
        s = config.specialized_levels
        self.predictors = [FlowPredictor(f"predict_flow/flow_predictor_{i}", 2 * config.feature_channels(i),
                                         config.flow_convs[i], config.flow_filters[i], rng)
                           for i in range(s)]
        self.shared = FlowPredictor("predict_flow/flow_predictor_shared", 2 * config.feature_channels(s),
                                    config.flow_convs[s], config.flow_filters[s], rng)

    def predictor(self, level: int) -> FlowPredictor:
        """The estimator of pyramid ``level`` (0 = finest): its own below
        ``specialized_levels``, the shared one above."""
        return self.predictors[level] if level < len(self.predictors) else self.shared

    def __call__(self, feats_a: list, feats_b: list):
        """Flow that warps image b onto image a, at every level.

        ``feats_a``, ``feats_b``: feature pyramids from ``FeatureExtractor``,
        finest first, level i (B, h_i, w_i, C_i).
        Returns (flows, residuals): lists finest first, each (B, h_i, w_i, 2)
        float32 in pixels of level i (channel 0 = dx); flows[i] is the
        accumulated flow, residuals[i] what E_i added at that level."""
        top = len(feats_a) - 1
        v = self.predictor(top)(feats_a[top], feats_b[top])
        flows = [v]
        residuals = [v]
        for i in range(top - 1, -1, -1):
            size = tf.shape(feats_a[i])[1:3]
            v = tf.image.resize(2.0 * v, size, method="bilinear")
            r = self.predictor(i)(feats_a[i], warp(feats_b[i], v))
            v = v + r
            flows.append(v)
            residuals.append(r)
        return flows[::-1], residuals[::-1]
