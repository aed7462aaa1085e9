"""The interpolation record (OUT.json) read by the commands downstream of
``cryotiger interpolate``.

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

from . import InputError


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
    """STEM.json beside STEM.mrc (where interpolate writes it)."""
    return os.path.splitext(stack_path)[0] + ".json"


def find_record(stack_path: str, n: int, angles: Optional[Sequence[float]] = None,
                explicit: Optional[str] = None) -> Optional[List[dict]]:
    """The interpolation record of a stack of ``n`` images (see module doc).

    ``explicit``: a record the user named (InputError when it is missing or
    does not match the stack).  Else STEM.json beside ``stack_path`` when it is
    a matching record, or None.
    """
    if explicit:
        from .interpolate import read_plan_json
        record = read_plan_json(explicit)
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


def excluded_views(record: Optional[List[dict]]) -> List[int]:
    """0-based indices of the views a record flags ``excluded``."""
    return [i for i, e in enumerate(record or []) if e.get("excluded", False)]


def synthetic_views(record: Optional[List[dict]]) -> List[int]:
    """0-based indices of the synthetic tilts of a record."""
    return [i for i, e in enumerate(record or []) if e.get("synthetic", False)]
