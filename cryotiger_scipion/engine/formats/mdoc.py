"""SerialEM .mdoc files (read only): per-image tilt angle, dose, time stamp.

Format: SerialEM's autodoc (``.mdoc``) metadata files,
https://bio3d.colorado.edu/SerialEM/hlp/html/about_formats.htm: a header of
``key = value`` lines, then one ``[ZValue = n]`` section per image of the
stack (n from 0, stack order) with keys such as ``TiltAngle`` (degrees),
``ExposureDose`` and ``PriorRecordDose`` (e/A^2), ``DateTime``
(``dd-Mon-yy  HH:MM:SS``), ``PixelSpacing`` (Angstrom), ``Defocus`` /
``TargetDefocus`` (microns) and ``SubFramePath``; other sections (``[T =
...]``, frame-set sections) are skipped.  The engine never writes .mdoc files.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .. import InputError


@dataclass
class MdocTilt:
    """One [ZValue = n] section of a SerialEM .mdoc (one image); ``extra``
    holds every key of the section as text."""
    z_value: int                       # n of [ZValue = n]: the image's position in the stack, from 0
    angle: float                       # TiltAngle, degrees
    dose: float = 0.0                  # exposure of this image, e/A^2
    datetime: str = ""
    defocus: Optional[float] = None    # target defocus (microns, SerialEM sign)
    pixel_size: Optional[float] = None  # PixelSpacing, Angstrom
    sub_frame_path: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Mdoc:
    """A parsed SerialEM .mdoc: ``tilts`` (one :class:`MdocTilt` per [ZValue]
    section, in ZValue order) and the ``header`` key/values before them."""
    tilts: List[MdocTilt]
    header: dict

    @property
    def acquisition_order(self) -> np.ndarray:
        """(n,) int: the 1-based acquisition order of each section (ZValue
        order), by DateTime when every section carries a distinct one, else by
        ZValue (SerialEM writes sections in acquisition order)."""
        from datetime import datetime
        stamps = []
        for t in self.tilts:
            try:
                stamps.append(datetime.strptime(t.datetime.strip(), "%d-%b-%y  %H:%M:%S"))
            except ValueError:
                try:
                    stamps.append(datetime.strptime(" ".join(t.datetime.split()), "%d-%b-%y %H:%M:%S"))
                except ValueError:
                    stamps = None
                    break
        if stamps is not None and len(set(stamps)) == len(stamps):
            order = np.argsort(np.array(stamps), kind="stable")
        else:
            order = np.argsort([t.z_value for t in self.tilts], kind="stable")
        ranks = np.empty(len(order), dtype=int)
        ranks[order] = np.arange(1, len(order) + 1)
        return ranks

    @property
    def accumulated_dose(self) -> np.ndarray:
        """(n,) float: the dose received before each image (e/A^2), in section
        order: SerialEM's PriorRecordDose when every section has it, else the
        sum of the ExposureDose of the images acquired earlier
        (``engine.plan.dose_before``, the engine's one dose rule)."""
        prior = [t.extra.get("PriorRecordDose") for t in self.tilts]
        if all(p is not None for p in prior):
            try:
                return np.array([float(p.split()[0]) for p in prior])
            except ValueError:
                pass
        from ..plan import dose_before
        return dose_before([t.dose for t in self.tilts], self.acquisition_order)


def read_mdoc(path: str) -> Mdoc:
    """Parse a SerialEM .mdoc (SerialEM's autodoc format: ``[ZValue = n]``
    sections of ``key = value`` lines) into an :class:`Mdoc`: one MdocTilt per
    section, in ZValue order; angles in degrees (TiltAngle), doses in e/A^2
    (ExposureDose), pixel size in Angstrom (PixelSpacing).  Raises InputError
    (one line naming the file and the section) when the file is missing or has
    no [ZValue = n] section, when a section appears twice, has no TiltAngle or
    one outside [-90, 90] degrees, or has an ExposureDose/PriorRecordDose that
    is not a finite number >= 0."""
    if not os.path.exists(path):
        raise InputError(f"{path}: .mdoc file not found")
    header, tilts, current = {}, [], None
    key_re = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = re.match(r"^\[ZValue\s*=\s*(\d+)\s*\]", line)
            if m:
                current = {"ZValue": m.group(1)}
                tilts.append(current)
                continue
            if line.startswith("["):  # [T = ...] and other non-image sections
                current = None
                continue
            m = key_re.match(line)
            if not m:
                continue
            key, value = m.group(1), m.group(2)
            if current is None:
                if not tilts:
                    header[key] = value
            else:
                current[key] = value
    out = []
    seen_z = set()
    for sec in tilts:
        if sec["ZValue"] in seen_z:
            raise InputError(f"{path}: section [ZValue = {sec['ZValue']}] appears more than once; "
                             "give one section per image")
        seen_z.add(sec["ZValue"])
        for key in ("ExposureDose", "PriorRecordDose"):
            if key in sec:
                try:
                    value = float(sec[key].split()[0])
                except (ValueError, IndexError):
                    value = float("nan")
                if not (math.isfinite(value) and value >= 0):
                    raise InputError(f"{path}: section [ZValue = {sec['ZValue']}]: {key} "
                                     f"'{sec[key]}' is not a dose (a finite number >= 0, e/A^2); "
                                     "fix the .mdoc or give --angles with --acquisition-json")
        if "TiltAngle" not in sec:
            raise InputError(f"{path}: section [ZValue = {sec['ZValue']}] has no TiltAngle")
        try:
            angle = float(sec["TiltAngle"].split()[0])
        except (ValueError, IndexError):
            angle = float("nan")
        if not (math.isfinite(angle) and abs(angle) <= 90):
            raise InputError(f"{path}: section [ZValue = {sec['ZValue']}]: TiltAngle "
                             f"'{sec['TiltAngle']}' is not an angle in [-90, 90] degrees")

        def num(key, default=None):
            try:
                return float(sec[key].split()[0])
            except (KeyError, ValueError, IndexError):
                return default
        out.append(MdocTilt(z_value=int(sec["ZValue"]), angle=num("TiltAngle"),
                            dose=num("ExposureDose", 0.0) or 0.0,
                            datetime=sec.get("DateTime", ""),
                            defocus=num("Defocus", num("TargetDefocus")),
                            pixel_size=num("PixelSpacing"),
                            sub_frame_path=sec.get("SubFramePath", ""),
                            extra=dict(sec)))
    if not out:
        raise InputError(f"{path}: no [ZValue = n] sections; is this a SerialEM tilt-series .mdoc?")
    out.sort(key=lambda t: t.z_value)
    return Mdoc(tilts=out, header=header)
