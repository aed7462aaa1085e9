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

Fill values (zero-filled borders of transformed/aligned stacks, dead rows or
columns) are NOT part of the range: pixels of an image that equal that
image's minimum or maximum AND lie on a straight constant run of at least
FILL_RUN pixels (along a row or a column of the subsample) are left out of the
percentile computation (:func:`fill_mask`).  Percentiles alone fail there: a
6-pixel zero border or one zero row is more than 0.5 % of the pixels, the 0.5th
percentile became 0 for counts around 1000, the texture was squeezed into a
few percent of the network's input range and FILM's synthetic pixels far from
the border were off by a median of 230 counts (7.7 SD; issue 10 item 4).  The
fill pixels themselves are then clipped like any outlier.  Real signal rarely
forms such runs at the image's extreme value; where it does (very low counts,
many exact zeros) leaving some of those zeros out barely moves the 0.5th
percentile.  If fill pixels were more than 90 % of the sample they are kept
(the image has nothing else).

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
#: A constant straight run (row or column of the subsample) at the image's
#: min or max at least this long is fill, not signal (see :func:`fill_mask`).
FILL_RUN = 16
#: Fill pixels are kept in the range if excluding them would leave less than
#: this fraction of a sample.
MIN_SIGNAL_FRACTION = 0.1


def _runs_at_least(m: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels of the boolean (y, x) mask ``m`` that belong to a run of at least
    ``length`` consecutive True along ``axis``."""
    n = m.shape[axis]
    if n < length:
        return np.zeros_like(m)
    mi = np.moveaxis(m, axis, -1).astype(np.int32)
    cs = np.concatenate([np.zeros(mi.shape[:-1] + (1,), np.int32), np.cumsum(mi, axis=-1)], axis=-1)
    full = (cs[..., length:] - cs[..., :-length]) == length          # window [i, i+length) all True
    # pixel j is covered when some full window starts in [j - length + 1, j]
    cw = np.concatenate([np.zeros(full.shape[:-1] + (1,), np.int32), np.cumsum(full, axis=-1)], axis=-1)
    j = np.arange(n)
    covered = cw[..., np.minimum(j, full.shape[-1] - 1) + 1] - cw[..., np.maximum(j - length + 1, 0)] > 0
    return np.moveaxis(covered, -1, axis)


def fill_mask(x: np.ndarray, run: int = FILL_RUN) -> np.ndarray:
    """Boolean (y, x) mask of the fill pixels of a (y, x) image: pixels equal to
    the image's minimum or maximum that lie on a straight constant run of at
    least ``run`` pixels along a row or a column (zero-filled borders after a
    transform, dead rows/columns, saturated bands).  Isolated hot/dead pixels
    are not fill (the percentiles already ignore them)."""
    x = np.asarray(x)
    out = np.zeros(x.shape, bool)
    if x.size == 0:
        return out
    for v in {float(x.min()), float(x.max())}:
        m = x == v
        if int(m.sum()) < run:
            continue
        out |= _runs_at_least(m, run, 0) | _runs_at_least(m, run, 1)
    return out


def _signal_sample(x: np.ndarray, step: int) -> np.ndarray:
    """The subsample x[::step, ::step] without its fill pixels (:func:`fill_mask`),
    or all of it if fill is more than 1 - MIN_SIGNAL_FRACTION of it; 1-D float32."""
    s = x[::step, ::step]
    fill = fill_mask(s)
    keep = ~fill
    if keep.sum() < MIN_SIGNAL_FRACTION * s.size:
        return s.ravel()
    return s[keep]


def pair_range(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """(lo, hi): the 0.5th and 99.5th percentiles of two (y, x) images together
    (a regular subsample of ~1e6 pixels each for large images), fill pixels
    (:func:`fill_mask`: zero borders, dead rows) left out; the min/max if they
    coincide, (lo, lo + 1) for a constant pair.  Units of the images."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    step = max(1, int(np.sqrt(a.size / SAMPLE_PIXELS)))
    sample = np.concatenate([_signal_sample(a, step), _signal_sample(b, step)])
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
