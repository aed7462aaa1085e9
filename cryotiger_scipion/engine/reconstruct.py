"""Built-in CPU tomogram reconstruction: weighted back-projection (WBP) about
the tilt axis y, with optional 2D or 3D CTF correction (the novaCTF scheme).

Geometry (the same as :func:`engine.simulate.project` and novaCTF): volume
axes (z, y, x), voxel coordinates relative to the volume centre; the image
of tilt angle theta (degrees) is (y, x) with detector coordinate
``u = x cos(theta) + z sin(theta)``, ``v = y``.  The height of a voxel along
the beam is ``w = z cos(theta) - x sin(theta)``.  Output volumes are
(z, y, x) float32, the tilt axis along y, in the contrast of the images
(dark density stays dark, as with IMOD and novaCTF).

Weighted back-projection: each tilt is filtered along x by a ramp (the
Ram-Lak filter of filtered back-projection; Ramachandran & Lakshminarayanan,
PNAS 68, 1971), weighted by its share of the angular range, and smeared back
along the beam (Radermacher, "Weighted back-projection methods", in Frank (ed.)
Electron Tomography, 1992).

3D CTF correction (Turonova et al., J. Struct. Biol. 199, 2017, novaCTF): the defocus of a voxel in
a tilt image is the tilt's defocus minus its height along the beam
(``defocus = defocus_tilt - w * pixel_size``: higher is less underfocused, as
novaCTF).  Heights are cut into planes ``defocus_step`` apart; each tilt is
corrected (phase flipped or multiplied by the CTF) once per plane, and each
voxel is back-projected from the plane of its own height.  With ``phaseflip``
the whole image gets the tilt's defocus (2D correction, one plane).

Units: angles degrees, pixel sizes and defocus Angstrom (underfocus > 0),
voltage kV, Cs mm.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from scipy import fft as sfft

from . import InputError
from .ctf_model import ctf_phase, electron_wavelength
from .formats.ctf_json import read_ctf_json
from .formats.record import experimental_views

CORRECTIONS = ("none", "phaseflip", "3d")
CTF_MODES = ("phaseflip", "multiply")
FILTERS = ("ramp", "shepp-logan", "cosine", "hamming")


@dataclass
class CtfSettings:
    """Per-tilt defocus and microscope constants for CTF correction.

    ``defocus_u``/``defocus_v`` (Angstrom, underfocus > 0) and ``astig_angle``
    (degrees) have one value per tilt, in stack order (NaN: not estimated);
    ``voltage`` kV, ``cs`` mm, ``amp_contrast`` fraction."""
    defocus_u: Sequence[float]
    defocus_v: Sequence[float]
    astig_angle: Sequence[float]
    voltage: float = 300.0
    cs: float = 2.7
    amp_contrast: float = 0.07

    def subset(self, keep: Sequence[int]) -> "CtfSettings":
        """The settings of views ``keep`` (0-based), in that order.

        Raises:
            InputError: when one of them has no estimated defocus (NaN: marked
                not estimated in CTF.json).
        """
        k = list(keep)
        missing = [i + 1 for i in k if not (np.isfinite(self.defocus_u[i])
                                            and np.isfinite(self.defocus_v[i]))]
        if missing:
            raise InputError(f"the CTF file marks tilt(s) {', '.join(map(str, missing[:10]))} "
                             "(numbered from 1) as not estimated (featureless or excluded); exclude them "
                             f"(--exclude {','.join(map(str, missing[:10]))}) or correct without CTF")
        return CtfSettings([self.defocus_u[i] for i in k], [self.defocus_v[i] for i in k],
                           [self.astig_angle[i] for i in k], self.voltage, self.cs, self.amp_contrast)


# ----------------------------------------------------------------------------
# Filters
# ----------------------------------------------------------------------------
def radial_filter(n_pad: int, kind: str = "ramp", cutoff: float = 0.35,
                  falloff: float = 0.05, sirt_iterations: int = 0,
                  n_image: Optional[int] = None) -> np.ndarray:
    """The 1D weighting filter on the ``np.fft.rfft`` grid of ``n_pad`` samples.

    The ramp is the Fourier transform of the band-limited spatial ramp
    (Ram-Lak; its zero frequency term is not zero, which keeps the mean);
    ``kind`` applies a window (shepp-logan, cosine, hamming); beyond
    ``cutoff`` (cycles/pixel, 0.5 = Nyquist) a Gaussian falloff of sigma
    ``falloff`` as IMOD's RADIAL (falloff 0: a hard cutoff).
    ``sirt_iterations`` K > 0: the SIRT-like weighting of Zeng (2012), the
    ramp times ``1 - (1 - 1/n)^K`` with n the frequency index of the image
    (``n_image`` pixels wide): like K iterations of SIRT (Landweber), a
    low-pass that suppresses noise; large K tends to the plain ramp.

    Returns (n_pad // 2 + 1,) float32.  Sources: Ram-Lak ramp (Ramachandran &
    Lakshminarayanan 1971), IMOD tilt's RADIAL falloff, Zeng, "A filtered
    backprojection algorithm with characteristics of the iterative landweber
    algorithm", Med. Phys. 39, 2012.

    Raises:
        InputError: for an unknown ``kind``, a ``cutoff`` outside (0, 0.5], a
            negative ``falloff`` or negative ``sirt_iterations``.
    """
    if kind not in FILTERS:
        raise InputError(f"unknown filter '{kind}'; use one of {', '.join(FILTERS)}")
    if not 0 < cutoff <= 0.5 or falloff < 0:
        raise InputError(f"radial filter cutoff {cutoff}, falloff {falloff}: the cutoff must be in "
                         "(0, 0.5] cycles/pixel and the falloff >= 0 (e.g. --radial 0.35,0.05)")
    k = np.arange(n_pad)
    k = np.where(k > n_pad // 2, k - n_pad, k)
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = (np.abs(k) % 2) == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    ramp = np.abs(np.fft.rfft(h))          # ~ |f| (cycles/pixel), 2x for the two sides
    f = np.fft.rfftfreq(n_pad)
    if kind == "shepp-logan":
        ramp *= np.sinc(f)
    elif kind == "cosine":
        ramp *= np.cos(np.pi * f)
    elif kind == "hamming":
        ramp *= 0.54 + 0.46 * np.cos(2 * np.pi * f)
    if sirt_iterations and sirt_iterations > 0:
        n = np.maximum(f * (n_image or n_pad), 1.0)
        ramp *= 1.0 - (1.0 - 1.0 / n) ** int(sirt_iterations)
    elif sirt_iterations and sirt_iterations < 0:
        raise InputError(f"SIRT-like iterations {sirt_iterations}: give a number >= 0 (0: off)")
    beyond = f > cutoff
    if falloff > 0:
        ramp[beyond] *= np.exp(-((f[beyond] - cutoff) / falloff) ** 2)
    else:
        ramp[beyond] = 0.0
    return ramp.astype(np.float32)


def angular_weights(angles: Sequence[float]) -> np.ndarray:
    """Weight of each tilt (radians): half the angular distance to its
    neighbours (the end tilts get their one neighbour's gap), so unevenly
    spaced series (synthetic tilts) are weighted right.

    ``angles``: degrees, any order; returns (n,) float64 in stack order
    (pi for a single tilt)."""
    a = np.deg2rad(np.asarray(angles, dtype=float))
    if len(a) == 1:
        return np.array([np.pi])
    order = np.argsort(a)
    s = a[order]
    gaps = np.diff(s)
    w_sorted = np.empty(len(a))
    w_sorted[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w_sorted[0] = gaps[0]
    w_sorted[-1] = gaps[-1]
    w = np.empty(len(a))
    w[order] = w_sorted
    return w


def auto_defocus_step(pixel_size: float, voltage: float, cutoff: float = 0.5) -> float:
    """Plane spacing (Angstrom) at which the CTF phase changes by pi/4 at the
    highest frequency kept (``cutoff`` cycles/pixel), never below one pixel.

    The defocus term of chi is pi lambda dz s^2 (``ctf_model``), so the step is
    1 / (4 lambda s^2) with s = cutoff / pixel_size; ``pixel_size`` in
    Angstrom, ``voltage`` in kV."""
    s = cutoff / pixel_size
    lam = electron_wavelength(voltage)
    return float(max(pixel_size, 1.0 / (4.0 * lam * s * s)))


def _next_fast(n: int) -> int:
    return int(sfft.next_fast_len(int(n), real=True))


# ----------------------------------------------------------------------------
# Back-projection
# ----------------------------------------------------------------------------
class _Filterer:
    """Weights and CTF-corrects one tilt image for a list of defocus offsets."""

    def __init__(self, shape_yx, pixel_size, filt: np.ndarray, pad_x: int, pad_y: int):
        self.ny, self.nx = shape_yx
        self.pixel_size = pixel_size
        self.filt = filt
        self.pad_x, self.pad_y = pad_x, pad_y

    def _pad(self, img: np.ndarray, with_y: bool) -> np.ndarray:
        px0 = (self.pad_x - self.nx) // 2
        px1 = self.pad_x - self.nx - px0
        py0 = py1 = 0
        if with_y:
            py0 = (self.pad_y - self.ny) // 2
            py1 = self.pad_y - self.ny - py0
        return np.pad(img, ((py0, py1), (px0, px1)), mode="edge"), py0, px0

    def plain(self, img: np.ndarray) -> np.ndarray:
        """Weighted image (y, x), no CTF correction: 1D filter along x."""
        p, _, px0 = self._pad(img, with_y=False)
        out = sfft.irfft(sfft.rfft(p, axis=1) * self.filt[None, :], n=self.pad_x, axis=1)
        return out[:, px0:px0 + self.nx].astype(np.float32)

    def corrected(self, img: np.ndarray, defocus_u: float, defocus_v: float, astig: float,
                  offsets: Sequence[float], ctf: CtfSettings, mode: str) -> List[np.ndarray]:
        """Weighted and CTF-corrected images, one per defocus offset (Angstrom,
        added to the tilt's defocus)."""
        p, py0, px0 = self._pad(img, with_y=True)
        spec = sfft.rfft2(p)
        fy = np.fft.fftfreq(self.pad_y, d=self.pixel_size)[:, None]
        fx = np.fft.rfftfreq(self.pad_x, d=self.pixel_size)[None, :]
        fy, fx = np.broadcast_arrays(fy, fx)
        spec = spec * self.filt[None, :]
        out = []
        for off in offsets:
            chi = ctf_phase(fy, fx, defocus_u + off, defocus_v + off, astig, ctf.voltage, ctf.cs,
                            ctf.amp_contrast)
            s = np.sin(chi)   # the image's transfer (positive at low frequency for underfocus)
            factor = np.sign(s) if mode == "phaseflip" else s
            res = sfft.irfft2(spec * factor.astype(np.float32), s=(self.pad_y, self.pad_x))
            out.append(res[py0:py0 + self.ny, px0:px0 + self.nx].astype(np.float32))
        return out


def bin_image(img: np.ndarray, b: int) -> np.ndarray:
    """Average ``b`` x ``b`` blocks of a (y, x) image (the edge remainder is cut):
    (y // b, x // b) float32."""
    if b == 1:
        return np.asarray(img, dtype=np.float32)
    ny, nx = img.shape[0] // b, img.shape[1] // b
    a = np.asarray(img[:ny * b, :nx * b], dtype=np.float32)
    return a.reshape(ny, b, nx, b).mean(axis=(1, 3))


def reconstruct(images, angles: Sequence[float], thickness: int, pixel_size: float = 1.0,
                ctf: Optional[CtfSettings] = None, correction: str = "none",
                ctf_mode: str = "phaseflip", defocus_step: Optional[float] = None,
                filter_kind: str = "ramp", radial=(0.35, 0.05), binning: int = 1,
                max_memory_gb: float = 1.0, sirt_like: int = 0, progress=None) -> tuple:
    """Reconstruct a tomogram from an aligned tilt series.

    ``images``: (n, y, x) array (or memory-mapped stack) in stack order;
    ``angles``: degrees, one per image; ``thickness``: output z size in
    pixels of the INPUT (it is divided by ``binning``); ``pixel_size``:
    Angstrom of the input.  ``correction``: 'none', 'phaseflip' (2D, the
    tilt's defocus on the whole image) or '3d' (per-voxel height, planes
    ``defocus_step`` Angstrom apart; default: :func:`auto_defocus_step`);
    ``ctf_mode``: 'phaseflip' or 'multiply' (by the CTF, novaCTF's
    multiplication).  ``radial``: (cutoff cycles/pixel, Gaussian falloff);
    ``sirt_like``: K SIRT-like iterations (0: plain weighting; see
    :func:`radial_filter`).
    ``progress``: an engine.progress.Progress (one update per tilt).

    ``filter_kind``: ramp window (:func:`radial_filter`); ``binning``:
    integer block average of the images first; ``max_memory_gb``: size of the
    back-projection's temporaries (GB).

    Returns (volume (z, y, x) float32, output pixel size in Angstrom), z =
    thickness / binning, (y, x) the binned image size.

    Raises:
        InputError: when the angle count differs from the image count, fewer
            than 2 images are given, ``correction`` or ``ctf_mode`` is unknown, a
            correction has no ``ctf``, ``binning`` or ``thickness`` is below 1,
            the pixel size is missing or not positive, binning leaves no pixel,
            the 3D defocus step is not positive, or the filter settings are
            invalid (:func:`radial_filter`).
    """
    n = len(images)
    angles = np.asarray(angles, dtype=float)
    if len(angles) != n:
        raise InputError(f"{n} images but {len(angles)} angles; give one angle per image")
    if n < 2:
        raise InputError(f"{n} tilt image(s): a reconstruction needs at least 2")
    if correction not in CORRECTIONS:
        raise InputError(f"unknown CTF correction '{correction}'; use one of {', '.join(CORRECTIONS)}")
    if ctf_mode not in CTF_MODES:
        raise InputError(f"unknown CTF mode '{ctf_mode}'; use 'phaseflip' or 'multiply'")
    if correction != "none" and ctf is None:
        raise InputError(f"CTF correction '{correction}' needs the per-tilt defocus: "
                         "give --ctf CTF.json (from 'cryotiger ctf')")
    b = int(binning)
    if b < 1:
        raise InputError(f"binning {binning}: give an integer >= 1")
    if thickness is None or int(thickness) < 1:
        raise InputError(f"thickness {thickness}: give the tomogram thickness in pixels (>= 1)")
    if pixel_size is None or pixel_size <= 0:
        raise InputError(f"pixel size {pixel_size}: give it in Angstrom (--pixel-size), the "
                         "stack header has none")
    ny0, nx0 = images[0].shape
    ny, nx = ny0 // b, nx0 // b
    if ny < 1 or nx < 1:
        raise InputError(f"binning {b} leaves no pixels of {nx0}x{ny0} images; use a smaller binning")
    nz = max(1, int(round(int(thickness) / b)))
    px = float(pixel_size) * b
    cutoff, falloff = radial
    filt = radial_filter(_next_fast(2 * nx), filter_kind, cutoff, falloff, sirt_like, nx)
    filterer = _Filterer((ny, nx), px, filt, _next_fast(2 * nx),
                         _next_fast(ny + 2 * min(ny // 2, 64)))
    weights = angular_weights(angles)
    if correction == "3d":
        step = float(defocus_step) if defocus_step else auto_defocus_step(px, ctf.voltage, cutoff)
        if step <= 0:
            raise InputError(f"defocus step {defocus_step}: give a positive value in Angstrom")
    else:
        step = None

    vol = np.zeros((nz, nx, ny), dtype=np.float32)          # (z, x, y): y rows contiguous
    zc = (np.arange(nz) - (nz - 1) / 2.0)[:, None]
    xc = (np.arange(nx) - (nx - 1) / 2.0)[None, :]
    budget = max(1, int(max_memory_gb * 2 ** 30 / 4 / 4))   # floats per temporary, 4 temporaries
    rows_per_slab = max(1, budget // max(1, nx * ny))
    for i in range(n):
        th = np.deg2rad(angles[i])
        c, s = np.cos(th), np.sin(th)
        img = bin_image(np.asarray(images[i], dtype=np.float32), b)
        u = xc * c + zc * s + (nx - 1) / 2.0                  # (nz, nx) detector position
        if correction == "none":
            planes = [filterer.plain(img)]
            plane_of = None
        else:
            du, dv, ang = ctf.defocus_u[i], ctf.defocus_v[i], ctf.astig_angle[i]
            if correction == "phaseflip":
                offsets, plane_of = [0.0], None
            else:
                w = zc * c - xc * s                             # height along the beam (pixels)
                k = np.rint(-w * px / step).astype(np.int64)   # defocus offset in steps
                kmin = int(k.min())
                plane_of = k - kmin
                offsets = [(kmin + j) * step for j in range(int(plane_of.max()) + 1)]
            planes = filterer.corrected(img, du, dv, ang, offsets, ctf, ctf_mode)
        _backproject(vol, planes, u, plane_of, float(weights[i]), rows_per_slab)
        if progress is not None:
            detail = f"{angles[i]:+.1f} deg"
            if correction == "3d":
                detail += f", {len(planes)} defocus planes"
            progress.update(1, detail)
    return vol.transpose(0, 2, 1), px


def _backproject(vol, planes, u, plane_of, weight, rows_per_slab):
    """Add the weighted, filtered ``planes`` (list of (y, x) images) into
    ``vol`` (z, x, y) by linear interpolation along x at positions ``u``
    (z, x); ``plane_of`` (z, x) picks the plane of each voxel (None: plane 0)."""
    nz, nx, ny = vol.shape
    nu = planes[0].shape[1]
    stride = nu + 3
    table = np.zeros((len(planes) * stride, ny), dtype=np.float32)
    for j, p in enumerate(planes):                # rows 0 and nu+1, nu+2 of each plane stay 0
        table[j * stride + 1:j * stride + 1 + nu] = p.T * np.float32(weight)
    uu = np.clip(u, 0.0, float(nu - 1))
    i0 = np.floor(uu).astype(np.int64)
    frac = (uu - i0).astype(np.float32)
    idx = i0 + 1
    if plane_of is not None:
        idx = idx + plane_of * stride
    for z0 in range(0, nz, rows_per_slab):
        z1 = min(nz, z0 + rows_per_slab)
        ix = idx[z0:z1]
        f = frac[z0:z1, :, None]
        a = table[ix]
        a *= (1.0 - f)
        a += f * table[ix + 1]
        vol[z0:z1] += a


# ----------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------
def load_ctf_settings(path: str, n: int, angles: Optional[Sequence[float]] = None,
                      voltage: float = 300.0, cs: float = 2.7, amp_contrast: float = 0.07,
                      keep: Optional[Sequence[int]] = None) -> CtfSettings:
    """The :class:`CtfSettings` of a stack of ``n`` images from its CTF.json
    (read by ``formats.ctf_json.read_ctf_json``: one entry per tilt, stack order;
    defocus in Angstrom, astigmatism angle in degrees).  An entry's ``angle``
    must match ``angles`` (degrees) within 0.5 degree.  Entries of views not in
    ``keep`` (0-based; default all) are not used and may be null or not
    estimated (excluded views); they, and tilts not estimated, get NaN defocus
    (refused by :meth:`CtfSettings.subset` when used).  ``voltage`` kV, ``cs``
    mm and ``amp_contrast`` fraction are copied into the settings.

    Raises:
        InputError: when the file is missing or invalid (``formats.ctf_json.read_ctf_json``:
            JSON, entry count, values) or an entry's angle differs from the
            stack's by more than 0.5 degree.
    """
    entries = read_ctf_json(path, n_tilts=n, used=keep)
    du, dv, ang = [], [], []
    for i, e in enumerate(entries):
        if e["defocus_u"] is None:
            du.append(float("nan"))
            dv.append(float("nan"))
            ang.append(0.0)
            continue
        if angles is not None and e["angle"] is not None and abs(e["angle"] - angles[i]) > 0.5:
            raise InputError(f"{path}: entry {i + 1} is for tilt {e['angle']:g} deg but image "
                             f"{i + 1} of the stack is at {angles[i]:g} deg; give the CTF of this stack")
        du.append(e["defocus_u"])
        dv.append(e["defocus_v"])
        ang.append(e["astig_angle"])
    return CtfSettings(du, dv, ang, voltage, cs, amp_contrast)


def views_ctf(ctf_path: Optional[str], correction: str, n: int, angles: Sequence[float],
              keep: Sequence[int], voltage: float = 300.0, cs: float = 2.7,
              amp_contrast: float = 0.07) -> Optional[CtfSettings]:
    """The CTF of the views ``keep`` (0-based) of a stack of ``n`` images at
    ``angles`` (degrees), for both reconstruction back ends (built-in and
    novaCTF): read from ``ctf_path`` (:func:`load_ctf_settings`) when a
    correction is asked for or a CTF.json is given (it is then checked against
    the stack even if ``correction`` is 'none'); None when neither.

    Raises:
        InputError: when a correction has no CTF.json, the file is invalid or
            does not match the stack (:func:`load_ctf_settings`), or a used
            view has no estimated defocus (:meth:`CtfSettings.subset`).
    """
    if correction == "none" and not ctf_path:
        return None
    if not ctf_path:
        raise InputError(f"--ctf-correction {correction} needs --ctf CTF.json "
                         "(per-tilt defocus from 'cryotiger ctf')")
    return load_ctf_settings(ctf_path, n, angles, voltage, cs, amp_contrast,
                             keep=keep).subset(keep)


def stack_data_checked(mrc, angles, input_path: str, angles_path: str,
                       pixel_size: Optional[float] = None, keep: Optional[Sequence[int]] = None) -> tuple:
    """(data (n, y, x) memory-mapped, pixel size in A) of an open stack, after
    checking that ``angles`` has one angle per image (no two of the views in
    ``keep``, default all, at the same angle) and that a pixel size is known
    (``pixel_size`` when given, else the header's).  ``mrc``: an open stack
    (``formats.mrc.open_stack``); ``input_path`` and ``angles_path`` name the files in
    messages.

    Raises:
        InputError: when the angles do not match the stack
            (``formats.tlt.check_angles_match``), or ``pixel_size`` is not a positive
            finite number, or none is given and the header has none
            (``formats.mrc.resolve_pixel_size``).
    """
    from .formats.mrc import resolve_pixel_size
    from .formats.tlt import check_angles_match
    data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
    n = data.shape[0]
    dropped = [] if keep is None else sorted(set(range(n)) - set(keep))
    check_angles_match(angles, n, input_path, angles_path, excluded=dropped)
    # --pixel-size when given (refused unless finite and > 0), else the header's (required).
    px = resolve_pixel_size(pixel_size, input_path, header_px=mrc.voxel_size.x)
    return data, px


def kept_views(n: int, exclude=(), exclude_synthetic: Optional[str] = None,
               xf: Optional[np.ndarray] = None) -> list:
    """0-based stack indices to reconstruct from, of ``n`` images: all but the
    ``exclude``d views (0-based) and, with ``exclude_synthetic`` (an interpolation
    OUT.json), its synthetic and excluded ones.  Returns the sorted indices.

    Raises:
        InputError: for an excluded view outside the stack, ``xf`` with the
            wrong length, an ``exclude_synthetic`` file that is not the record
            of this stack (``record.experimental_views``), or fewer than 2
            views left.
    """
    if xf is not None and len(xf) != n:
        raise InputError(f"{len(xf)} transforms for {n} images; give one per image (.xf)")
    keep = experimental_views(exclude_synthetic, n) if exclude_synthetic else list(range(n))
    bad = [v for v in exclude if not 0 <= v < n]
    if bad:
        raise InputError(f"excluded view {bad[0] + 1} does not exist: the stack has {n} images")
    keep = [i for i in keep if i not in set(exclude)]
    if len(keep) < 2:
        raise InputError(f"{len(keep)} tilt(s) left after exclusions; a reconstruction needs at least 2")
    return keep


def reconstruct_file(input_path: str, angles_path: str, output_path: str, thickness: int,
                     ctf_path: Optional[str] = None, correction: str = "none",
                     exclude_synthetic: Optional[str] = None, exclude: Sequence[int] = (),
                     pixel_size: Optional[float] = None, voltage: float = 300.0, cs: float = 2.7,
                     amp_contrast: float = 0.07, progress: bool = True, label: str = "",
                     xf: Optional[np.ndarray] = None, **options) -> dict:
    """Reconstruct ``input_path`` (aligned stack) into ``output_path`` (MRC
    volume z, y, x with the voxel size in the header), atomically.

    ``exclude_synthetic``: OUT.json of the interpolation; its synthetic (and
    excluded) tilts are left out.  ``exclude``: 0-based views to leave out.
    ``xf`` (n, 2, 3): IMOD transforms applied to each image first (unaligned
    stack; see engine/align.py).  Other options as :func:`reconstruct`.
    Returns {'output', 'shape' (z, y, x), 'pixel_size' (A), 'views' (0-based
    kept), 'correction'}.

    Raises:
        InputError: for an unknown ``correction``, an output that would
            overwrite the input, unreadable angles or stack, or as
            :func:`kept_views`, :func:`stack_data_checked`, :func:`views_ctf`
            and :func:`reconstruct`; a kept view with NaN/inf values.
        RuntimeError: when the volume has NaN/inf values (nothing is written).
    """
    from .align import Aligner
    from .formats.mrc import check_finite_views, open_stack, write_volume
    from .formats.tlt import read_angles
    from .progress import Progress

    if correction not in CORRECTIONS:
        raise InputError(f"unknown CTF correction '{correction}'; use one of {', '.join(CORRECTIONS)}")
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise InputError(f"{output_path}: the output would overwrite the input; choose another name")
    angles = read_angles(angles_path)
    label = label or os.path.basename(input_path)
    with open_stack(input_path) as m:
        n = m.data.shape[0] if m.data.ndim == 3 else 1
        keep = kept_views(n, exclude, exclude_synthetic, xf)
        data, px = stack_data_checked(m, angles, input_path, angles_path, pixel_size, keep)
        check_finite_views(data, keep, input_path)          # before any work
        ctf = views_ctf(ctf_path, correction, n, angles, keep, voltage, cs, amp_contrast)
        aligner = Aligner(xf, data.shape[1:], label=label, views=keep)
        prog = Progress(len(keep), label, unit="view", enabled=progress)
        prog.log(f"{len(keep)} of {n} tilts, thickness {thickness}, binning {options.get('binning', 1)}, "
                 f"CTF correction {correction}")

        class _Views:
            def __len__(self):
                return len(keep)

            def __getitem__(self, j):
                img = np.asarray(data[keep[j]], dtype=np.float32)
                return aligner(img, keep[j])

        vol, out_px = reconstruct(_Views(), angles[keep], thickness, px, ctf=ctf,
                                  correction=correction, progress=prog, **options)
    if not np.all(np.isfinite(vol)):
        raise RuntimeError(f"{label}: the reconstruction has NaN/inf values")
    write_volume(output_path, vol, out_px)
    return {"output": output_path, "shape": tuple(int(v) for v in vol.shape), "pixel_size": out_px,
            "views": keep, "correction": correction}
