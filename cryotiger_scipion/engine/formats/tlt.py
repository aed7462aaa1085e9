"""Tilt-angle files (IMOD .tlt / .rawtlt): one angle in degrees per line,
one line per image, in stack order.

Format: IMOD's tilt-angle files, as read by ``tilt`` (TILTFILE option,
https://bio3d.colorado.edu/imod/doc/man/tilt.html) and written by
``tiltalign``/``etomo``.  The reader is strict where a guess could go wrong (more than
one column is refused, never picked from) and tolerant where nothing can
(comments, blank lines, CRLF, a BOM, UTF-16); the writer writes 4 decimals.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from .. import InputError
from ..outputs import atomic_path
from .text import read_text_lines


def read_angles(path: str) -> np.ndarray:
    """Read a .tlt/.rawtlt file: one angle (degrees) per line, stack order.

    Rules (README, "Bad input"): exactly one number per line (IMOD's format);
    a line with more than one column (e.g. ``index<TAB>angle`` or
    ``angle,dose``) is refused with the column count, never guessed; blank
    lines, comments (from ``#`` to the line end), CRLF line ends, a UTF-8 BOM
    and spaces around the number are accepted; NaN/inf and angles outside [-90, 90] are
    refused; the order is free (stack order, need not be monotonic).
    Returns (n,) float64.  Raises InputError with the file and line.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: tilt-angle file not found; give a .tlt/.rawtlt "
                         "file with one angle (degrees) per line")
    angles = []
    for lineno, line in enumerate(read_text_lines(path, "tilt-angle file"), 1):
        text = line.split("#", 1)[0].strip()       # '#' starts a comment
        if not text:
            continue
        columns = [c for c in re.split(r"[\s,;]+", text) if c]
        if len(columns) != 1:
            raise InputError(f"{path}, line {lineno}: {len(columns)} columns ('{text}'); a tilt-angle "
                             "file (.tlt/.rawtlt) holds one angle in degrees per line: keep only "
                             "the angle column")
        try:
            value = float(columns[0])
        except ValueError:
            raise InputError(f"{path}, line {lineno}: '{columns[0]}' is not a tilt angle; "
                             "the file must hold one angle in degrees per line") from None
        if not np.isfinite(value) or abs(value) > 90:
            raise InputError(f"{path}, line {lineno}: tilt angle {value} is outside "
                             "[-90, 90] degrees; check the file")
        angles.append(value)
    if not angles:
        raise InputError(f"{path}: no tilt angles in the file; give one angle per line")
    return np.asarray(angles, dtype=np.float64)


def write_angles(path: str, angles: Sequence[float]) -> None:
    """Write ``angles`` ((n,) degrees, stack order) as a .tlt at ``path``: one
    angle per line with 4 decimals, atomically (``outputs.atomic_path``).
    Raises OSError (or OutputError inside an output set) when the file
    cannot be written."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for a in angles:
                f.write(f"{float(a):.4f}\n")


def check_angles_match(angles: np.ndarray, n_images: int, stack_name: str, tlt_name: str,
                       excluded: Sequence[int] = ()) -> None:
    """Check that ``angles`` ((n,) degrees, stack order, from ``tlt_name``)
    fit the stack ``stack_name`` of ``n_images`` images.

    Returns None.  Raises InputError (one line) unless there is one angle per
    image, every angle is a number in [-90, 90] degrees and no two used
    images share an angle.  ``excluded`` (0-based views that are not used)
    may share their angle with another view (an interpolated stack carries an
    excluded real view beside the synthetic tilt made at its angle)."""
    bad = [a for a in np.asarray(angles, dtype=float) if not (np.isfinite(a) and abs(a) <= 90)]
    if bad:
        raise InputError(f"{tlt_name}: tilt angle {bad[0]:g} is not a number in [-90, 90] degrees; "
                         "check the angles")
    if len(angles) != n_images:
        raise InputError(f"{stack_name}: {n_images} images in the stack but {len(angles)} "
                         f"angles in {tlt_name}; give a tilt-angle file with one angle per image")
    skip = set(int(i) for i in excluded)
    used = np.asarray([a for i, a in enumerate(angles) if i not in skip], dtype=float)
    sorted_angles = np.sort(used, kind="stable")
    dup = np.flatnonzero(np.diff(sorted_angles) <= 1e-6)
    if len(dup):
        a = sorted_angles[dup[0]]
        raise InputError(f"{tlt_name}: tilt angle {a:g} appears more than once; every "
                         "image needs its own angle (check the .tlt file, or exclude the "
                         "duplicate view with --exclude)")
