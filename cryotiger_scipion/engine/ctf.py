"""Built-in CPU CTF estimation for tilt series (no GPU, no external program).

Per tilt image:

1. **Spectrum**: the image is cut into overlapping square tiles (Hann
   window, 50 % overlap by default); their periodograms (``|rfft2|^2``) are
   averaged (Welch's method).  With the defocus-gradient option the tiles are
   grouped by their height above the tilt axis (their column x, the tilt axis
   runs along y through the image centre) into strips, one spectrum each.
2. **Background**: the logarithm of the rotational average is fitted by a
   low-order polynomial in spatial frequency over a band a little wider than
   the fitting band; the spectrum is divided by it (whitened).  Inside the
   fitting band a quadratic polynomial in frequency is then projected out of
   both data and model (a smooth radial background and envelope left over by
   the whitening do not bias the fit).
3. **Fit** of the CTF model ``sin^2(chi)`` (``ctf_model.ctf_phase``; voltage,
   Cs, amplitude contrast and pixel size given) by maximising the
   normalised cross-correlation with the background-free spectrum in the
   resolution band ``res_min`` .. ``res_max`` (Angstrom):
   a coarse 1D search over defocus on the rotational average, then a 2D
   refinement of defocus U, V and astigmatism angle (grid of starts, then
   ``scipy.optimize.minimize`` Nelder-Mead on (mean defocus,
   astigmatism x cos 2a, astigmatism x sin 2a)).
   Astigmatism is kept only when the data support it (otherwise a fit on
   noise drifts to the ``astig_max`` bound): per image, when the gain in
   band correlation over the astigmatism-free fit, ``n_band (r_astig^2 -
   r_0^2)``, reaches :data:`ASTIG_MIN_GAIN`; for a series (mode "series"),
   when the per-tilt astigmatism vectors (a cos 2t, a sin 2t) agree:
   Hotelling's T^2 test of their mean against zero at level
   :data:`ASTIG_SERIES_ALPHA` (random directions are noise), and the series'
   astigmatism raises the summed gain over the tilts to ASTIG_MIN_GAIN.  The
   2D fit also projects out a background varying smoothly with direction
   (cos/sin 2a, 4a), so an oriented specimen is not fitted as astigmatism.
4. **Bounds**: a fit that ends on a search bound (|U - V| at ``astig_max``,
   defocus at ``defocus_min`` or ``defocus_max``) is listed in ``on_bound``
   of its CTF.json entry (and counted in the command's summary): the true
   value may lie beyond it.
5. **Quality**: ``fit_score`` is the correlation in the band (-1..1);
   ``resolution`` (Angstrom) is the finest frequency up to which each Thon
   ring (one period of ``sin^2 chi``) still correlates with the model.

Defocus gradient (``defocus_gradient=True``): the defocus of a tile at
``x`` Angstrom from the tilt axis is ``defocus + sign * x * tan(angle)``;
the strips are fitted together with one common defocus (the defocus at the
tilt axis, i.e. at the image centre), and ``sign`` (+1: defocus grows
with x at positive tilt angles, the convention of ``engine.simulate``) is
chosen by the better fit unless given.

Conventions: images (y, x); defocus in Angstrom, underfocus positive,
``defocus_u >= defocus_v``; ``astig_angle`` in degrees, the direction of
``defocus_u`` measured from the x axis, in [0, 180); resolutions in
Angstrom; tilt angles in degrees; pixel size in Angstrom.

Sources: the approach (averaged tile periodograms, background removal,
correlation of the spectrum with the CTF model, 1D search then 2D
refinement) follows CTFFIND (Mindell & Grigorieff, J. Struct. Biol. 142,
2003; Rohou & Grigorieff, J. Struct. Biol. 192, 2015, CTFFIND4); the
periodogram averaging is Welch's method (Welch, IEEE Trans. Audio
Electroacoust. 15, 1967); the CTF formula is in ``ctf_model``; the series
astigmatism test is Hotelling's one-sample T^2 test (Hotelling, Ann. Math.
Stat. 2, 1931).  Not an implementation of either program: its scores and
resolutions are its own.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from . import InputError
from .ctf_model import electron_wavelength

# Astigmatism significance (see the module doc).  ASTIG_MIN_GAIN was set from
# measurements with the direction-dependent background projected out: on
# astigmatism-free tilts n_band (r_a^2 - r_0^2) reached at most 5.1 (21 tilts,
# C26-like, 64 px at 10.52 A/px) and 6.9 (7 tilts, 512 px at 2.5 A/px,
# tests/engine/test_ctf.py's phantom); with U - V = 1000 A on the latter it was
# 11..99 (7 tilts).  A single weak tilt may still lose its astigmatism; a
# series keeps it (Hotelling's test and the summed gain over all tilts).
ASTIG_MIN_GAIN = 10.0
ASTIG_SERIES_ALPHA = 0.01
BOUND_FRACTION = 0.99          # |U - V| >= this x astig_max counts as on the bound


# ----------------------------------------------------------------------------
# Parameters and results
# ----------------------------------------------------------------------------
@dataclass
class Microscope:
    """What is known about the acquisition (not fitted): pixel size (Angstrom),
    acceleration voltage (kV), spherical aberration Cs (mm), amplitude contrast
    (fraction)."""
    pixel_size: float                  # Angstrom
    voltage: float = 300.0             # kV
    cs: float = 2.7                    # mm
    amp_contrast: float = 0.07         # fraction (0..1)

    def check(self) -> None:
        """Check that the values are plausible.

        Raises:
            InputError: when the pixel size is not positive, the voltage is
                outside 10..3000 kV, Cs outside 0..20 mm, or the amplitude
                contrast outside [0, 1).
        """
        if not (self.pixel_size and self.pixel_size > 0):
            raise InputError(f"pixel size {self.pixel_size} A is not positive; give --pixel-size "
                             "(Angstrom per pixel) or set it in the stack header")
        if not 10 <= self.voltage <= 3000:
            raise InputError(f"voltage {self.voltage} kV is implausible; give the acceleration "
                             "voltage in kV (e.g. 300)")
        if not 0 <= self.cs <= 20:
            raise InputError(f"spherical aberration {self.cs} mm is implausible; give Cs in mm "
                             "(e.g. 2.7)")
        if not 0 <= self.amp_contrast < 1:
            raise InputError(f"amplitude contrast {self.amp_contrast} is outside [0, 1); give a "
                             "fraction (e.g. 0.07)")


@dataclass
class FitOptions:
    """How to fit.  Defocus values in Angstrom, resolutions in Angstrom (see each
    field's comment); checked by ``check``."""
    defocus_min: float = 5000.0        # search range (underfocus, A)
    defocus_max: float = 80000.0
    defocus_step: float = 500.0        # 1D search step (A)
    res_min: float = 50.0              # low-resolution end of the fitting band (A)
    res_max: Optional[float] = None    # high-resolution end (A); None: max(10, 2.5 px)
    tile_size: Optional[int] = None    # px; None: 512, or less for small images
    tile_overlap: float = 0.5          # fraction of the tile size
    astigmatism: bool = True           # fit defocus U != V (estimate_image)
    astigmatism_mode: str = "series"   # estimate_stack: "series" (one astigmatism for all
                                       # tilts, each tilt its own defocus), "tilt", "none"
    astig_max: float = 3000.0          # largest |U - V| considered (A)
    defocus_gradient: bool = False     # fit strips with defocus + sign x tan(angle)
    gradient_sign: int = 0             # +1 / -1, or 0: choose the better fit
    n_strips: Optional[int] = None     # strips for the gradient (None: tile columns, <= 9)
    series_window: float = 10000.0     # estimate_stack: refit tilts further than this (A) from
                                       # the series' median defocus inside it; 0: off

    def resolved_res_max(self, pixel_size: float) -> float:
        """The high-resolution end of the fitting band (Angstrom): ``res_max``, or
        max(10 A, 2.5 pixels) at ``pixel_size`` (Angstrom) when it is not set."""
        if self.res_max:
            return float(self.res_max)
        return max(10.0, 2.5 * pixel_size)

    def check(self, pixel_size: float) -> None:
        """Check the options for images of ``pixel_size`` Angstrom.

        Raises:
            InputError: when the defocus range is empty or not positive, the
                defocus step is not positive, ``res_max`` is beyond Nyquist
                (2 pixels), the band ``res_min`` .. ``res_max`` is empty, the tile
                overlap is outside [0, 0.95), the astigmatism mode is unknown, or
                the gradient sign is not -1, 0 or +1.
        """
        if not 0 < self.defocus_min < self.defocus_max:
            raise InputError(f"defocus range {self.defocus_min:g}..{self.defocus_max:g} A is empty "
                             "or not positive; give --defocus-min < --defocus-max in Angstrom "
                             "(underfocus positive, e.g. 5000 and 80000)")
        if not self.defocus_step > 0:
            raise InputError(f"defocus step {self.defocus_step:g} A is not positive; give "
                             "--defocus-step in Angstrom (e.g. 500)")
        res_max = self.resolved_res_max(pixel_size)
        if res_max < 2 * pixel_size - 1e-6:
            raise InputError(f"--res-max {res_max:g} A is beyond Nyquist ({2 * pixel_size:g} A at "
                             f"{pixel_size:g} A/px); give a value >= {2 * pixel_size:g} A")
        if not self.res_min > res_max:
            raise InputError(f"fitting band {self.res_min:g}..{res_max:g} A is empty; --res-min "
                             "(low resolution, e.g. 50 A) must be larger than --res-max "
                             "(high resolution, e.g. 10 A)")
        if not 0 <= self.tile_overlap < 0.95:
            raise InputError(f"tile overlap {self.tile_overlap} is outside [0, 0.95); give a "
                             "fraction of the tile size (e.g. 0.5)")
        if self.astigmatism_mode not in ("series", "tilt", "none"):
            raise InputError(f"astigmatism mode '{self.astigmatism_mode}' is unknown; use series, "
                             "tilt or none")
        if self.gradient_sign not in (-1, 0, 1):
            raise InputError(f"gradient sign {self.gradient_sign} must be -1, 0 (auto) or +1")


@dataclass
class CtfResult:
    """The fitted CTF of one image (Angstrom, degrees).

    Defocus U >= V in Angstrom (underfocus positive), ``astig_angle`` in degrees
    in [0, 180); NaN values when ``estimated`` is False.  With a defocus
    gradient, the defocus values are those at the tilt axis and
    ``strip_defocus`` / ``strip_x`` give the strips' values."""
    defocus_u: float
    defocus_v: float
    astig_angle: float
    fit_score: float                   # correlation in the band, -1..1
    resolution: float                  # A; the finest Thon ring fitted
    angle: float = 0.0                 # tilt angle (degrees)
    gradient_sign: int = 0             # 0: no gradient model; +-1: sign used
    strip_defocus: List[float] = field(default_factory=list)   # mean defocus per strip (A)
    strip_x: List[float] = field(default_factory=list)          # strip centres (A from axis)
    estimated: bool = True             # False: nothing to fit (see featureless_reason); no numbers
    note: str = ""                     # why the tilt was not estimated
    excluded: bool = False             # an excluded view (not estimated, skipped downstream)
    on_bound: List[str] = field(default_factory=list)           # search bounds the fit ended on

    @property
    def defocus(self) -> float:
        """Mean defocus (U + V) / 2 in Angstrom."""
        return 0.5 * (self.defocus_u + self.defocus_v)

    def to_json(self, synthetic: Optional[bool] = None, backend: str = "builtin") -> dict:
        """The CTF.json entry of this tilt (the file: engine/formats/ctf_json.py).

        Keys: angle, defocus_u, defocus_v, astig_angle, defocus, fit_score,
        resolution (None when not finite), backend, estimated, on_bound, and
        gradient_sign / strip_x / strip_defocus with a gradient; a tilt not
        estimated has None values, its note and ``excluded`` when excluded.
        ``synthetic``: whether the tilt was made by interpolation (key left out
        when None); ``backend``: 'builtin' or 'gctf'."""
        if not self.estimated:
            # A tilt with nothing to fit: no defocus is reported as if fitted.
            d = {"angle": round(float(self.angle), 4), "estimated": False, "note": self.note,
                 "defocus_u": None, "defocus_v": None, "astig_angle": None, "defocus": None,
                 "fit_score": None, "resolution": None, "backend": backend}
            if self.excluded:
                d["excluded"] = True
            if synthetic is not None:
                d["synthetic"] = bool(synthetic)
            return d
        d = {"angle": round(float(self.angle), 4),
             "defocus_u": round(float(self.defocus_u), 2),
             "defocus_v": round(float(self.defocus_v), 2),
             "astig_angle": round(float(self.astig_angle), 3),
             "defocus": round(float(self.defocus), 2),
             "fit_score": round(float(self.fit_score), 5),
             "resolution": (round(float(self.resolution), 3)
                            if math.isfinite(self.resolution) else None),
             "backend": backend, "estimated": True,
             "on_bound": list(self.on_bound)}
        if self.gradient_sign:
            d["gradient_sign"] = int(self.gradient_sign)
            d["strip_x"] = [round(float(v), 1) for v in self.strip_x]
            d["strip_defocus"] = [round(float(v), 1) for v in self.strip_defocus]
        if synthetic is not None:
            d["synthetic"] = bool(synthetic)
        return d


def normalise_astigmatism(du: float, dv: float, angle_deg: float) -> tuple:
    """Return (U, V, angle) with U >= V and the angle in [0, 180) degrees.

    ``du``, ``dv``: defocus in Angstrom; ``angle_deg``: direction of ``du`` from
    the x axis in degrees (turned by 90 when U and V are swapped)."""
    if dv > du:
        du, dv = dv, du
        angle_deg += 90.0
    return float(du), float(dv), float(angle_deg % 180.0)


# ----------------------------------------------------------------------------
# Spectra
# ----------------------------------------------------------------------------
def default_tile_size(shape_yx: Sequence[int]) -> int:
    """512 px, or the largest power of two that fits 3 overlapping tiles per side (>= 64).

    ``shape_yx``: image (y, x) in pixels; the result is even and at most the
    smaller side."""
    m = min(int(shape_yx[0]), int(shape_yx[1]))
    size = 512
    while size > 64 and size > m // 2:
        size //= 2
    return int(min(size, m - m % 2))


def tile_positions(length: int, tile: int, overlap: float) -> List[int]:
    """Start positions (pixels) of tiles of ``tile`` px covering ``length`` px evenly,
    neighbours overlapping by about ``overlap`` (fraction of the tile); [0]
    when one tile covers it all."""
    if tile >= length:
        return [0]
    step = max(1, int(round(tile * (1.0 - overlap))))
    n = int(math.ceil((length - tile) / step)) + 1
    return [int(round(v)) for v in np.linspace(0, length - tile, n)]


def tile_spectra(image: np.ndarray, tile_size: int, overlap: float = 0.5,
                 n_groups: int = 1) -> tuple:
    """Averaged windowed periodograms of the tiles of ``image`` (y, x).

    Returns ``(spectra, centres_x)``: spectra (n_groups, tile, tile//2+1) in
    ``np.fft.rfft2`` layout, float64, and the mean x position (pixels from
    the image centre) of the tiles in each group.  Tiles are grouped by
    their x centre into ``n_groups`` strips of equal tile-column counts.
    Each tile has its mean removed and a 2D Hann window applied (Welch's method).

    Raises:
        InputError: when ``tile_size`` is below 32 px or larger than the image.
    """
    image = np.asarray(image, dtype=np.float64)
    ny, nx = image.shape
    t = int(tile_size)
    if t < 32 or t > min(ny, nx):
        raise InputError(f"tile size {t} px does not fit the {nx}x{ny} image; give --tile-size "
                         f"between 32 and {min(ny, nx)} px")
    win1 = np.hanning(t + 2)[1:-1]
    window = np.outer(win1, win1)
    ys = tile_positions(ny, t, overlap)
    xs = tile_positions(nx, t, overlap)
    n_groups = max(1, min(int(n_groups), len(xs)))
    groups = np.array_split(np.arange(len(xs)), n_groups)
    spectra = np.zeros((n_groups, t, t // 2 + 1))
    centres = np.zeros(n_groups)
    for g, cols in enumerate(groups):
        count = 0
        for ci in cols:
            x0 = xs[ci]
            for y0 in ys:
                tile = image[y0:y0 + t, x0:x0 + t]
                tile = (tile - tile.mean()) * window
                f = np.fft.rfft2(tile)
                spectra[g] += f.real ** 2 + f.imag ** 2
                count += 1
        spectra[g] /= max(count, 1)
        centres[g] = np.mean([xs[ci] + (t - 1) / 2.0 for ci in cols]) - (nx - 1) / 2.0
    return spectra, centres


def _freq_grid(tile: int, pixel_size: float) -> tuple:
    fy = np.fft.fftfreq(tile, d=pixel_size)[:, None]
    fx = np.fft.rfftfreq(tile, d=pixel_size)[None, :]
    fy, fx = np.broadcast_arrays(fy, fx)
    return fy.copy(), fx.copy()


def _radial_profile(values: np.ndarray, s: np.ndarray, edges: np.ndarray) -> tuple:
    idx = np.digitize(s.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], weights=values.ravel()[ok], minlength=len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    good = counts > 0
    return centres[good], sums[good] / counts[good], counts[good]


def _whiten(spectrum: np.ndarray, s: np.ndarray, s_lo: float, s_hi: float, ds: float) -> np.ndarray:
    """Divide by a smooth radial background: a cubic fit of the log rotational
    average over [s_lo, s_hi] (1/A), evaluated everywhere; minus 1."""
    edges = np.arange(s_lo, s_hi + ds, ds)
    c, prof, _ = _radial_profile(spectrum, s, edges)
    prof = np.maximum(prof, np.max(prof) * 1e-12 + 1e-30)
    t = (c - s_lo) / max(s_hi - s_lo, 1e-12)
    coef = np.polynomial.polynomial.polyfit(t, np.log(prof), 3)
    tt = np.clip((s - s_lo) / max(s_hi - s_lo, 1e-12), -0.2, 1.2)
    background = np.exp(np.polynomial.polynomial.polyval(tt, coef))
    out = spectrum / background - 1.0
    return np.clip(out, -5.0, 20.0)       # tame a few outliers (spikes, gold beads)


class _Segment:
    """One spectrum (or rotational average) restricted to the fitting band,
    with the trend basis already projected out of the data."""

    def __init__(self, fy, fx, data, s_lo, s_hi, shift, weights=None, angular=False):
        self.fy = np.ascontiguousarray(fy, dtype=np.float64)
        self.fx = np.ascontiguousarray(fx, dtype=np.float64)
        self.shift = float(shift)            # defocus offset of this segment (A)
        s = np.hypot(self.fy, self.fx)
        self.s2 = s ** 2
        self.s4 = self.s2 ** 2
        self.ang = np.arctan2(self.fy, self.fx)
        t = (s - s_lo) / (s_hi - s_lo)
        columns = [np.ones_like(t), t, t ** 2]
        if angular:
            # 2D spectra: a background that varies smoothly with direction (an
            # oriented specimen, anisotropic blur or drift) is projected out too,
            # so that astigmatism cannot be used to fit it (cos/sin 2a and 4a,
            # times 1 and t); Thon rings vary fast in s and are kept.
            for k in (2, 4):
                c, sn = np.cos(k * self.ang), np.sin(k * self.ang)
                columns += [c, sn, c * t, sn * t]
        basis = np.stack(columns, axis=1)
        self.w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64)
        sw = np.sqrt(self.w)
        q, _ = np.linalg.qr(basis * sw[:, None])
        self.q = q
        self.sw = sw
        y = np.asarray(data, dtype=np.float64) * sw
        y = y - q @ (q.T @ y)
        self.y = y

    def project(self, model: np.ndarray) -> tuple:
        """(model with the trend basis projected out, its energy with only the
        mean removed): the part of a model that looks like background
        earns nothing, so slowly varying (low-defocus) models cannot win by
        fitting the background."""
        m = model * self.sw
        q0 = self.q[:, 0]
        mc = m - q0 * (q0 @ m)
        return m - self.q @ (self.q.T @ m), float(mc @ mc)


class _Model:
    """sin^2(chi) over a list of segments, and the band correlation."""

    def __init__(self, scope: Microscope, segments: List[_Segment]):
        self.lam = electron_wavelength(scope.voltage)
        self.cs_a = scope.cs * 1e7
        ac = scope.amp_contrast
        self.w = math.atan(ac / math.sqrt(max(1e-12, 1 - ac ** 2)))
        self.segments = segments
        self.yy = sum(float(seg.y @ seg.y) for seg in segments)

    def chi(self, seg: _Segment, dz_mean: float, astig: float, angle_rad: float) -> np.ndarray:
        dz = dz_mean + seg.shift + 0.5 * astig * np.cos(2.0 * (seg.ang - angle_rad))
        return (math.pi * self.lam * dz * seg.s2
                - 0.5 * math.pi * self.cs_a * self.lam ** 3 * seg.s4 + self.w)

    def corr(self, dz_mean: float, astig: float = 0.0, angle_rad: float = 0.0) -> float:
        num = 0.0
        mm = 0.0
        for seg in self.segments:
            m, energy = seg.project(np.sin(self.chi(seg, dz_mean, astig, angle_rad)) ** 2)
            num += float(seg.y @ m)
            mm += energy
        if mm <= 0 or self.yy <= 0:
            return -1.0
        return num / math.sqrt(mm * self.yy)


# ----------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------
def _search_1d(model: _Model, options: FitOptions) -> tuple:
    from scipy.optimize import minimize_scalar
    grid = np.arange(options.defocus_min, options.defocus_max + 0.5 * options.defocus_step,
                     options.defocus_step)
    scores = np.array([model.corr(float(dz)) for dz in grid])
    best = int(np.argmax(scores))
    lo = grid[max(best - 1, 0)]
    hi = grid[min(best + 1, len(grid) - 1)]
    if hi > lo:
        res = minimize_scalar(lambda d: -model.corr(d), bounds=(lo, hi), method="bounded",
                              options={"xatol": 5.0})
        if -res.fun > scores[best]:
            return float(res.x), float(-res.fun), grid, scores
    return float(grid[best]), float(scores[best]), grid, scores


def _refine_2d(model: _Model, dz0: float, options: FitOptions) -> tuple:
    """Maximise the band correlation over (mean defocus, astigmatism, angle)."""
    from scipy.optimize import minimize

    amax = float(options.astig_max)
    step = float(options.defocus_step)

    def to_params(x):
        dz, ac, as_ = x
        a = math.hypot(ac, as_)
        ang = 0.5 * math.atan2(as_, ac)
        return dz, a, ang

    def cost(x):
        dz, a, ang = to_params(x)
        penalty = 0.0
        if a > amax:
            penalty += (a - amax) / max(amax, 1.0)
        if not options.defocus_min * 0.5 <= dz <= options.defocus_max * 1.5:
            penalty += 1.0
        return -model.corr(dz, a, ang) + penalty

    if not options.astigmatism or amax <= 0:
        res = minimize(lambda x: cost([x[0], 0.0, 0.0]), [dz0], method="Nelder-Mead",
                       options={"xatol": 2.0, "fatol": 1e-7, "initial_simplex": [[dz0], [dz0 + step / 2]]})
        return float(res.x[0]), 0.0, 0.0, float(-res.fun)

    # coarse grid of starts: astigmatism magnitudes x directions x defocus offsets
    starts = [(dz0, 0.0, 0.0)]
    mags = [m for m in (0.15, 0.35, 0.7) if m * amax > 0]
    for frac in mags:
        a = frac * amax
        for k in range(8):
            ang = k * math.pi / 8
            starts.append((dz0, a * math.cos(2 * ang), a * math.sin(2 * ang)))
    scored = []
    for st in starts:
        for ddz in (-0.5 * step, 0.0, 0.5 * step):
            x = (st[0] + ddz, st[1], st[2])
            scored.append((cost(x), x))
    scored.sort(key=lambda v: v[0])
    best = None
    tried = 0
    for c0, x0 in scored:
        if tried >= 3:
            break
        if best is not None and np.allclose(x0, best[1], atol=1.0):
            continue
        tried += 1
        d = max(step * 0.3, 100.0)
        simplex = [list(x0), [x0[0] + d, x0[1], x0[2]], [x0[0], x0[1] + d, x0[2]],
                   [x0[0], x0[1], x0[2] + d]]
        res = minimize(cost, x0, method="Nelder-Mead",
                       options={"initial_simplex": simplex, "xatol": 2.0, "fatol": 1e-7,
                                "maxiter": 400})
        if best is None or res.fun < best[0]:
            best = (float(res.fun), tuple(res.x))
    dz, a, ang = to_params(best[1])
    return dz, a, ang, -best[0]


def _ring_resolution(model: _Model, spectra_white: List[np.ndarray], fy, fx, s_lo: float,
                     s_nyq: float, shifts: Sequence[float], dz: float, astig: float,
                     ang: float) -> float:
    """Finest resolution (A) up to which successive Thon rings (one period
    of sin^2 chi each) correlate with the model, from the band's low end."""
    s = np.hypot(fy, fx)
    sel = (s >= s_lo) & (s <= s_nyq)
    fy_s, fx_s, s_s = fy[sel], fx[sel], s[sel]
    results = []
    for spec, shift in zip(spectra_white, shifts):
        y = spec[sel]
        seg = _Segment.__new__(_Segment)
        seg.fy, seg.fx, seg.shift = fy_s, fx_s, float(shift)
        seg.s2 = s_s ** 2
        seg.s4 = seg.s2 ** 2
        seg.ang = np.arctan2(fy_s, fx_s)
        chi = model.chi(seg, dz, astig, ang)
        ring = np.floor((chi - model.w) / math.pi).astype(int)
        m = np.sin(chi) ** 2
        best_s = s_lo
        bad = 0
        for k in range(int(ring.min()), int(ring.max()) + 1):
            idx = ring == k
            n = int(idx.sum())
            if n < 12:
                continue
            yy = y[idx]
            mm = m[idx]
            ss = s_s[idx]
            basis = np.stack([np.ones(n), ss - ss.mean()], axis=1)
            q, _ = np.linalg.qr(basis)
            yr = yy - q @ (q.T @ yy)
            mr = mm - q @ (q.T @ mm)
            den = math.sqrt(float(yr @ yr) * float(mr @ mr))
            c = float(yr @ mr) / den if den > 0 else 0.0
            if c > max(0.1, 3.0 / math.sqrt(n)):
                best_s = float(np.percentile(ss, 90))
                bad = 0
            else:
                bad += 1
                if bad >= 2:
                    break
        results.append(best_s)
    s_best = float(np.median(results)) if results else s_lo
    return 1.0 / max(s_best, 1e-9)


class _Prepared:
    """Spectra of one image ready for fitting: per gradient sign, the 1D
    (rotational average) and 2D models over the band."""

    def __init__(self, image: np.ndarray, scope: Microscope, options: FitOptions, angle: float):
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 2:
            raise InputError(f"expected one image (y, x), got an array of shape {image.shape}")
        if not np.all(np.isfinite(image)):
            raise InputError(f"image at tilt {angle:g} degrees holds NaN or infinite values; fix "
                             "the stack before estimating the CTF")
        self.angle = float(angle)
        px = scope.pixel_size
        tile = int(options.tile_size or default_tile_size(image.shape))
        tile -= tile % 2
        gradient = bool(options.defocus_gradient) and abs(angle) > 0.5
        n_cols = len(tile_positions(image.shape[1], min(tile, image.shape[1]), options.tile_overlap))
        n_groups = 1
        if gradient:
            n_groups = min(options.n_strips or n_cols, n_cols, 9)
            if n_groups < 2:
                raise InputError(f"--defocus-gradient needs at least 2 tile columns, but {tile}-px "
                                 f"tiles give {n_cols} across {image.shape[1]} px; use smaller "
                                 "tiles (--tile-size)")
        spectra, centres_px = tile_spectra(image, tile, options.tile_overlap, n_groups)
        fy, fx = _freq_grid(tile, px)
        s = np.hypot(fy, fx)
        self.s_lo = s_lo = 1.0 / options.res_min
        s_hi = 1.0 / options.resolved_res_max(px)
        self.s_nyq = 0.5 / px
        ds = 1.0 / (tile * px)
        self.white = [_whiten(sp, s, max(s_lo * 0.8, ds), min(s_hi * 1.15, self.s_nyq),
                              ds).astype(np.float32) for sp in spectra]
        band = (s >= s_lo) & (s <= s_hi)
        if band.sum() < 50:
            raise InputError(f"the fitting band {options.res_min:g}..{1 / s_hi:g} A holds only "
                             f"{int(band.sum())} spectrum points with {tile}-px tiles at {px:g} "
                             "A/px; widen the band (--res-min/--res-max) or use larger tiles "
                             "(--tile-size)")
        self.fy, self.fx = fy, fx
        self.centres_a = centres_px * px
        tan = math.tan(math.radians(angle))
        signs = [0]
        if gradient:
            signs = [options.gradient_sign] if options.gradient_sign else [1, -1]
        self.variants = []   # (sign, shifts, model1d, model2d)
        self.zero_fits = {}  # sign -> astigmatism-free fit (set by fit with astigmatism)
        edges = np.arange(s_lo, s_hi + 0.5 * ds, 0.5 * ds)
        for sign in signs:
            shifts = [sign * xc * tan for xc in self.centres_a] if sign else [0.0] * len(self.white)
            segs1 = []
            for w, sh in zip(self.white, shifts):
                c, prof, counts = _radial_profile(w, s, edges)
                segs1.append(_Segment(np.zeros_like(c), c, prof, s_lo, s_hi, sh, weights=counts))
            segs2 = [_Segment(fy[band], fx[band], w[band], s_lo, s_hi, sh, angular=True)
                     for w, sh in zip(self.white, shifts)]
            self.variants.append((sign, shifts, _Model(scope, segs1), _Model(scope, segs2)))

    def astigmatism_significant(self, fit: tuple, zero: tuple) -> bool:
        """True when ``fit`` (with astigmatism) beats ``zero`` (the same
        variant without) by n_band (r_a^2 - r_0^2) >= ASTIG_MIN_GAIN."""
        score, k, _, a, _ = fit
        r0 = zero[0]
        if a <= 0:
            return False
        n_band = sum(len(seg.y) for seg in self.variants[k][3].segments)
        return bool(score > r0 and n_band * (score - r0) * (score + r0) >= ASTIG_MIN_GAIN)

    def fit(self, options: FitOptions, astig: Optional[tuple] = None,
            test_astig: bool = True) -> tuple:
        """Best (score, variant index, dz, a, angle_rad) over the gradient signs.
        ``astig``: fixed (a, angle_rad), or None to fit it on this image (kept
        only when significant, unless ``test_astig`` is False)."""
        best = None
        for k, (sign, shifts, m1, m2) in enumerate(self.variants):
            dz1, _, _, _ = _search_1d(m1, options)
            if astig is None and options.astigmatism:
                dz, a, ang, score = _refine_2d(m2, dz1, options)
                dz0, s0 = _refine_dz(m2, dz1, 0.0, 0.0, options.defocus_step)
                zero = (s0, k, dz0, 0.0, 0.0)
                self.zero_fits[sign] = zero        # the astigmatism-free fit of this variant
                if test_astig and not self.astigmatism_significant((score, k, dz, a, ang), zero):
                    score, dz, a, ang = s0, dz0, 0.0, 0.0
            else:
                a, ang = astig if astig is not None else (0.0, 0.0)
                dz, score = _refine_dz(m2, dz1, a, ang, options.defocus_step)
            if best is None or score > best[0]:
                best = (score, k, dz, a, ang)
        return best

    def result(self, fit: tuple, options: Optional[FitOptions] = None) -> CtfResult:
        score, k, dz, a, ang = fit
        bounds = []
        if options is not None:
            if options.astig_max > 0 and a >= BOUND_FRACTION * options.astig_max:
                bounds.append("astig_max")
            if dz - 0.5 * a <= options.defocus_min + 0.5 * options.defocus_step:
                bounds.append("defocus_min")
            if dz + 0.5 * a >= options.defocus_max - 0.5 * options.defocus_step:
                bounds.append("defocus_max")
        sign, shifts, _, m2 = self.variants[k]
        du, dv, angle_deg = normalise_astigmatism(dz + a / 2, dz - a / 2, math.degrees(ang))
        resolution = _ring_resolution(m2, self.white, self.fy, self.fx, self.s_lo, self.s_nyq,
                                      shifts, dz, a, ang)
        return CtfResult(defocus_u=du, defocus_v=dv, astig_angle=angle_deg, fit_score=score,
                         resolution=resolution, angle=self.angle, gradient_sign=int(sign),
                         strip_defocus=[dz + sh for sh in shifts] if sign else [],
                         strip_x=[float(v) for v in self.centres_a] if sign else [],
                         on_bound=bounds)


def _refine_dz(model: _Model, dz0: float, a: float, ang: float, step: float) -> tuple:
    """Best mean defocus within dz0 +- step for a fixed astigmatism."""
    from scipy.optimize import minimize_scalar
    res = minimize_scalar(lambda d: -model.corr(d, a, ang), bounds=(dz0 - step, dz0 + step),
                          method="bounded", options={"xatol": 2.0})
    c0 = model.corr(dz0, a, ang)
    if -res.fun >= c0:
        return float(res.x), float(-res.fun)
    return float(dz0), float(c0)


def estimate_image(image: np.ndarray, scope: Microscope, options: Optional[FitOptions] = None,
                   angle: float = 0.0) -> CtfResult:
    """Fit the CTF (defocus U, V, astigmatism angle) of one image (y, x)
    taken at tilt ``angle`` (degrees); astigmatism fitted on this image alone
    (``options.astigmatism``) and kept only when significant (module doc).

    ``image``: (y, x) any real dtype; ``scope``: the microscope; ``options``:
    default ``FitOptions()``.  Returns the ``CtfResult`` (Angstrom, degrees).

    Raises:
        InputError: when ``scope`` or ``options`` are invalid, the image is not
            2-D or holds NaN/inf, the tiles do not fit it, the fitting band holds
            fewer than 50 spectrum points, the defocus gradient has fewer than 2
            tile columns, or the image is featureless (``featureless_reason``).
    """
    options = options or FitOptions()
    scope.check()
    options.check(scope.pixel_size)
    prep = _Prepared(image, scope, options, angle)      # option and size errors first
    reason = featureless_reason(image)
    if reason:                   # nothing to fit: never a made-up defocus
        raise InputError(f"image at tilt {angle:g} degrees is a {reason}: its CTF cannot be "
                         "estimated; exclude it")
    return prep.result(prep.fit(options), options)


def estimate_strips(image: np.ndarray, scope: Microscope, options: Optional[FitOptions] = None,
                    angle: float = 0.0, n_strips: int = 5) -> tuple:
    """Independent mean-defocus fits of strips of tiles grouped by their height
    above the tilt axis (x), no astigmatism: a check of the defocus gradient.

    ``image`` (y, x), tilt ``angle`` in degrees, ``n_strips`` strips at most
    (fewer when there are fewer tile columns).
    Returns (x centres in Angstrom from the tilt axis, defocus per strip in A),
    two (n_strips,) float64 arrays.

    Raises:
        InputError: as ``estimate_image`` (featureless images are not refused
            here), or when the tiles give fewer than 2 columns.
    """
    options = options or FitOptions()
    scope.check()
    options.check(scope.pixel_size)
    opts = FitOptions(**{**asdict(options), "defocus_gradient": True, "gradient_sign": 1,
                         "n_strips": n_strips})
    whole = _Prepared(image, scope, FitOptions(**{**asdict(options), "defocus_gradient": False}),
                      angle)
    dz_all = whole.fit(options, astig=(0.0, 0.0))[2]
    prep = _Prepared(image, scope, opts, angle if abs(angle) > 0.5 else 1.0)
    px_white = prep.white
    xs, dzs = [], []
    band_s = np.hypot(prep.fy, prep.fx)
    s_hi = 1.0 / options.resolved_res_max(scope.pixel_size)
    band = (band_s >= prep.s_lo) & (band_s <= s_hi)
    edges = np.arange(prep.s_lo, s_hi + 0.5 / (prep.fy.shape[0] * scope.pixel_size),
                      0.5 / (prep.fy.shape[0] * scope.pixel_size))
    for w, xc in zip(px_white, prep.centres_a):
        c, prof, counts = _radial_profile(w, band_s, edges)
        m1 = _Model(scope, [_Segment(np.zeros_like(c), c, prof, prep.s_lo, s_hi, 0.0,
                                     weights=counts)])
        reach = abs(xc * math.tan(math.radians(angle))) + 4 * options.defocus_step
        local = FitOptions(**{**asdict(options), "defocus_min": max(1.0, dz_all - reach),
                              "defocus_max": dz_all + reach})
        dz1 = _search_1d(m1, local)[0]
        m2 = _Model(scope, [_Segment(prep.fy[band], prep.fx[band], w[band], prep.s_lo, s_hi, 0.0,
                                     angular=True)])
        xs.append(float(xc))
        dzs.append(_refine_dz(m2, dz1, 0.0, 0.0, options.defocus_step)[0])
    return np.array(xs), np.array(dzs)


def _series_consensus(preps, fits, options: FitOptions, prog) -> List[tuple]:
    """Re-fit tilts whose defocus lies more than ``options.series_window`` from
    the score-weighted median of the series, searching only inside the window
    (a tilt series is acquired at one target defocus; a lone far-off value is
    a false maximum on a weak spectrum)."""
    dz = np.array([f[2] for f in fits])
    w = np.array([max(f[0], 0.0) for f in fits]) + 1e-6
    order = np.argsort(dz)
    cw = np.cumsum(w[order])
    centre = float(dz[order][np.searchsorted(cw, 0.5 * cw[-1])])
    win = float(options.series_window)
    local = FitOptions(**{**asdict(options), "defocus_min": max(1.0, centre - win),
                          "defocus_max": centre + win})
    out = list(fits)
    moved = 0
    for i, (prep, fit) in enumerate(zip(preps, fits)):
        if abs(fit[2] - centre) > win:
            astig = (0.0, 0.0) if options.astigmatism_mode == "none" else None
            out[i] = prep.fit(local, astig=astig,
                              test_astig=options.astigmatism_mode != "series")
            moved += 1
    if moved:
        prog.log(f"{moved} tilt(s) far from the series' defocus {centre / 1e4:.3f} um refitted "
                 f"within +-{win / 1e4:.2f} um")
    return out


def series_astigmatism_significant(fits: List[tuple], alpha: float = ASTIG_SERIES_ALPHA) -> bool:
    """Hotelling's T^2 test that the per-tilt astigmatism vectors
    (a cos 2t, a sin 2t) of ``fits`` ((score, k, dz, a, angle_rad) each) have
    a mean other than zero, at level ``alpha``.  Fewer than 4 tilts: the
    vectors must all point within 45 degrees of their mean direction.

    The T^2 statistic n mean^T S^-1 mean is compared with
    2 (n - 1) / (n - 2) F(1 - alpha; 2, n - 2) (Hotelling 1931).
    Returns False when the mean is exactly zero (no astigmatism anywhere)."""
    from scipy.stats import f as f_dist
    v = np.array([[f[3] * math.cos(2 * f[4]), f[3] * math.sin(2 * f[4])] for f in fits])
    n = len(v)
    mean = v.mean(axis=0)
    if not np.any(mean):
        return False
    if n < 4:
        d = 0.5 * np.degrees(np.arctan2(v[:, 1], v[:, 0]) - math.atan2(mean[1], mean[0]))
        return bool(np.all(np.abs((d + 90) % 180 - 90) < 22.5) and np.all(v.any(axis=1)))
    cov = np.cov(v, rowvar=False) + np.eye(2) * 1e-9 * (1.0 + float(np.abs(v).max()) ** 2)
    t2 = n * float(mean @ np.linalg.solve(cov, mean))
    crit = 2.0 * (n - 1) / (n - 2) * float(f_dist.ppf(1.0 - alpha, 2, n - 2))
    return t2 > crit


def _series_astigmatism(preps: List[_Prepared], fits: List[tuple], options: FitOptions) -> tuple:
    """One astigmatism (a, angle_rad) for the whole series: maximise the mean
    band correlation over (a cos 2t, a sin 2t), each tilt's defocus re-fitted."""
    from scipy.optimize import minimize
    if not series_astigmatism_significant(fits):
        return 0.0, 0.0
    amax = float(options.astig_max)
    step = float(options.defocus_step)
    models = [p.variants[f[1]][3] for p, f in zip(preps, fits)]
    dzs = [f[2] for f in fits]

    def total(x):
        a = math.hypot(x[0], x[1])
        ang = 0.5 * math.atan2(x[1], x[0])
        pen = max(0.0, (a - amax) / max(amax, 1.0))
        tot = 0.0
        for m, dz in zip(models, dzs):
            tot += _refine_dz(m, dz, a, ang, 0.5 * step)[1]
        return -tot / len(models) + pen

    # starts: no astigmatism, and the score-weighted median of the per-tilt estimates
    w = np.array([max(f[0], 0.0) for f in fits]) + 1e-6
    ac = np.array([f[3] * math.cos(2 * f[4]) for f in fits])
    as_ = np.array([f[3] * math.sin(2 * f[4]) for f in fits])

    def wmedian(v):
        order = np.argsort(v)
        cw = np.cumsum(w[order])
        return float(v[order][np.searchsorted(cw, 0.5 * cw[-1])])

    starts = [np.array([0.0, 0.0]), np.array([wmedian(ac), wmedian(as_)])]
    best = None
    for x0 in starts:
        d = max(0.2 * amax, 100.0)
        simplex = [x0, x0 + [d, 0.0], x0 + [0.0, d]]
        res = minimize(total, x0, method="Nelder-Mead",
                       options={"initial_simplex": simplex, "xatol": 5.0, "fatol": 1e-6,
                                "maxiter": 120})
        if best is None or res.fun < best.fun:
            best = res
    x = best.x
    return math.hypot(x[0], x[1]), 0.5 * math.atan2(x[1], x[0])


def featureless_reason(image: np.ndarray) -> Optional[str]:
    """Why the CTF of ``image`` (y, x) cannot be estimated, or None.

    An image is featureless when it has no contrast (standard deviation below
    1e-6 of its scale: a constant image) or no texture at all (second
    differences below 1e-6 of its scale: a constant plus a linear ramp).  Its
    spectrum then holds no Thon rings, and any defocus would be made up.
    Noise-only images are not caught here (their fit score is low).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.size == 0 or not np.all(np.isfinite(img)):
        return None                      # NaN/inf are refused elsewhere, with their own message
    std = float(img.std())
    scale = max(abs(float(img.mean())), std, 1e-30)
    if std <= 1e-6 * scale:
        return "constant image (no contrast)"
    d2 = [np.diff(img, 2, axis=ax) for ax in (0, 1) if img.shape[ax] > 2]
    if d2 and max(float(np.abs(d).max()) for d in d2) <= 1e-6 * scale:
        return "featureless image (a smooth ramp, no texture)"
    return None


def not_estimated(angle: float, reason: str) -> CtfResult:
    """The :class:`CtfResult` of a tilt whose CTF cannot be estimated: NaN values,
    ``estimated`` False and ``reason`` as its note; ``angle`` in degrees."""
    nan = float("nan")
    return CtfResult(defocus_u=nan, defocus_v=nan, astig_angle=nan, fit_score=nan, resolution=nan,
                     angle=float(angle), estimated=False, note=reason)


def excluded_result(angle: float) -> CtfResult:
    """The :class:`CtfResult` of an excluded view: not estimated, flagged
    ``excluded`` (CTF.json: ``"excluded": true``, ``"estimated": false``, null
    values; engine/formats/record.py)."""
    r = not_estimated(angle, "excluded view")
    r.excluded = True
    return r


def estimate_stack(stack, angles: Sequence[float], scope: Microscope,
                   options: Optional[FitOptions] = None, progress: bool = True,
                   label: str = "ctf", skip: Sequence[int] = ()) -> List[CtfResult]:
    """Fit every image of ``stack`` ((n, y, x) array or an MRC path) in stack order.

    ``angles``: tilt angle (degrees) per image, stack order.  ``skip``:
    0-based views not estimated (excluded views): their result is
    :func:`excluded_result` and they take no part in the series' consensus or
    astigmatism.  Featureless tilts give :func:`not_estimated`.

    ``options.astigmatism_mode`` 'series' fits one astigmatism for all tilts
    (each its own defocus), 'tilt' one per tilt, 'none' U = V; tilts far from
    the series' defocus are refitted inside ``options.series_window``.
    ``progress``: progress lines under ``label``.
    Returns one ``CtfResult`` per image, stack order.

    Raises:
        InputError: when ``scope`` or ``options`` are invalid, the MRC file
            cannot be read (``formats.mrc.open_stack``), the angle count differs from the
            image count, every tilt not excluded is featureless, every tilt is
            excluded, or an image fails as in ``estimate_image`` (NaN/inf, tiles,
            band).
    """
    from .progress import Progress
    options = options or FitOptions()
    scope.check()
    options.check(scope.pixel_size)
    mrc = None
    if isinstance(stack, str):
        from .formats.mrc import open_stack
        mrc = open_stack(stack)
        data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
    else:
        data = np.asarray(stack)
        if data.ndim == 2:
            data = data[None]
    try:
        n = data.shape[0]
        if len(angles) != n:
            raise InputError(f"{n} images in the stack but {len(angles)} tilt angles; give one "
                             "angle per image (stack order)")
        # Excluded views (``skip``) are not estimated; featureless tilts (constant
        # images) are marked not estimated, never fitted.
        excluded = set(int(i) for i in skip)
        skipped = {i: "excluded view" for i in excluded}
        for i in range(n):
            reason = None if i in excluded else featureless_reason(data[i])
            if reason:
                skipped[i] = reason
        if len(skipped) == n and len(excluded) < n:
            first = next(r for i, r in sorted(skipped.items()) if i not in excluded)
            used = f"{n - len(excluded)}{' not excluded' if excluded else ''}"
            raise InputError(f"every tilt ({used}) is featureless ({first}): there is no CTF to "
                             "estimate; check the stack (is it the right file?)")
        if len(skipped) == n:
            raise InputError(f"every tilt ({n}) is excluded: there is no CTF to estimate")
        prog = Progress(n - len(excluded), label, unit="tilt", enabled=progress)
        mode = options.astigmatism_mode
        preps, fits, out = [], [], []
        for i in range(n):
            if i in excluded:
                continue
            if i in skipped:
                prog.update(1, detail=f"tilt {float(angles[i]):+.1f}: not estimated ({skipped[i]})")
                continue
            prep = _Prepared(np.asarray(data[i], dtype=np.float32), scope, options,
                             angle=float(angles[i]))
            fit = prep.fit(options, astig=(0.0, 0.0) if mode == "none" else None,
                           test_astig=mode != "series")
            if len(prep.variants) > 1:            # keep the chosen gradient sign only (memory)
                prep.variants = [prep.variants[fit[1]]]
                fit = (fit[0], 0) + tuple(fit[2:])
            if mode == "series" or options.series_window:
                preps.append(prep)
                fits.append(fit)
            if mode == "series":
                detail = f"tilt {float(angles[i]):+.1f}: first pass {fit[2] / 1e4:.3f} um"
            else:
                r = prep.result(fit, options)
                out.append(r)
                detail = (f"tilt {float(angles[i]):+.1f}: defocus {r.defocus / 1e4:.3f} um, "
                          f"astig {r.defocus_u - r.defocus_v:.0f} A, score {r.fit_score:.3f}")
            prog.update(1, detail=detail)
        if options.series_window and len(preps) >= 3:
            fits = _series_consensus(preps, fits, options, prog=prog)
            if mode != "series":
                out = [p.result(f, options) for p, f in zip(preps, fits)]
        if mode == "series":
            a, ang = _series_astigmatism(preps, fits, options)
            why = "per-tilt estimates do not agree"
            if a > 0.0:
                # The series' astigmatism must also explain the spectra better than
                # none: summed over the tilts, n_band (r_a^2 - r_0^2) >= ASTIG_MIN_GAIN
                # (a consistent direction alone can come from anisotropic blur).
                gain = 0.0
                for prep, fit in zip(preps, fits):
                    sign = prep.variants[fit[1]][0]
                    m2 = prep.variants[fit[1]][3]
                    zero = prep.zero_fits.get(sign)
                    r0 = zero[0] if zero else _refine_dz(m2, fit[2], 0.0, 0.0,
                                                         options.defocus_step)[1]
                    ra = _refine_dz(m2, fit[2], a, ang, options.defocus_step)[1]
                    gain += sum(len(seg.y) for seg in m2.segments) * (ra * ra - r0 * r0)
                if os.environ.get("CRYOTIGER_DEBUG_ASTIG"):
                    prog.log(f"series astigmatism gain {gain:.1f}")
                if gain < ASTIG_MIN_GAIN:
                    a, ang, why = 0.0, 0.0, f"no gain in correlation ({gain:.1f})"
            if a == 0.0:
                # No series astigmatism: each tilt's astigmatism-free fit (from
                # its own 1D search, not the defocus of its astigmatic fit).
                fits = [p.zero_fits.get(p.variants[f[1]][0], f)[:1] + (f[1],)
                        + p.zero_fits.get(p.variants[f[1]][0], f)[2:] for p, f in zip(preps, fits)]
            prog.log(f"series astigmatism {a:.0f} A at {math.degrees(ang) % 180:.1f} degrees"
                     f"{'' if a else f' ({why}: none)'}; "
                     "defocus of each tilt refitted")
            for prep, fit in zip(preps, fits):
                m2 = prep.variants[fit[1]][3]
                dz, score = _refine_dz(m2, fit[2], a, ang, options.defocus_step)
                out.append(prep.result((score, fit[1], dz, a, ang), options))
        fitted = iter(out)
        return [(excluded_result(float(angles[i])) if i in excluded else
                 not_estimated(float(angles[i]), skipped[i])) if i in skipped else next(fitted)
                for i in range(n)]
    finally:
        if mrc is not None:
            mrc.close()


# ----------------------------------------------------------------------------
# CTF.json entries (the file format, its reader and writer: formats/ctf_json.py)
# ----------------------------------------------------------------------------
def results_to_json(results: List[CtfResult], synthetic: Optional[List[bool]] = None,
                    backend: str = "builtin") -> List[dict]:
    """The CTF.json entries of ``results`` (``CtfResult.to_json`` each), with
    ``synthetic`` flags (one per result) when given."""
    return [r.to_json(None if synthetic is None else synthetic[i], backend=backend)
            for i, r in enumerate(results)]


__all__ = ["Microscope", "FitOptions", "CtfResult", "estimate_image", "estimate_stack",
           "tile_spectra", "results_to_json",
           "normalise_astigmatism", "estimate_strips"]
