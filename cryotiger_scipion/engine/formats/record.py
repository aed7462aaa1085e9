"""The interpolation record (OUT.json): its writer (``cryotiger interpolate``)
and its reader for the commands downstream (ctf, reconstruct, holdout,
interpolate on an interpolated stack, export, the Scipion protocols).

Format: cryotiger's own JSON (no outside specification): a list with one
object per output slice in stack order; the fields are documented in the
README ("What the output tilts are") and written by
``engine.plan.OutputTilt.to_json`` (``index``, ``angle`` in degrees,
``synthetic``, ``excluded``, ``sources``, ``weights``, ``fraction``,
``acquisition_order``, ``dose``/``accum_dose``/``dose_before``/
``accumulated_dose_after`` in e/A^2, ``confidence`` ...).  Fields are only
ever added; checks outside the repository read them.

``cryotiger interpolate --output OUT.mrc`` writes OUT.json beside the stack:
one entry per output slice, stack order, with ``angle``, ``synthetic`` and
``excluded`` (among others; see engine/plan.py).  Views excluded in the input
(``--exclude``, disabled TiltImages) are carried into the output at their own
angle, flagged ``excluded``; they are never anchors of an interpolation, and
every command downstream skips them:

* ctf: not estimated (CTF.json entry with ``excluded`` true and null defocus);
* reconstruct: left out (as ``--exclude``);
* holdout and interpolate: excluded (as ``--exclude``); holdout also leaves out
  the synthetic tilts (it evaluates restoring real tilts only).

An excluded view may share its angle with a synthetic tilt (``--exclude 5`` on
evenly spaced tilts puts the new midpoint of views 4 and 6 at view 5's
angle): duplicate angles are accepted when all but one of the views at that
angle are excluded.

The record is found as the ``--plan``/``--exclude-synthetic`` file when given
(it must match the stack), else as STEM.json beside STEM.mrc when that file is
an interpolation record of this stack (one entry per image, angles equal to
the stack's); any other JSON file there is ignored.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence

from .. import InputError


def write_record(path: str, entries: List[dict]) -> None:
    """Write the interpolation record ``entries`` (``plan.OutputTilt.to_json``,
    one per output slice, stack order) as indented JSON at ``path``,
    atomically (``outputs.atomic_path``: the old record or the new one, never a
    mix).  Raises OSError (or OutputError inside an output set) when the file
    cannot be written."""
    from ..outputs import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(entries, f, indent=1)


def read_record(path: str) -> List[dict]:
    """Read an interpolation record OUT.json: a list with one dict per output
    slice, stack order (fields: README "What the output tilts are"; angles in
    degrees, doses in e/A^2).  Raises InputError (one line) for a missing,
    unreadable, binary or malformed file, or JSON that is not a list of
    objects.  The entries are not checked against a stack here (see
    :func:`find_record`, the lenient lookup beside a stack, and
    :func:`experimental_views`)."""
    if not os.path.exists(path):
        raise InputError(f"{path}: interpolation record not found; give the OUT.json written "
                         "beside the interpolated stack by 'cryotiger interpolate'")
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except (ValueError, OSError) as exc:     # UnicodeDecodeError is a ValueError
        raise InputError(f"{path}: not an interpolation record (invalid JSON: {exc}); give the "
                         "OUT.json written by 'cryotiger interpolate'") from None
    if not isinstance(plan, list) or not all(isinstance(e, dict) for e in plan):
        raise InputError(f"{path}: not an interpolation record (expected a list with one object "
                         "per slice); give the OUT.json written by 'cryotiger interpolate'")
    return plan


def _load(path: str) -> object:
    with open(path) as f:
        return json.load(f)


def _matches(record: object, n: int, angles: Optional[Sequence[float]]) -> Optional[str]:
    """None when ``record`` is an interpolation record of ``n`` images at
    ``angles``; else what does not match."""
    if not isinstance(record, list) or not all(isinstance(e, dict) for e in record):
        return "not a list of per-image entries"
    if len(record) != n:
        return f"{len(record)} entries but {n} images in the stack"
    for i, e in enumerate(record):
        if "synthetic" not in e or "angle" not in e:
            return f"entry {i + 1} has no 'synthetic'/'angle'"
        if int(e.get("index", i)) != i:
            return f"entry {i + 1} has index {e.get('index')}; the record is not in stack order"
        if angles is not None and abs(float(e["angle"]) - float(angles[i])) > 0.01:
            return (f"entry {i + 1} is at {float(e['angle']):g} degrees but image {i + 1} at "
                    f"{float(angles[i]):g}")
    return None


def record_beside(stack_path: str) -> str:
    """The path STEM.json beside the stack STEM.mrc (where interpolate writes
    the record); nothing is read.  Returns a str."""
    return os.path.splitext(stack_path)[0] + ".json"


def find_record(stack_path: str, n: int, angles: Optional[Sequence[float]] = None,
                explicit: Optional[str] = None) -> Optional[List[dict]]:
    """The interpolation record of a stack of ``n`` images (see module doc).

    ``angles`` ((n,) degrees, stack order): when given, each entry's angle
    must match within 0.01 degrees.  ``explicit``: a record the user named
    (--plan); InputError when it is missing, not a record (:func:`read_record`)
    or does not match the stack (count, stack order, angles).  Else STEM.json
    beside ``stack_path`` when it is a matching record, or None (a missing,
    unreadable or non-matching file there is ignored).  Returns the list of
    entries (dicts, stack order) or None.
    """
    if explicit:
        record = read_record(explicit)
        problem = _matches(record, n, angles)
        if problem:
            raise InputError(f"{explicit}: {problem}; give the .json written beside this "
                             "stack by 'cryotiger interpolate'")
        return record
    path = record_beside(stack_path)
    if not os.path.isfile(path):
        return None
    try:
        record = _load(path)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return record if _matches(record, n, angles) is None else None


def experimental_views(path: str, n: int) -> List[int]:
    """0-based stack indices of the real (not synthetic, not excluded) tilts of
    the interpolation record at ``path`` (``reconstruct --exclude-synthetic``).
    Raises InputError when the file is not a record (:func:`read_record`)
    or does not describe a stack of ``n`` images in stack order."""
    record = read_record(path)
    problem = _matches(record, n, None)
    if problem:
        raise InputError(f"{path}: {problem}; give the .json written beside this stack by "
                         "'cryotiger interpolate'")
    return [i for i, e in enumerate(record)
            if not e.get("synthetic", False) and not e.get("excluded", False)]


def excluded_views(record: Optional[List[dict]]) -> List[int]:
    """0-based stack indices (list of int) of the views that ``record`` (a
    list of entries as :func:`read_record` returns, or None = no record)
    flags ``excluded``."""
    return [i for i, e in enumerate(record or []) if e.get("excluded", False)]


def low_confidence_views(record: Optional[List[dict]], threshold: float) -> List[int]:
    """0-based indices of the synthetic tilts whose ``confidence`` (issue 13:
    mean of the confidence map, 0..1) is below ``threshold``.  A synthetic entry
    without a confidence (made by a method without maps, e.g. linear) counts as
    below any threshold > 0: its reliability is unknown.  ``record``: entries
    as :func:`read_record` returns, or None.  Returns a list of int; ValueError
    for a confidence that is not a number."""
    out = []
    for i, e in enumerate(record or []):
        if e.get("synthetic", False):
            c = e.get("confidence")
            if c is None or float(c) < threshold:
                out.append(i)
    return out


def synthetic_views(record: Optional[List[dict]]) -> List[int]:
    """0-based stack indices (list of int) of the synthetic tilts of
    ``record`` (entries as :func:`read_record` returns, or None)."""
    return [i for i, e in enumerate(record or []) if e.get("synthetic", False)]
