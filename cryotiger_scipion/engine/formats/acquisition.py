"""Acquisition JSON (``--acquisition-json``): per-image acquisition order and
doses of a tilt series, for stacks without a SerialEM .mdoc.

Format: cryotiger's own (no outside specification; README "Command line"):
one JSON object with up to three lists, one value per image in stack order:

* ``order``: the 1-based acquisition order (whole numbers >= 1);
* ``dose``: the dose of each image (e/A^2, finite, >= 0);
* ``accum_dose``: the dose received BEFORE each image (e/A^2, finite, >= 0;
  Scipion's AccumDose minus the image's own dose).

Any list may be left out; any other key is refused, never ignored.  Written
by the Scipion protocols (``convert.writeEngineFiles``, ``_acquisition.json``)
and by ``cryotiger simulate`` (``OUT.order.json``); read by ``cryotiger
interpolate`` and ``cryotiger holdout``.
"""
from __future__ import annotations

import json
import math
from typing import Optional, Sequence

from .. import InputError

#: The keys of an acquisition file (lists in stack order): acquisition order (from 1),
#: dose of each image and dose before it (e/A^2). Anything else is refused, never ignored.
ACQUISITION_KEYS = ("order", "dose", "accum_dose")


def read_acquisition_json(path: str) -> dict:
    """Read the acquisition file ``path`` (see the module doc).

    Returns a dict with the lists the file holds, under the file's keys:
    ``order`` (list of int, from 1), ``dose`` and ``accum_dose`` (lists of
    float, e/A^2), in stack order; a key the file leaves out (or sets to
    null) is absent.  The lengths are not checked here (the caller knows the
    number of images).

    Raises InputError (one line naming the file) when the file is missing, is
    not valid JSON (binary data included), is not a JSON object, has a key
    other than ``order``/``dose``/``accum_dose``, or has a list that holds a
    non-number, a NaN/inf or negative value, or an order that is not a whole
    number >= 1.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: acquisition file not found") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); write an object with lists "
                         "'order', 'dose', 'accum_dose'") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with lists 'order', 'dose', 'accum_dose'")
    unknown = sorted(set(data) - set(ACQUISITION_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(repr(k) for k in unknown)}; an acquisition "
                         "file holds only the lists 'order', 'dose', 'accum_dose' (one value per image)")
    out = {}
    for key, cast in (("order", int), ("dose", float), ("accum_dose", float)):
        values = data.get(key)
        if values is None:
            continue
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError):
            raise InputError(f"{path}: '{key}' must be a list of numbers, one per image") from None
        bad = [v for v in floats if not math.isfinite(v) or v < 0
               or (cast is int and (v != int(v) or v < 1))]
        if bad:
            want = "whole numbers from 1" if cast is int else "finite numbers >= 0 (e/A^2)"
            raise InputError(f"{path}: '{key}' holds {bad[0]:g}; give {want}, one per image")
        out[key] = [cast(v) for v in floats]
    return out


def write_acquisition_json(path: str, order: Optional[Sequence[int]] = None,
                           dose: Optional[Sequence[float]] = None,
                           accum_dose: Optional[Sequence[float]] = None) -> None:
    """Write an acquisition file at ``path``, atomically (``outputs.atomic_path``).

    ``order``: 1-based acquisition order per image (ints); ``dose``: dose of
    each image, ``accum_dose``: dose before each image (e/A^2); all in stack
    order, each left out of the file when None.  The values are written as
    given (the reader checks them).  Raises OSError (or OutputError inside an
    output set) when the file cannot be written; TypeError for values JSON
    cannot hold.
    """
    from ..outputs import atomic_path
    acquisition = {}
    for key, values in (("order", order), ("dose", dose), ("accum_dose", accum_dose)):
        if values is not None:
            acquisition[key] = [int(v) for v in values] if key == "order" else list(values)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(acquisition, f)
