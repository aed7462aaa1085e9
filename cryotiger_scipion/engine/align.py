"""Apply per-view 2D transforms (IMOD .xf convention) to make an aligned stack.

An .xf line is ``A11 A12 A21 A22 DX DY``: a point x of the raw image (pixel
coordinates relative to the image centre, x right, y up the rows) moves to
x' = A x + d in the aligned image, as IMOD's newstack -xform does.  We sample
the raw image at x = A^-1 (x' - d), bilinear, with edge values repeated.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import InputError


def read_xf(path: str) -> np.ndarray:
    """Read an IMOD .xf file -> (n, 2, 3) array [[A11, A12, DX], [A21, A22, DY]].

    One line per view, six numbers ``A11 A12 A21 A22 DX DY``; blank lines are
    skipped.  InputError (one line naming the file and line) for a missing or
    binary file, a line without six numbers, NaN/inf values or a singular
    matrix, so that every command refuses before any work.
    """
    from .io import read_text_lines
    rows = []
    for lineno, line in enumerate(read_text_lines(path, "transform file (.xf)"), 1):
        if not line.strip():
            continue
        try:
            v = [float(x) for x in line.split()]
        except ValueError:
            raise InputError(f"{path}, line {lineno}: not an IMOD .xf line ('{line.strip()[:60]}'); "
                             "expected 6 numbers A11 A12 A21 A22 DX DY") from None
        if len(v) != 6:
            raise InputError(f"{path}, line {lineno}: expected 6 numbers "
                             f"(A11 A12 A21 A22 DX DY), found {len(v)}")
        if not all(np.isfinite(v)):
            raise InputError(f"{path}, line {lineno}: NaN or infinite value in the transform; "
                             "fix the alignment (e.g. redo it in IMOD)")
        if abs(v[0] * v[3] - v[1] * v[2]) < 1e-12:
            raise InputError(f"{path}, line {lineno}: the transform matrix is singular "
                             "(determinant 0); fix the alignment")
        rows.append([[v[0], v[1], v[4]], [v[2], v[3], v[5]]])
    if not rows:
        raise InputError(f"{path}: no transforms in the file; give an IMOD .xf with one line per view")
    return np.asarray(rows, dtype=np.float64)


def write_xf(path: str, xf: np.ndarray) -> None:
    with open(path, "w") as f:
        for m in np.asarray(xf):
            f.write("%12.7f %12.7f %12.7f %12.7f %12.3f %12.3f\n"
                    % (m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]))


def is_identity(xf: np.ndarray, tol: float = 1e-6) -> bool:
    m = np.asarray(xf)
    return bool(np.allclose(m[:2, :2], np.eye(2), atol=tol) and np.allclose(m[:, 2], 0, atol=tol))


def apply_xf(image: np.ndarray, xf: np.ndarray) -> np.ndarray:
    """Return ``image`` (y, x) resampled by one 2x3 transform (see module doc)."""
    if is_identity(xf):
        return np.asarray(image, dtype=np.float32)
    ny, nx = image.shape
    a = np.asarray(xf, dtype=np.float64)[:, :2]
    d = np.asarray(xf, dtype=np.float64)[:, 2]
    try:
        ainv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise InputError("a transform matrix is singular; check the alignment") from None
    cx, cy = nx / 2.0, ny / 2.0
    # In (row=y, col=x) index space: raw = M_rc @ out + off
    m_xy = ainv
    m_rc = np.array([[m_xy[1, 1], m_xy[1, 0]], [m_xy[0, 1], m_xy[0, 0]]])
    c_rc = np.array([cy, cx])
    d_rc = np.array([d[1], d[0]])
    offset = c_rc - m_rc @ (c_rc + d_rc)
    out = ndimage.affine_transform(np.asarray(image, dtype=np.float32), m_rc, offset=offset,
                                   order=1, mode="nearest")
    return out.astype(np.float32, copy=False)
