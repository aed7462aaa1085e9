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
             neighbouring pixels, ``noise_sigma``), same units, at least
             ``SIGMA_FLOOR`` (1 % of the normalised range: constant or noise-free
             pairs); maps are at least ``CONFIDENCE_MIN`` (1e-6)
    c(x)   = exp(-S(x) / sigma)     in (0, 1]

c = 1 where the passes agree exactly, 0.37 where they spread by the inputs'
noise level.  Models without the four passes (published layout) use kind
'warped': the two inputs warped to t with the network's flows (``x0_warped``,
``x1_warped``) differ only by noise where the flows are right:

    d(x)   = | luma(x0_warped) - luma(x1_warped) |, D(x) its Gaussian mean
    n      = 2 sigma / sqrt(pi): the mean |difference| of noise alone
    c(x)   = exp(-max(0, D(x) / n - 1))    in (0, 1]

Both kinds are multiplied by a structure factor computed from the synthetic
image y itself (normalised units), because the passes share their errors where
the network smooths or mislocates structure, and the spread cannot see that.
It is the size of the two leading error terms of an interpolation:

    first order, a flow error of delta px:  delta |grad y|  (Taylor expansion of
        the warp; the brightness-constancy linearisation of Horn & Schunck 1981)
    second order, smoothing of variance w^2:  (w^2 / 2) |lap y|  (the heat
        equation: a Gaussian blur changes y by (w^2/2) lap y to first order in w^2)
    G(x)   = Gaussian mean (``SMOOTH_SIGMA``) of |grad y| (derivative of Gaussian,
             ``GRADIENT_SIGMA`` px), L(x) the same of |lap y| (``LAPLACE_SIGMA`` px)
    T(x)   = hypot(``FLOW_ERROR_PX`` G, ``BLUR_PX2`` L)
    c_s(x) = exp(-T(x) / sigma)

so for aligned models c = exp(-(S + T) / sigma) and for published ones
c = exp(-max(0, D / n - 1)) exp(-T / sigma).  The constants (2 px of flow error,
w^2 / 2 = 16 px^2) were chosen on simulated restore (docs/benchmarks.md): with
them the per-pixel ranking of the real error goes from rho = -0.11 (spread
alone) to -0.30 for the shipped starter model; c_s is 1 on flat ice and
lowest on the edges of dense structures.

Both kinds are finally multiplied by the signal fraction of the input pair, the
Wiener gain at the pair's overall signal-to-noise ratio (Wiener 1949):
    W(u)   = s^2 / (s^2 + n^2) = max(0, 1 - n^2 / var(u)) of one input u, with
             n = ``noise_sigma(u)`` (no floor) and s^2 = var(u) - n^2 its signal
             variance; W = 1 for a flat input (var <= ``SIGMA_FLOOR``^2: nothing
             to get wrong)
    W      = (W(a) + W(b)) / 2,   c = W exp(-(...))
a constant per tilt, so the per-pixel ranking is unchanged.  The maps above
measure disagreement against the inputs' noise, which makes a noisy pair look
reliable; W makes low signal, one of the issue's reasons to distrust a tilt,
lower it: on dose-symmetric simulated series at 1.5 e/A^2 (the late, faded
high tilts have least signal) the per-tilt confidence then ranks the error
relative to the tilt's contrast at rho -0.93..-0.98 instead of +0.99
(docs/benchmarks.md).  A pure-noise pair gets ``CONFIDENCE_MIN``: whatever FILM
makes of it is invented.
Recursive midpoints (a midpoint-only model asked for 3 or 7 tilts per gap)
multiply a frame's map by the smaller map of the two frames it was made from
(real tilts: 1).  The per-tilt ``confidence`` recorded in OUT.json is the mean
of the map.  Real tilts have confidence 1.0 everywhere.
"""
from __future__ import annotations

import numpy as np

#: Gaussian smoothing (pixels) of the disagreement before it is compared with the noise.
SMOOTH_SIGMA = 3.0
#: Smallest noise level (normalised units: the pair spans ~0..1) a map is measured
#: against: 1 % of the range (cryo-ET tilts have 10-20 %), so that noise-free or
#: denoised pairs do not get zero confidence on every edge.
SIGMA_FLOOR = 1e-2
#: Smallest confidence written: the documented range is (0, 1].
CONFIDENCE_MIN = 1e-6
#: Structure factor (module doc): flow error in pixels that multiplies |grad y| ...
FLOW_ERROR_PX = 2.0
#: ... and w^2 / 2 (px^2) of the network's smoothing that multiplies |laplacian y|.
BLUR_PX2 = 16.0
#: Scales (px) of the derivative-of-Gaussian gradient and Laplacian of y.
GRADIENT_SIGMA = 2.0
LAPLACE_SIGMA = 3.0


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


def signal_fraction(img: np.ndarray) -> float:
    """Fraction of the variance of a (y, x) image that is signal, the Wiener gain
    s^2 / (s^2 + n^2) = max(0, 1 - n^2 / var) with n = :func:`noise_sigma`
    (Wiener 1949; module doc); 1.0 for a flat image (variance at most
    ``SIGMA_FLOOR`` squared).  Returns a float in [0, 1]."""
    img = np.asarray(img, np.float32)
    var = float(np.var(img, dtype=np.float64))
    if var <= SIGMA_FLOOR ** 2:
        return 1.0
    return float(max(0.0, 1.0 - noise_sigma(img) ** 2 / var))


def structure_error(image: np.ndarray) -> np.ndarray:
    """Expected interpolation error T (y, x) float32 of a synthetic image from its
    own structure (module doc): hypot(FLOW_ERROR_PX G, BLUR_PX2 L), G and L the
    Gaussian means (SMOOTH_SIGMA px) of the derivative-of-Gaussian gradient
    magnitude (GRADIENT_SIGMA px) and |Laplacian of Gaussian| (LAPLACE_SIGMA px)
    of ``image`` (y, x), in the units of ``image``.  0 on a flat image; a ramp
    of slope s (units per px) gives FLOW_ERROR_PX * s away from the borders."""
    from scipy.ndimage import gaussian_filter, gaussian_gradient_magnitude, gaussian_laplace
    y = np.asarray(image, np.float32)
    y = y - np.float32(y.mean())     # the truncated Laplacian kernel does not sum to exactly 0
    g = gaussian_filter(gaussian_gradient_magnitude(y, GRADIENT_SIGMA, mode="reflect"), SMOOTH_SIGMA,
                        mode="reflect")
    lap = gaussian_filter(np.abs(gaussian_laplace(y, LAPLACE_SIGMA, mode="reflect")), SMOOTH_SIGMA,
                          mode="reflect")
    return np.hypot(np.float32(FLOW_ERROR_PX) * g, np.float32(BLUR_PX2) * lap).astype(np.float32)


def confidence_map(uncertainty: np.ndarray, a: np.ndarray, b: np.ndarray, kind: str = "spread",
                   image: np.ndarray = None) -> np.ndarray:
    """Confidence (y, x) float32 in (0, 1] of a synthetic image.

    uncertainty: (y, x) in the units of the normalised inputs ``a`` and ``b``
        (y, x) (those given to the network): for ``kind='spread'`` the per-pixel
        std of the four symmetric passes, for ``kind='warped'``
        |x0_warped - x1_warped|.
    image: the synthetic image (y, x) in the same units; when given, the map is
        multiplied by the structure factor exp(-T / sigma), T =
        :func:`structure_error` (what FilmInterpolator writes); None leaves it out.
    Returns W exp(-(S + T) / sigma) ('spread') or W exp(-max(0, D / n - 1) - T / sigma)
    ('warped'), T = 0 without ``image``, W the mean :func:`signal_fraction` of
    ``a`` and ``b``, at least ``CONFIDENCE_MIN``; see the module doc.

    Raises:
        ValueError: for a kind other than 'spread' or 'warped', or an ``image``
            whose shape differs from ``uncertainty``.
    """
    from scipy.ndimage import gaussian_filter
    if kind not in ("spread", "warped"):
        raise ValueError(f"confidence kind {kind!r}: use 'spread' or 'warped'")
    uncertainty = np.asarray(uncertainty, np.float32)
    # Floor (SIGMA_FLOOR): a (nearly) constant or noise-free pair, whose noise
    # estimate is ~0, must not turn float rounding or any edge into zero confidence.
    sigma = np.float32(max(0.5 * (noise_sigma(a) + noise_sigma(b)), SIGMA_FLOOR))
    t = 0.0
    if image is not None:
        if np.shape(image) != uncertainty.shape:
            raise ValueError(f"image {np.shape(image)} and uncertainty {uncertainty.shape} differ in shape")
        t = structure_error(image) / sigma
    d = gaussian_filter(uncertainty, SMOOTH_SIGMA, mode="reflect")
    if kind == "spread":
        c = np.exp(-(d / sigma + t))
    else:
        expected = 2.0 * sigma / np.sqrt(np.pi)
        r = d / np.float32(expected)
        c = np.exp(-(np.maximum(r - 1.0, 0.0) + t))
    c *= np.float32(0.5 * (signal_fraction(a) + signal_fraction(b)))
    return np.maximum(c, np.float32(CONFIDENCE_MIN)).astype(np.float32)


def summary(conf: np.ndarray) -> float:
    """Per-tilt confidence: the mean of the map (0..1)."""
    return float(np.mean(conf, dtype=np.float64))
