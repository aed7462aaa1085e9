"""Apply per-view 2D transforms (IMOD .xf convention) to make an aligned stack.

IMOD's convention (newstack -xform, documented in IMOD's xfmodel/newstack man
pages and checked in tests/engine/test_align_simulate.py against an independent
computation): an .xf line is ``A11 A12 A21 A22 DX DY``; a point (X, Y) of the raw
image goes to

    X' = A11 X + A12 Y + DX,   Y' = A21 X + A22 Y + DY

in the aligned image.  X runs along the columns, Y along the rows (row index
increasing), both measured from the image centre, which for ``n`` pixels
numbered from 0 is at pixel index ``(n - 1) / 2`` (IMOD counts coordinates from
0 at the left edge of the first pixel, centre n/2).  The output frame has its
own centre the same way.  We sample the raw image at X = A^-1 (X' - D),
bilinear, with edge values repeated.

Output frame (as newstack with ``-size``): when the transforms rotate the
images by about 90 degrees (a tilt axis near the x axis), the aligned frame is
the raw frame turned by 90 degrees (nx and ny swapped), so that the rotated
image fits; see :func:`aligned_shape`.  A warning is printed when a view loses
more than :data:`CUT_WARN_FRACTION` of its area outside the aligned frame.
"""
from __future__ import annotations

import math
import sys
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from . import InputError

CUT_WARN_FRACTION = 0.05


def is_identity(xf: np.ndarray, tol: float = 1e-6) -> bool:
    """True when one 2x3 transform [[A11, A12, DX], [A21, A22, DY]] is the identity
    within ``tol`` (matrix part and shift in pixels)."""
    m = np.asarray(xf)
    return bool(np.allclose(m[:2, :2], np.eye(2), atol=tol) and np.allclose(m[:, 2], 0, atol=tol))


def rotation_deg(xf: np.ndarray) -> float:
    """Rotation angle (degrees, counter-clockwise from +X towards +Y) of the
    matrix part of one 2x3 transform: atan2(A21 - A12, A11 + A22) (the angle of
    the rotation closest to A; exact for rotation x magnification).

    ``xf``: one (2, 3) transform [[A11, A12, DX], [A21, A22, DY]]."""
    a = np.asarray(xf, dtype=np.float64)[:, :2]
    return math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))


def aligned_shape(xfs: Optional[np.ndarray], shape_yx: Sequence[int]) -> tuple:
    """(ny, nx) of the aligned frame for raw images of ``shape_yx``: the raw
    frame, or nx and ny swapped when most transforms rotate by 90 +- 45
    degrees (or 270 +- 45), as newstack -size NY,NX would be set for a tilt
    axis near the x axis.

    ``xfs``: (n, 2, 3) transforms or None (the raw frame); ``shape_yx``: raw
    image (ny, nx) in pixels."""
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    if xfs is None or len(xfs) == 0:
        return ny, nx
    quarter = [abs(math.sin(math.radians(rotation_deg(m)))) > math.sqrt(0.5) for m in xfs]
    if sum(quarter) * 2 > len(quarter):
        return nx, ny
    return ny, nx


def cut_fraction(xf: np.ndarray, shape_yx: Sequence[int], out_shape: Sequence[int],
                 samples: int = 64) -> float:
    """Fraction (0..1) of the raw image's area that one transform moves
    outside the aligned frame ``out_shape`` (ny, nx); sampled on a grid of
    ``samples`` x ``samples`` points.

    ``xf``: one (2, 3) transform; ``shape_yx``: raw image (ny, nx) in pixels;
    centres at (n - 1) / 2 as in the module doc."""
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    nyo, nxo = int(out_shape[0]), int(out_shape[1])
    a = np.asarray(xf, dtype=np.float64)
    ys = np.linspace(0, ny - 1, min(samples, ny)) - (ny - 1) / 2.0
    xs = np.linspace(0, nx - 1, min(samples, nx)) - (nx - 1) / 2.0
    X, Y = np.meshgrid(xs, ys)
    xo = a[0, 0] * X + a[0, 1] * Y + a[0, 2] + (nxo - 1) / 2.0
    yo = a[1, 0] * X + a[1, 1] * Y + a[1, 2] + (nyo - 1) / 2.0
    inside = (xo >= -0.5) & (xo <= nxo - 0.5) & (yo >= -0.5) & (yo <= nyo - 0.5)
    return float(1.0 - inside.mean())


def apply_xf(image: np.ndarray, xf: np.ndarray,
             out_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Return ``image`` (y, x) resampled by one 2x3 transform (see module doc)
    into a frame of ``out_shape`` (ny, nx; default: the raw shape), float32.

    Bilinear sampling of the raw image at A^-1 (X' - D), edge values repeated
    (as IMOD newstack -xform with linear interpolation); the identity in the
    same frame returns the image as float32 without resampling.

    Raises:
        InputError: when the transform's matrix is singular.
    """
    ny, nx = image.shape
    nyo, nxo = (ny, nx) if out_shape is None else (int(out_shape[0]), int(out_shape[1]))
    if is_identity(xf) and (nyo, nxo) == (ny, nx):
        return np.asarray(image, dtype=np.float32)
    a = np.asarray(xf, dtype=np.float64)[:, :2]
    d = np.asarray(xf, dtype=np.float64)[:, 2]
    try:
        ainv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise InputError("a transform matrix is singular; check the alignment") from None
    # In (row=y, col=x) index space: raw = M_rc @ (out - c_out - d) + c_in
    m_rc = np.array([[ainv[1, 1], ainv[1, 0]], [ainv[0, 1], ainv[0, 0]]])
    c_in = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    c_out = np.array([(nyo - 1) / 2.0, (nxo - 1) / 2.0])
    d_rc = np.array([d[1], d[0]])
    offset = c_in - m_rc @ (c_out + d_rc)
    out = ndimage.affine_transform(np.asarray(image, dtype=np.float32), m_rc, offset=offset,
                                   output_shape=(nyo, nxo), order=1, mode="nearest")
    return out.astype(np.float32, copy=False)


class FramedXf(np.ndarray):
    """(n, 2, 3) transforms that carry the aligned frame the user asked for
    (``aligned_size`` = (nx, ny), as newstack -size); see :func:`with_frame`.
    A numpy array view: it behaves as the plain (n, 2, 3) float64 array."""
    aligned_size: Optional[tuple] = None

    def __array_finalize__(self, obj):
        self.aligned_size = getattr(obj, "aligned_size", None)


def with_frame(xfs: np.ndarray, size: Optional[str]) -> np.ndarray:
    """``xfs`` with the aligned frame given as 'NX,NY' (pixels, newstack's
    -size), or unchanged when ``size`` is empty.  Returns a :class:`FramedXf`
    view (n, 2, 3) float64 with ``aligned_size`` = (nx, ny).

    Raises:
        InputError: when ``size`` is not two whole numbers NX,NY, or one is below 1.
    """
    if not size:
        return xfs
    try:
        nx, ny = (int(v) for v in str(size).replace(" ", "").split(","))
    except ValueError:
        raise InputError(f"--aligned-size '{size}': give two whole numbers NX,NY (pixels), "
                         "e.g. 4096,4096") from None
    if nx < 1 or ny < 1:
        raise InputError(f"--aligned-size '{size}': both sizes must be at least 1 pixel")
    out = np.asarray(xfs, dtype=np.float64).view(FramedXf)
    out.aligned_size = (nx, ny)
    return out


class Aligner:
    """The per-view transforms of one stack and its aligned frame.

    ``xfs`` (n, 2, 3) or None (already aligned); ``shape_yx`` the raw image
    shape.  ``shape`` is the aligned (ny, nx): the size carried by ``xfs``
    (:func:`with_frame`, --aligned-size) or :func:`aligned_shape`;
    ``aligner(image, i)`` resamples view ``i`` (0-based) into it.  On
    construction, views that lose more than :data:`CUT_WARN_FRACTION` of their
    area outside the frame are reported on stderr (one warning line), unless
    ``warn`` is False.  ``label`` names the stack in that warning; ``views``
    (0-based, default all) are the views checked.

    Calling it returns (ny, nx) float32 (:func:`apply_xf`; the image as float32
    when ``xfs`` is None).  Raises InputError for a singular transform.
    """

    def __init__(self, xfs: Optional[np.ndarray], shape_yx: Sequence[int], label: str = "",
                 warn: bool = True, views: Optional[Sequence[int]] = None):
        size = getattr(xfs, "aligned_size", None)
        self.xfs = None if xfs is None else np.asarray(xfs, dtype=np.float64)
        self.raw_shape = (int(shape_yx[0]), int(shape_yx[1]))
        self.shape = ((int(size[1]), int(size[0])) if size
                      else aligned_shape(self.xfs, self.raw_shape))
        self.cut = {}
        if self.xfs is not None:
            for i in (range(len(self.xfs)) if views is None else views):
                self.cut[int(i)] = cut_fraction(self.xfs[i], self.raw_shape, self.shape)
            worst = sorted((f, i) for i, f in self.cut.items() if f > CUT_WARN_FRACTION)
            if worst and warn:
                f, i = worst[-1]
                print(f"cryotiger: warning: {label + ': ' if label else ''}the transforms move "
                      f"part of {len(worst)} view(s) outside the aligned {self.shape[1]}x"
                      f"{self.shape[0]} frame (view {i + 1}: {100 * f:.0f}% of its area cut); "
                      "check the .xf (IMOD convention, centre at (n-1)/2) or align to a "
                      "larger frame first", file=sys.stderr)

    def __call__(self, image: np.ndarray, i: int) -> np.ndarray:
        if self.xfs is None:
            return np.asarray(image, dtype=np.float32)
        return apply_xf(image, self.xfs[i], self.shape)
