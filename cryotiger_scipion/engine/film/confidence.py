"""Confidence maps of synthetic tilts (issue 13), from the network itself.

Aligned models (FilmConfig.average_symmetries, e.g. the shipped starter and
models trained by ``cryotiger train``) make every image as the mean of four
passes: (x0, x1), (x1, x0), and both rotated by 180 degrees.  Where the
output is interpolated the four passes agree; where it is invented (large
motion, occlusion, content in one input only, wrong flows) they disagree.  Their
per-pixel spread ranks the real error best of the candidates measured
(docs/benchmarks.md, "Time-aware FILM and confidence maps").

Definition (documented in docs/film.md, "Confidence maps"), kind 'spread':

    s(x)   = std over the 4 passes of luma(pass(x))     (normalised units)
    S(x)   = Gaussian mean of s over sigma = ``SMOOTH_SIGMA`` px
    sigma  = the noise std of the input pair (robust, from differences of
             neighbouring pixels, ``noise_sigma``), same units
    c(x)   = exp(-S(x) / sigma)     in (0, 1]

c = 1 where the passes agree exactly, 0.37 where they spread by the inputs'
noise level.  Models without the four passes (published layout) use kind
'warped': the two inputs warped to t with the network's flows (``x0_warped``,
``x1_warped``) differ only by noise where the flows are right:

    d(x)   = | luma(x0_warped) - luma(x1_warped) |, D(x) its Gaussian mean
    n      = 2 sigma / sqrt(pi): the mean |difference| of noise alone
    c(x)   = exp(-max(0, D(x) / n - 1))    in (0, 1]

Recursive midpoints (a midpoint-only model asked for 3 or 7 tilts per gap)
multiply a frame's map by the smaller map of the two frames it was made from
(real tilts: 1).  The per-tilt ``confidence`` recorded in OUT.json is the mean
of the map.  Real tilts have confidence 1.0 everywhere.
"""
from __future__ import annotations

import numpy as np

#: Gaussian smoothing (pixels) of the disagreement before it is compared with the noise.
SMOOTH_SIGMA = 3.0


def noise_sigma(img: np.ndarray) -> float:
    """Robust noise standard deviation of a (y, x) image: 1.4826 MAD of the
    differences of horizontally neighbouring pixels, / sqrt(2) (white noise).
    Returns a float > 0 (tiny floor for constant images)."""
    img = np.asarray(img, np.float32)
    step = max(1, int(np.sqrt(img.size / 1_000_000)))
    diff = (img[::step, 1:] - img[::step, :-1]).ravel()
    if diff.size == 0:
        return 1e-6
    mad = float(np.median(np.abs(diff - np.median(diff))))
    return max(1.4826 * mad / np.sqrt(2.0), 1e-6)


def confidence_map(uncertainty: np.ndarray, a: np.ndarray, b: np.ndarray, kind: str = "spread") -> np.ndarray:
    """Confidence (y, x) float32 in (0, 1] of a synthetic image.

    uncertainty: (y, x) in the units of the normalised inputs ``a`` and ``b``
        (y, x) (those given to the network): for ``kind='spread'`` the per-pixel
        std of the four symmetric passes, for ``kind='warped'``
        |x0_warped - x1_warped|.
    Returns exp(-S / sigma) ('spread') or exp(-max(0, D / n - 1)) ('warped'),
    see the module doc.  Raises ValueError for another kind.
    """
    from scipy.ndimage import gaussian_filter
    if kind not in ("spread", "warped"):
        raise ValueError(f"confidence kind {kind!r}: use 'spread' or 'warped'")
    sigma = 0.5 * (noise_sigma(a) + noise_sigma(b))
    d = gaussian_filter(np.asarray(uncertainty, np.float32), SMOOTH_SIGMA, mode="reflect")
    if kind == "spread":
        return np.exp(-d / np.float32(sigma)).astype(np.float32)
    expected = 2.0 * sigma / np.sqrt(np.pi)
    r = d / np.float32(expected)
    return np.exp(-np.maximum(r - 1.0, 0.0)).astype(np.float32)


def summary(conf: np.ndarray) -> float:
    """Per-tilt confidence: the mean of the map (0..1)."""
    return float(np.mean(conf, dtype=np.float64))
