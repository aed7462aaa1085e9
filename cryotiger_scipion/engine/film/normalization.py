"""Intensity normalisation of FILM's inputs: ONE definition for training and inference.

FILM works on images in about [0, 1].  A pair of grey tilts (a, b) in their
original units (counts, electrons, any float) is mapped by

    lo, hi = percentiles 0.5 and 99.5 of the pixels of a and b together
    u      = clip((x - lo) / (hi - lo), -CLIP_MARGIN, 1 + CLIP_MARGIN)

and the network's output is mapped back by ``u * (hi - lo) + lo``.  The range
comes from percentiles, so a few outliers (hot pixels at 65535, dead pixels at
0, gold fiducials) do not stretch it; the clipping keeps those outliers from
reaching the network with values hundreds of times outside the range (a
convolutional network spreads them over its whole receptive field: a hot
pixel at 65535 in counts around 1000 made FILM's synthetic tilt go to -3005,
issue 10 C22).  The margin (a quarter of the range on both sides, i.e. about
+-3.9 SD for Gaussian noise) leaves ordinary pixels untouched.

Outlier values are NOT put back into the synthetic tilt: a synthetic tilt is
a view that was never exposed; a hot or dead pixel of the detector is not
specimen signal, and after alignment the outliers of the two inputs sit at
different places.  Where an input was clipped the synthetic tilt holds a value
within the clipped range.

Training (``engine.train.data``) stores raw patches with the (lo, hi) of the
triplet's two input IMAGES (:func:`pair_range` on the whole images) and maps
them with :func:`to_unit` (``xp=tf.math`` in the tf.data pipeline); inference
(``FilmInterpolator``, normalization='robust') calls :func:`normalize_pair`.
The target (middle) frame uses the inputs' (lo, hi) and the same clipping.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

#: Percentiles (%) of the pair's pixels that map to 0 and 1.
ROBUST_PERCENTILES = (0.5, 99.5)
#: Values are clipped to [-CLIP_MARGIN, 1 + CLIP_MARGIN] after the mapping.
CLIP_MARGIN = 0.25
#: Percentiles are taken on a regular subsample of about this many pixels per image.
SAMPLE_PIXELS = 1_000_000


def pair_range(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """(lo, hi): the 0.5th and 99.5th percentiles of two (y, x) images together
    (a regular subsample of ~1e6 pixels each for large images); the min/max if
    they coincide, (lo, lo + 1) for a constant pair.  Units of the images."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    step = max(1, int(np.sqrt(a.size / SAMPLE_PIXELS)))
    sample = np.concatenate([a[::step, ::step].ravel(), b[::step, ::step].ravel()])
    lo, hi = np.percentile(sample, ROBUST_PERCENTILES)
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_unit(x, lo, hi, xp=np):
    """Map ``x`` (array or tensor, original units) to the network's range:
    clip((x - lo) / (hi - lo), -CLIP_MARGIN, 1 + CLIP_MARGIN).  ``xp``: np for
    numpy arrays, tf.math for tensors (the training pipeline)."""
    u = (x - lo) / (hi - lo)
    return xp.minimum(xp.maximum(u, -CLIP_MARGIN), 1.0 + CLIP_MARGIN)


def from_unit(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of the linear part of :func:`to_unit`: u * (hi - lo) + lo, float32."""
    out = np.asarray(u, np.float32) * np.float32(hi - lo)
    out += np.float32(lo)
    return out


def normalize_pair(a: np.ndarray, b: np.ndarray):
    """(ua, ub, lo, hi): the pair mapped by :func:`to_unit` with its own
    :func:`pair_range`, float32 (y, x) each."""
    lo, hi = pair_range(a, b)
    ua = to_unit(np.asarray(a, np.float32), np.float32(lo), np.float32(hi)).astype(np.float32)
    ub = to_unit(np.asarray(b, np.float32), np.float32(lo), np.float32(hi)).astype(np.float32)
    return ua, ub, lo, hi
