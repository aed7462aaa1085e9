"""IMOD .xf files: one 2D linear transform per image of a stack.

Format: IMOD's transform files (``xfmodel``/``newstack``/``xftoxg`` man pages,
https://bio3d.colorado.edu/imod/doc/man/newstack.html and
https://bio3d.colorado.edu/imod/doc/man/xfmodel.html): one line per view,
six numbers ``A11 A12 A21 A22 DX DY``; a raw point (X, Y), in pixels from the
image centre, goes to ``X' = A11 X + A12 Y + DX``, ``Y' = A21 X + A22 Y + DY``
(the convention and the resampling are in ``engine/align.py``).  In memory a
transform is the (2, 3) matrix ``[[A11, A12, DX], [A21, A22, DY]]``; a stack's
transforms are (n, 2, 3) float64, shifts in pixels.
"""
from __future__ import annotations

import numpy as np

from .. import InputError
from .text import read_text_lines


def read_xf(path: str) -> np.ndarray:
    """Read the IMOD .xf file ``path``.

    One line per view, six numbers ``A11 A12 A21 A22 DX DY``; blank lines are
    skipped (text decoding: :func:`formats.text.read_text_lines`).  Returns
    (n, 2, 3) float64, one ``[[A11, A12, DX], [A21, A22, DY]]`` per view in
    file order (shifts in pixels).  Raises InputError (one line naming the
    file and line) for a missing, binary or empty file, a line without six
    numbers, NaN/inf values or a singular matrix, so that every command
    refuses before any work.
    """
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
    """Write the transforms ``xf`` ((n, 2, 3) as :func:`read_xf` returns, or
    (n, 3, 3) with the last row ignored; shifts in pixels) as an IMOD .xf at
    ``path``: one line ``A11 A12 A21 A22 DX DY`` per view, in IMOD's column
    layout (7 decimals for the matrix, 3 for the shifts).  The file is written
    in place (callers write into their own work or input folders); OSError
    when it cannot be written."""
    with open(path, "w") as f:
        for m in np.asarray(xf):
            f.write("%12.7f %12.7f %12.7f %12.7f %12.3f %12.3f\n"
                    % (m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]))
