"""CTF.json: the per-tilt defocus of a tilt series, in one module.

``cryotiger ctf`` writes it (:func:`write_ctf_json`); ``cryotiger reconstruct``
(built-in and novaCTF back ends), ``cryotiger export`` and the tests read it
with :func:`read_ctf_json`, so every reader applies the same rules.

The file is a JSON list with one object per tilt in stack order (a
``{"tilts": [...]}`` object is read the same way).  Keys: ``defocus_u``
(Angstrom, underfocus positive; required), ``defocus_v`` (Angstrom, default
U), ``astig_angle`` (degrees, direction of U from the x axis, default 0),
optionally ``angle`` (tilt angle, degrees) and ``acquisition_order`` (int),
and whatever else the writer put there (``defocus``, ``fit_score``,
``resolution``, ``synthetic``, ``excluded``, ``estimated``...).  A tilt the
estimator did not estimate (featureless image, excluded view) has
``"estimated": false`` and null defocus; a ``null`` entry means the same.

Format: cryotiger's own (no outside specification; docs/ctf.md).  Defocus
follows the convention of Scipion's CTFModel (``defocusU`` >= ``defocusV``,
Angstrom, underfocus positive; ``defocusAngle`` in degrees), which the reader
restores when a file has V > U.
"""
from __future__ import annotations

import json
import math
import os
from typing import Collection, List, Optional

from .. import InputError

FIX = "give the CTF.json written by 'cryotiger ctf'"


def write_ctf_json(path: str, entries: List[dict]) -> None:
    """Write CTF.json at ``path`` atomically (``outputs.atomic_path``): ``entries``
    is a list, one dict per tilt in stack order (``ctf.results_to_json``;
    defocus in Angstrom, angles in degrees), written as indented JSON.
    Raises OSError (or OutputError inside an output set) when the file
    cannot be written; TypeError for entries JSON cannot hold."""
    from ..outputs import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(entries, f, indent=1)


def _number(entry: dict, key: str, path: str, i: int, default=None, cast=float):
    """``entry[key]`` as ``cast`` (``default`` when absent or null); InputError
    naming the entry (from 1) when it is not a finite number."""
    value = entry.get(key)
    if value is None:
        return default
    try:
        out = cast(value)
        if cast is float and not math.isfinite(out):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"{path}: entry {i + 1} has {key} = {value!r}, not a finite number; "
                         f"{FIX}") from None
    return out


def read_ctf_json(path: str, n_tilts: Optional[int] = None,
                  used: Optional[Collection[int]] = None) -> List[dict]:
    """Read and check a CTF.json (see the module doc); one dict per tilt, in
    the file's order.

    Each returned dict holds the file's keys, with ``defocus_u`` >=
    ``defocus_v`` (Angstrom, positive) and ``astig_angle`` (degrees, in
    [0, 180)) normalised (U and V swapped with the angle turned by 90 degrees
    when V > U: the same CTF), ``angle`` (degrees) and ``acquisition_order``
    (int) or None, and ``estimated`` False with None defocus for a tilt that
    was not estimated.  ``n_tilts``: the number of images of the stack the
    file must describe.  ``used`` (0-based indices; default all): entries of
    other tilts are not checked and come back as not estimated.

    Raises InputError (one line naming the file and the fix) for a missing
    file, invalid JSON, anything but a non-empty list of objects, an entry of
    a used tilt without a numeric ``defocus_u``, a non-positive or non-finite
    defocus, or a count that differs from ``n_tilts``.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: CTF file not found; {FIX}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, OSError) as exc:      # UnicodeDecodeError is a ValueError
        raise InputError(f"{path}: not valid JSON ({exc}); {FIX}") from None
    if isinstance(data, dict) and isinstance(data.get("tilts"), list):
        data = data["tilts"]
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty list with one entry per tilt; {FIX}")
    if n_tilts is not None and len(data) != n_tilts:
        raise InputError(f"{path}: {len(data)} CTF entries but {n_tilts} images in the stack; "
                         "give the CTF estimated on this stack (one entry per tilt, stack order)")
    check = None if used is None else set(int(i) for i in used)
    out = []
    for i, e in enumerate(data):
        if e is not None and not isinstance(e, dict):
            raise InputError(f"{path}: entry {i + 1} is not an object with 'defocus_u' "
                             f"(Angstrom); {FIX}")
        raw, e = e, dict(e or {})
        skipped = check is not None and i not in check
        if not skipped and raw is not None and "defocus_u" not in e:
            raise InputError(f"{path}: entry {i + 1} has no 'defocus_u' (Angstrom); {FIX}")
        if skipped or raw is None or e.get("estimated") is False or e["defocus_u"] is None:
            # Not estimated by 'cryotiger ctf' (featureless tilt, excluded view), or not
            # used: no defocus (refused only where it is used).
            angle = None if skipped else _number(e, "angle", path, i)
            order = None if skipped else _number(e, "acquisition_order", path, i, cast=int)
            e.update(defocus_u=None, defocus_v=None, astig_angle=None, angle=angle,
                     acquisition_order=order, estimated=False)
            out.append(e)
            continue
        u = _number(e, "defocus_u", path, i)
        v = _number(e, "defocus_v", path, i, default=u)
        a = _number(e, "astig_angle", path, i, default=0.0)
        if u <= 0 or v <= 0:
            raise InputError(f"{path}: entry {i + 1} has defocus {u:g}/{v:g} A; defocus must be a "
                             "positive underfocus in Angstrom")
        if v > u:                       # keep U >= V (same convention as engine.ctf)
            u, v, a = v, u, a + 90.0
        e.update(defocus_u=u, defocus_v=v, astig_angle=a % 180.0,
                 angle=_number(e, "angle", path, i),
                 acquisition_order=_number(e, "acquisition_order", path, i, cast=int))
        out.append(e)
    return out
