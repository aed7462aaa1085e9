"""Tilt-series simulator: project a 3D volume at any set of angles about one
tilt axis (y), with optional dose-dependent noise and CTF.

Geometry (the same as novaCTF and our reconstruction): volume axes (z, y, x),
projection of tilt angle theta onto detector coordinate
u = x cos(theta) + z sin(theta), v = y; coordinates relative to the volume
centre.  Images are (y, x) with the volume's x and y sizes (a slab seen at
high tilt is cut by the field of view, as in a real tilt series).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from .ctf_model import ctf_2d, ctf_phase


def phantom_volume(shape=(32, 64, 64), n_blobs: int = 30, seed: int = 0) -> np.ndarray:
    """A volume (z, y, x) of random soft balls and rods, float32, values ~[0, 1].

    ``shape``: (nz, ny, nx) voxels; ``n_blobs`` Gaussian balls plus
    n_blobs // 6 (at least 1) rods along y; ``seed``: the random generator's
    seed (same seed, same volume)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    vol = np.zeros(shape, dtype=np.float32)
    for _ in range(n_blobs):
        cz, cy, cx = rng.uniform(0.2, 0.8, 3) * np.array(shape)
        r = rng.uniform(1.5, max(2.0, min(shape) / 6))
        d2 = ((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / r ** 2
        vol += rng.uniform(0.3, 1.0) * np.exp(-d2 * 2).astype(np.float32)
    for _ in range(max(1, n_blobs // 6)):  # rods along y (like filaments)
        cz, cx = rng.uniform(0.25, 0.75, 2) * np.array([nz, nx])
        r = rng.uniform(1.0, 2.5)
        vol += 0.5 * np.exp(-(((z - cz) ** 2 + (x - cx) ** 2) / r ** 2)).astype(np.float32)
    return vol


def ray_samples(nz: int, nx: int, angle: float) -> tuple:
    """Sample points of the rays of tilt ``angle`` (degrees) through an x-z plane
    of nz x nx voxels: (w, zs, xs), w the depths along the beam (voxels from the
    centre, ascending) and zs, xs (depth, nx) voxel coordinates; the point of
    detector u and depth w is x = u cos - w sin, z = u sin + w cos."""
    th = np.deg2rad(angle)
    c, s = np.cos(th), np.sin(th)
    depth = int(np.ceil(abs(nz * c) + abs(nx * s))) + 2
    u = np.arange(nx) - (nx - 1) / 2.0
    w = np.arange(depth) - (depth - 1) / 2.0
    W, U = np.meshgrid(w, u, indexing="ij")
    xs = U * c - W * s + (nx - 1) / 2.0
    zs = U * s + W * c + (nz - 1) / 2.0
    return w, zs, xs


def ray_operator(nz: int, nx: int, angle: float, groups: Optional[np.ndarray] = None):
    """The line integrals of tilt ``angle`` (degrees) through an x-z plane of
    nz x nx voxels as a sparse matrix: row ``g * nx + u`` sums, over the ray
    samples of detector column u whose depth index is in group g
    (``groups``: one group number per depth sample of :func:`ray_samples`,
    ascending from 0; default all 0), the bilinear interpolation of the plane
    (raveled z-major, column ``z * nx + x``) at the sample; samples outside the
    plane count 0 (as ``scipy.ndimage.map_coordinates`` order 1, mode
    'constant').  The same for every y row: one matrix product projects all
    rows at once.  Returns a (n_groups * nx, nz * nx) scipy.sparse CSR matrix.
    """
    from scipy import sparse
    w, zs, xs = ray_samples(nz, nx, angle)
    g = np.zeros(len(w), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_groups = int(g.max()) + 1 if len(g) else 1
    z0 = np.floor(zs).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fz, fx = zs - z0, xs - x0
    inside = (zs >= 0) & (zs <= nz - 1) & (xs >= 0) & (xs <= nx - 1)
    row = g[:, None] * nx + np.arange(nx)[None, :]
    rows, cols, vals = [], [], []
    for dz, wz in ((0, 1 - fz), (1, fz)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            zi, xi = z0 + dz, x0 + dx
            ok = inside & (zi < nz) & (xi < nx)
            rows.append(row[ok])
            cols.append((zi * nx + xi)[ok])
            vals.append((wz * wx)[ok])
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_groups * nx, nz * nx))


def _planes(volume: np.ndarray) -> np.ndarray:
    """(z, y, x) -> (z * x, y) float64: every x-z plane raveled as a column."""
    nz, ny, nx = volume.shape
    return np.asarray(volume, dtype=np.float64).transpose(0, 2, 1).reshape(nz * nx, ny)


def project(volume: np.ndarray, angle: float, order: int = 1) -> np.ndarray:
    """Line integrals of ``volume`` (z, y, x) at tilt ``angle`` (degrees, about
    the y axis, the beam along z at 0) -> (y, x) float32 projection, in voxel
    value x voxels (samples along each ray interpolated with spline ``order``,
    1 = linear; see :func:`ray_samples`).  Order 1 is one sparse matrix product
    (:func:`ray_operator`) for all rows, ~30x faster than interpolating row by
    row, which other orders still do."""
    nz, ny, nx = volume.shape
    if order == 1:
        return np.asarray(ray_operator(nz, nx, angle) @ _planes(volume)).T.astype(np.float32)
    # Integrate along the beam direction w (in the rotated frame).
    _, zs, xs = ray_samples(nz, nx, angle)
    out = np.empty((ny, nx), dtype=np.float32)
    for j in range(ny):
        plane = volume[:, j, :]
        vals = ndimage.map_coordinates(plane, [zs, xs], order=order, mode="constant", cval=0.0)
        out[j] = vals.sum(axis=0)
    return out


@dataclass
class Acquisition:
    """Microscope and dose settings for simulation (units in the field comments;
    amplitude contrast is a fraction).  ``order``: 1-based acquisition rank of
    each tilt in stack order (default: stack order); the accumulated dose of a
    tilt is the dose of the tilts acquired before it."""
    pixel_size: float = 10.0            # Angstrom
    voltage: float = 300.0              # kV
    cs: float = 2.7                     # mm
    amp_contrast: float = 0.07
    defocus: Optional[Sequence[float]] = None   # per tilt (Angstrom, underfocus > 0); None = no CTF
    astigmatism: float = 0.0            # defocus_u - defocus_v (Angstrom)
    astig_angle: float = 0.0            # degrees
    dose_per_tilt: Optional[float] = None  # e/A^2 per image; None = no noise
    order: Optional[Sequence[int]] = None  # acquisition order (1-based), for dose accumulation
    defocus_gradient: bool = False      # defocus varies across the tilted image (along x)
    seed: int = 0
    poisson: bool = True                # False: the noise-free expectation (same dose fading)
    extra: dict = field(default_factory=dict)


def simulate_tilt_series(volume: np.ndarray, angles: Sequence[float],
                         acq: Optional[Acquisition] = None) -> np.ndarray:
    """Project ``volume`` at ``angles``; returns (n, y, x) float32.

    ``volume``: (z, y, x) any real dtype; ``angles``: degrees about y;
    ``acq``: default ``Acquisition()`` (no CTF, no noise).  Projections are
    scaled so that their 99.5th percentile |value| is 1, then p = 0.3 x that
    (phase contrast) and image = 1 - p.

    With ``acq.defocus``: p is multiplied by the transfer sin(chi) (=
    -``ctf_model.ctf_2d``) in Fourier space (weak-phase model: image =
    1 - IFFT(sin(chi) FFT(p)), so dense matter is dark at low frequency); with
    ``acq.defocus_gradient`` the image is cut in strips along x and each
    strip gets the defocus of its height above the tilt axis.
    With ``acq.dose_per_tilt``: Poisson counts of dose * pixel_size^2
    electrons per pixel; the signal fades with accumulated dose
    (exp(-accumulated dose / 60 e/A^2) at all frequencies, a crude damage model).
    With ``acq.poisson`` False: the same series without the counting noise
    (the expectation of the noisy one: a noise-free truth for benchmarks).
    """
    acq = acq or Acquisition()
    rng = np.random.default_rng(acq.seed)
    angles = list(angles)
    n = len(angles)
    projections = np.stack([project(volume, a) for a in angles])
    scale = np.percentile(np.abs(projections), 99.5) or 1.0
    projections = projections / scale                     # contrast of order 1
    out = np.empty_like(projections)
    order = np.asarray(acq.order if acq.order is not None else np.arange(1, n + 1))
    accum = np.zeros(n)
    if acq.dose_per_tilt:
        by_time = np.argsort(order)
        accum[by_time] = np.arange(n) * acq.dose_per_tilt
    for i, a in enumerate(angles):
        p = projections[i] * 0.3                          # phase contrast amplitude
        if acq.dose_per_tilt:
            p = p * np.exp(-accum[i] / 60.0)
        if acq.defocus is not None:
            dz = float(acq.defocus[i])
            du, dv = dz + acq.astigmatism / 2, dz - acq.astigmatism / 2
            if acq.defocus_gradient:
                ny, nx = p.shape
                xs = (np.arange(nx) - (nx - 1) / 2.0) * acq.pixel_size
                strips = np.array_split(np.arange(nx), 8)
                res = np.zeros_like(p)
                for strip in strips:
                    shift = float(np.mean(xs[strip])) * np.tan(np.deg2rad(a))
                    img = _ctf_image(p, acq, du + shift, dv + shift)
                    res[:, strip] = img[:, strip]
                p = res
            else:
                p = _ctf_image(p, acq, du, dv)
        img = 1.0 - p
        if acq.dose_per_tilt and acq.poisson:
            electrons = acq.dose_per_tilt * acq.pixel_size ** 2
            img = rng.poisson(np.clip(img, 0, None) * electrons).astype(np.float32) / electrons
        out[i] = img
    return out.astype(np.float32)


def _ctf_image(p, acq, du, dv):
    c = ctf_2d(p.shape, acq.pixel_size, du, dv, acq.astig_angle, acq.voltage, acq.cs,
               acq.amp_contrast, rfft=True)
    return np.fft.irfft2(np.fft.rfft2(p) * -c, s=p.shape).astype(np.float32)


def load_volume(path: str) -> tuple:
    """Read a volume: ((z, y, x) float32 array, voxel size in Angstrom, 0 when
    unknown).  MRC through the engine's checked reader, TOM/EM (little endian)
    and TIFF stacks (voxel size 0: give it on the command line); the format is
    chosen by the extension (.tif/.tiff, .em, anything else MRC).

    Raises:
        InputError: for a missing or bad MRC file or NaN/inf values
            (``formats.mrc.read_stack``).
        OSError, ValueError, KeyError: from the TIFF and EM readers, which do
            not check their files (KeyError: an EM data type other than
            int8/16/32, float32/64).
    """
    import os
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tif", ".tiff"):
        try:
            import tifffile
            vol = tifffile.imread(path)
        except ImportError:
            from PIL import Image
            im = Image.open(path)
            frames = []
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                frames.append(np.array(im))
            vol = np.stack(frames)
        return np.asarray(vol, dtype=np.float32), 0.0
    if ext == ".em":
        return _read_em(path), 0.0
    # The engine's checked reader: header fields, modes, IMOD 8-bit rule, NaN/inf;
    # voxel size 0 when the header has none usable.
    from .formats.mrc import read_stack
    return read_stack(path)


def _read_em(path: str) -> np.ndarray:
    """Read a TOM/EM-format volume (512-byte header, little endian)."""
    with open(path, "rb") as f:
        header = f.read(512)
        dtype_code = header[3]
        nx, ny, nz = np.frombuffer(header[4:16], dtype="<i4")
        dtypes = {1: "<i1", 2: "<i2", 4: "<i4", 5: "<f4", 9: "<f8"}
        data = np.frombuffer(f.read(), dtype=dtypes[dtype_code])[: nx * ny * nz]
    return data.reshape(nz, ny, nx).astype(np.float32)


def simulate_thick_ctf(volume: np.ndarray, angles: Sequence[float], pixel_size: float,
                       defocus: Sequence[float], voltage: float = 300.0, cs: float = 2.7,
                       amp_contrast: float = 0.07, plane_step: Optional[float] = None,
                       contrast: float = 0.3) -> np.ndarray:
    """Tilt series (n, y, x) of a thick ``volume`` (z, y, x) where every height
    along the beam gets its own defocus (``defocus[i] - w * pixel_size``, the
    model ``reconstruct.reconstruct`` corrects with ``correction='3d'``).

    The volume is projected in layers ``plane_step`` Angstrom thick along the
    beam (default: one voxel); each layer's projection is multiplied by the
    CTF of its height and the layers are summed.  Contrast as
    :func:`simulate_tilt_series`: image = 1 - transfer(p),
    p = ``contrast`` * projection / (99.5th percentile of |projections|).

    ``angles`` in degrees, ``pixel_size`` and ``defocus`` (one per tilt,
    underfocus > 0) in Angstrom, ``voltage`` kV, ``cs`` mm, ``amp_contrast``
    fraction; no astigmatism, no noise.  Returns (n, y, x) float32.  The
    per-height defocus is the 3D-CTF model of novaCTF (Turonova et al.,
    J. Struct. Biol. 199, 2017).
    """
    volume = np.asarray(volume, dtype=np.float32)
    nz, ny, nx = volume.shape
    step_px = max(1.0, (plane_step or pixel_size) / pixel_size)
    layers_all = []
    planes = _planes(volume)
    for a in angles:
        w = ray_samples(nz, nx, a)[0]
        layer = np.rint(w / step_px).astype(int)            # ascending along w
        heights, groups = np.unique(layer, return_inverse=True)
        parts = np.asarray(ray_operator(nz, nx, a, groups) @ planes)         # (layers * x, y)
        parts = parts.reshape(len(heights), nx, ny).transpose(0, 2, 1).astype(np.float32)
        layers_all.append((heights * step_px, parts))
    scale = np.percentile(np.abs(np.stack([p.sum(axis=0) for _, p in layers_all])), 99.5) or 1.0
    fy = np.fft.fftfreq(ny, d=pixel_size)[:, None]
    fx = np.fft.rfftfreq(nx, d=pixel_size)[None, :]
    fy, fx = np.broadcast_arrays(fy, fx)
    out = np.empty((len(angles), ny, nx), dtype=np.float32)
    for i, (heights, parts) in enumerate(layers_all):
        spec = np.zeros(fy.shape, dtype=np.complex128)
        for hw, part in zip(heights, parts):
            df = float(defocus[i]) - hw * pixel_size
            chi = ctf_phase(fy, fx, df, df, 0.0, voltage, cs, amp_contrast)
            spec += np.fft.rfft2(part * (contrast / scale)) * np.sin(chi)
        out[i] = 1.0 - np.fft.irfft2(spec, s=(ny, nx))
    return out
