"""Confidence maps of synthetic tilts (issue 13), from the network's own warps.

FILM warps both inputs to the time t of the output with the flows it estimated
(``x0_warped``, ``x1_warped``) before fusing them.  Where the flows are right
and the content is visible in both inputs, the two warped images differ only
by their noise; where motion is large, content is occluded or appears in one
input only, or the flows are wrong, they disagree beyond the noise and the
fused pixel is invented rather than interpolated.

Definition (documented in docs/film.md, "Confidence maps"):

    d(x)   = | luma(x0_warped) - luma(x1_warped) |       (normalised units)
    D(x)   = Gaussian mean of d over sigma = ``SMOOTH_SIGMA`` px
    n      = 2 sigma_noise / sqrt(pi): the mean |difference| of two images that
             differ only by independent Gaussian noise of std sigma_noise, with
             sigma_noise the noise of the input pair (robust, from differences
             of neighbouring pixels)
    r(x)   = D(x) / n            (1: the inputs agree within their noise)
    c(x)   = exp(-max(0, r(x) - 1))    in (0, 1]

c = 1 where the warped inputs agree within the noise, 0.37 where they
disagree by twice the noise level, 0.14 at three times.  Recursive midpoints
(a midpoint-only model asked for 3 or 7 tilts per gap) multiply a frame's map
by the smaller map of the two frames it was made from (real tilts: 1).  The
per-tilt ``confidence`` recorded in OUT.json is the mean of the map.
Real tilts have confidence 1.0 everywhere.
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


def confidence_map(disagreement: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Confidence (y, x) float32 in (0, 1] of a synthetic image.

    disagreement: (y, x) |x0_warped - x1_warped| in the units of the
        normalised inputs ``a`` and ``b`` (y, x) (those given to the network).
    Returns exp(-max(0, D / n - 1)) (see the module doc for D and n).
    """
    from scipy.ndimage import gaussian_filter
    sigma = 0.5 * (noise_sigma(a) + noise_sigma(b))
    expected = 2.0 * sigma / np.sqrt(np.pi)
    d = gaussian_filter(np.asarray(disagreement, np.float32), SMOOTH_SIGMA, mode="reflect")
    r = d / np.float32(expected)
    return np.exp(-np.maximum(r - 1.0, 0.0)).astype(np.float32)


def summary(conf: np.ndarray) -> float:
    """Per-tilt confidence: the mean of the map (0..1)."""
    return float(np.mean(conf, dtype=np.float64))
