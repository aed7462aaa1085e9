"""Per-tilt metadata of an (interpolated) tilt series for the next tools:
IMOD, STOPGAP/cryoCAT and RELION 5 (``cryotiger export``, docs/export.md).

Everything comes from the product's own records, never from guesses:

* the interpolation record ``OUT.json`` written beside ``OUT.mrc`` by
  ``cryotiger interpolate`` (one entry per slice in stack order: ``angle``,
  ``synthetic``, ``acquisition_order``, ``dose``, ``accum_dose``,
  ``excluded``; see engine/plan.py), or the same layout written by the Scipion
  export protocol from a SetOfTiltSeries;
* optionally a CTF.json (``cryotiger ctf``): per-tilt ``defocus_u``,
  ``defocus_v`` (Angstrom, underfocus positive) and ``astig_angle`` (degrees,
  direction of U from the x axis), matched to the tilts by
  ``acquisition_order`` when every entry carries one (Scipion's CTFTomo
  convention), else by stack position (angles checked).

Doses (e/A^2).  The record's ``accum_dose`` is the dose received BEFORE the
image (plan.py ``InputTilt.accum_dose``); for a synthetic tilt both ``dose``
and ``accum_dose`` are the sources' values weighted like its pixels,
``(1 - t) a + t b``.  RELION 5's ``rlnMicrographPreExposure`` is the dose
before the image (= ``accum_dose``); STOPGAP's ``exposure`` is the
accumulated dose including the image (= ``accum_dose + dose``; cryoCAT's
``ioutils.total_dose_load``: "PriorRecordDose + ExposureDose").

What each format gets (file names are a contract; see docs/export.md):

* imod: ``<stem>.tlt`` (every view, stack order), ``<stem>.xf`` (identity: the
  stack is aligned), ``<stem>.defocus`` (ctfplotter layout in nm: version 2
  without astigmatism, version 3 flag 1 ``view view angle angle U V angle``
  when astigmatism is present), ``<stem>_exclude.txt`` (IMOD view list
  ``1,4-6`` of excluded views and, with ``experimental_only``, synthetic
  views) and ``<stem>_synthetic.txt`` (the synthetic views, same syntax).
* stopgap: ``<stem>_wedgelist.star`` (block ``stopgap_wedgelist``, STOPGAP's
  columns, one row per tilt used: excluded views and, with
  ``experimental_only``, synthetic tilts are left out, as STOPGAP's own
  wedge lists leave removed tilts out); the synthetic rows are named in
  comment lines at the top (STOPGAP refuses unknown columns).
* relion5: ``<stem>.star`` (block ``data_<name>``: one row per tilt used,
  ``rlnMicrographName`` = ``<view>@<stack>``, nominal tilt angle,
  pre-exposure, defocus U/V/angle, the alignment columns of an aligned
  stack and a ``cryotigerSynthetic`` 0/1 column, which RELION keeps and
  ignores) and ``tomograms.star`` (block ``global``; a row for this series
  is added to or replaced in an existing one).  Left-out tilts are rows
  removed, as RELION's "Exclude tilt-images" job does.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import InputError
from .formats.ctf_json import read_ctf_json
from .formats.record import read_record

IMOD = "imod"
STOPGAP = "stopgap"
RELION5 = "relion5"
FORMATS = (IMOD, STOPGAP, RELION5)

SYNTHETIC_COLUMN = "cryotigerSynthetic"        # RELION 5 per-tilt star (unknown label, kept)
STOPGAP_BLOCK = "stopgap_wedgelist"
STOPGAP_SYNTHETIC_TAG = "# cryotiger synthetic rows:"   # comment line, rows numbered from 1
ANGLE_TOLERANCE = 0.05                          # degrees: record vs CTF.json angles


# ----------------------------------------------------------------------------
# The series
# ----------------------------------------------------------------------------
@dataclass
class ExportTilt:
    """One image of the stack, with what the formats need (Angstrom, degrees, e/A^2)."""
    index: int                          # 0-based position in the stack
    angle: float                        # tilt angle, degrees
    synthetic: bool
    excluded: bool
    acquisition_order: int
    dose: float = 0.0                   # e/A^2 of this image
    pre_exposure: float = 0.0           # e/A^2 received before this image (record's accum_dose)
    defocus_u: Optional[float] = None   # A, underfocus positive, U >= V
    defocus_v: Optional[float] = None   # A
    astig_angle: Optional[float] = None  # degrees, direction of U from the x axis

    @property
    def exposure(self) -> float:
        """Accumulated dose including this image (e/A^2): pre-exposure + own dose."""
        return self.pre_exposure + self.dose

    @property
    def has_ctf(self) -> bool:
        """True when the tilt has a defocus (``defocus_u`` set from a CTF.json)."""
        return self.defocus_u is not None


@dataclass
class ExportSeries:
    """A tilt series ready to export.

    ``shape`` is the stack's (n, y, x) in pixels, ``pixel_size`` Angstrom,
    ``tomo_size`` the tomogram's (x, y, z) in pixels of the stack.
    """
    name: str                           # tomogram / file stem
    stack: str                          # absolute path of the stack
    shape: tuple                        # (n, y, x)
    pixel_size: float                   # A
    tilts: List[ExportTilt]
    voltage: float = 300.0              # kV
    cs: float = 2.7                     # mm
    amp_contrast: float = 0.07          # fraction
    tomo_size: tuple = (0, 0, 0)        # (x, y, z) px
    tomo_size_given: bool = False
    z_shift: float = 0.0                # px (STOPGAP)
    hand: float = -1.0                  # RELION rlnTomoHand
    original_pixel_size: Optional[float] = None   # A (RELION rlnMicrographOriginalPixelSize)
    tomo_num: int = 1                   # STOPGAP tomo_num
    sources: Dict[str, str] = field(default_factory=dict)   # role -> input path (for messages)

    @property
    def has_ctf(self) -> bool:
        """True when at least one tilt has a defocus (a CTF.json was matched)."""
        return any(t.has_ctf for t in self.tilts)

    def kept(self, experimental_only: bool = False) -> List[ExportTilt]:
        """Tilts that go into a reconstruction: not excluded and, with
        ``experimental_only``, not synthetic (stack order)."""
        return [t for t in self.tilts
                if not t.excluded and not (experimental_only and t.synthetic)]


# ----------------------------------------------------------------------------
# Reading the product's records
# ----------------------------------------------------------------------------
def _number(entry: dict, key: str, path: str, i: int, default=None, cast=float):
    value = entry.get(key, default)
    if value is None:
        return None
    try:
        value = cast(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: entry {i + 1} has '{key}' = {entry.get(key)!r}, not a number") from None
    if cast is float and not math.isfinite(value):
        raise InputError(f"{path}: entry {i + 1} has '{key}' = {value}; give a finite number")
    return value


def record_tilts(path: str, n_images: int) -> List[ExportTilt]:
    """The tilts of the interpolation record (``OUT.json``) at ``path``, for a
    stack of ``n_images``.

    The file is read by the record's one reader (``formats.record.read_record``:
    a JSON list of objects); each entry needs ``angle`` (degrees);
    ``synthetic`` and ``excluded`` default to False, ``acquisition_order`` to
    the stack position (1-based), ``dose`` and ``accum_dose`` (e/A^2;
    accum_dose = dose BEFORE the image) to 0.  Returns one
    :class:`ExportTilt` per image in stack order (no CTF).

    Raises InputError for a missing or unreadable file or one that is not a
    record (the reader's messages), a wrong number of entries, an entry
    without ``angle``, a field that is not a finite number, entries out of
    stack order, duplicate acquisition orders or negative doses.
    """
    fix = "give the .json written beside the stack by 'cryotiger interpolate' (--record)"
    data = read_record(path)
    if len(data) != n_images:
        raise InputError(f"{path}: {len(data)} entries but the stack has {n_images} images; {fix}")
    tilts = []
    for i, e in enumerate(data):
        if "angle" not in e:
            raise InputError(f"{path}: entry {i + 1} has no 'angle'; {fix}")
        idx = _number(e, "index", path, i, default=i, cast=int)
        if idx != i:
            raise InputError(f"{path}: entry {i + 1} has index {idx}; the record is not in stack order")
        t = ExportTilt(index=i, angle=_number(e, "angle", path, i),
                       synthetic=bool(e.get("synthetic", False)),
                       excluded=bool(e.get("excluded", False)),
                       acquisition_order=_number(e, "acquisition_order", path, i, default=i + 1, cast=int),
                       dose=_number(e, "dose", path, i, default=0.0),
                       pre_exposure=_number(e, "accum_dose", path, i, default=0.0))
        if t.dose < 0 or t.pre_exposure < 0:
            raise InputError(f"{path}: entry {i + 1} has a negative dose ({t.dose:g}, accumulated "
                             f"{t.pre_exposure:g} e/A^2); doses are e/A^2 >= 0")
        tilts.append(t)
    orders = [t.acquisition_order for t in tilts]
    if len(set(orders)) != len(orders):
        dup = sorted({o for o in orders if orders.count(o) > 1})
        raise InputError(f"{path}: acquisition order {dup[0]} is given to more than one tilt; "
                         "every tilt needs its own")
    return tilts


def match_ctf(tilts: List[ExportTilt], entries: List[dict], path: str = "CTF.json") -> str:
    """Give each tilt its defocus from ``entries`` (``formats.ctf_json.read_ctf_json``), in place.

    By ``acquisition_order`` when every entry has one (tilts whose order has no
    entry get none; gaps in the orders are fine), else by stack position when
    there is one entry per tilt.  A matched entry that names an ``angle`` must
    agree with the tilt's angle within ``ANGLE_TOLERANCE`` (0.05 degree); an
    entry marked not estimated leaves its tilt without a CTF.

    Args:
      tilts: the series' tilts (defocus_u/v in Angstrom and astig_angle in
        degrees are set on them).
      entries: CTF.json entries.
      path: the CTF.json path, for messages.

    Returns:
      How the entries were matched: "acquisition order" or "stack position".

    Raises:
      InputError: when neither rule applies, two entries share an
        acquisition order, or a matched entry's angle disagrees.
    """
    if all(e["acquisition_order"] is not None for e in entries):
        table: Dict[int, dict] = {}
        for e in entries:
            if e["acquisition_order"] in table:
                raise InputError(f"{path}: two entries have acquisition order "
                                 f"{e['acquisition_order']}; give one CTF per tilt")
            table[e["acquisition_order"]] = e
        how = "acquisition order"
        pairs = [(t, table.get(t.acquisition_order)) for t in tilts]
    elif len(entries) == len(tilts):
        how = "stack position"
        pairs = list(zip(tilts, entries))
    else:
        raise InputError(f"{path}: {len(entries)} CTF entries for a stack of {len(tilts)} images and "
                         "the entries carry no 'acquisition_order'; estimate the CTF of this stack "
                         "('cryotiger ctf --input OUT.mrc --angles OUT.tlt ...') or add each "
                         "entry's acquisition_order")
    for t, e in pairs:
        if e is None:
            continue
        if e["angle"] is not None and abs(e["angle"] - t.angle) > ANGLE_TOLERANCE:
            raise InputError(f"{path}: the CTF entry matched by {how} to image {t.index + 1} is for "
                             f"tilt {e['angle']:g} deg but the image is at {t.angle:g} deg; give the "
                             "CTF estimated on this stack")
        if e["defocus_u"] is not None:
            t.defocus_u, t.defocus_v, t.astig_angle = e["defocus_u"], e["defocus_v"], e["astig_angle"]
    return how


def parse_tomo_size(text: str) -> tuple:
    """Parse --tomo-size 'X,Y,Z' (pixels of the stack) into (x, y, z) ints.

    Raises:
      InputError: unless there are three whole numbers > 0.
    """
    try:
        values = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or any(v <= 0 or v != int(v) for v in values):
        raise InputError(f"--tomo-size '{text}': give three whole numbers of pixels > 0, e.g. "
                         "4096,4096,1200 (x, y, z of the tomogram at the stack's pixel size)")
    return tuple(int(v) for v in values)


def load_series(stack: str, record: Optional[str] = None, ctf: Optional[str] = None,
                pixel_size: Optional[float] = None, voltage: float = 300.0, cs: float = 2.7,
                amp_contrast: float = 0.07, tomo_size: Optional[Sequence[int]] = None,
                z_shift: float = 0.0, hand: float = -1.0, name: Optional[str] = None,
                original_pixel_size: Optional[float] = None, tomo_num: int = 1) -> ExportSeries:
    """Read everything an export needs and check it, before anything is written.

    Args:
      stack: the (interpolated) MRC stack, (n, y, x).
      record: its interpolation record (default: the .json beside the stack
        with the same stem; read by :func:`record_tilts`).
      ctf: optional CTF.json (see :func:`match_ctf`).
      pixel_size: Angstrom per pixel (default: the stack header).
      voltage: kV, in [1, 5000].
      cs: spherical aberration, mm, in [0, 100].
      amp_contrast: amplitude contrast fraction, in [0, 1].
      tomo_size: (x, y, z) px of the tomogram (default: the stack's x, y and
        z = x // 2, reported by :func:`export`).
      z_shift: STOPGAP z_shift, px.
      hand: RELION rlnTomoHand, -1 or 1.
      name: tomogram name and file stem (default: the stack's stem).
      original_pixel_size: RELION rlnMicrographOriginalPixelSize, Angstrom
        (default: the pixel size).
      tomo_num: STOPGAP tomo_num.

    Returns:
      An :class:`ExportSeries`.

    Raises:
      InputError: (one line naming the problem and the fix) for a missing
        stack, a missing or mismatched record or CTF.json, no usable pixel
        size, microscope values out of range, a hand other than -1 or 1, or
        a name that is empty or holds spaces or slashes.
    """
    from .formats.mrc import open_stack
    if not os.path.exists(stack):
        raise InputError(f"{stack}: input stack not found")
    with open_stack(stack) as m:
        shape = tuple(int(s) for s in (m.data.shape if m.data.ndim == 3 else (1,) + m.data.shape))
        header_px = float(m.voxel_size.x)
    record = record or os.path.splitext(stack)[0] + ".json"
    tilts = record_tilts(record, shape[0])
    from .formats.mrc import resolve_pixel_size      # the rule of every command (README, "Bad input")
    px = resolve_pixel_size(pixel_size, stack, header_px=header_px)
    for value, label, lo, hi in ((voltage, "--voltage (kV)", 1, 5000), (cs, "--cs (mm)", 0, 100),
                                 (amp_contrast, "--amp-contrast (fraction)", 0, 1)):
        if not (lo <= value <= hi):
            raise InputError(f"{label} {value:g} is outside [{lo}, {hi}]")
    if hand not in (-1, 1, -1.0, 1.0):
        raise InputError(f"--hand {hand:g}: RELION's handedness is -1 or 1")
    series = ExportSeries(name=name or os.path.splitext(os.path.basename(stack))[0],
                          stack=os.path.abspath(stack), shape=shape, pixel_size=float(px),
                          tilts=tilts, voltage=float(voltage), cs=float(cs),
                          amp_contrast=float(amp_contrast), z_shift=float(z_shift), hand=float(hand),
                          original_pixel_size=original_pixel_size, tomo_num=int(tomo_num),
                          sources={"--input": stack, "--record": record})
    if not series.name or any(c.isspace() or c in "/\\" for c in series.name):
        raise InputError(f"tomogram name '{series.name}' is empty or has spaces or slashes; give "
                         "--name (it names the files in --output and RELION's rlnTomoName)")
    if tomo_size is not None:
        series.tomo_size = tuple(int(v) for v in tomo_size)
        series.tomo_size_given = True
    else:
        series.tomo_size = (shape[2], shape[1], max(1, shape[2] // 2))
    if ctf:
        match_ctf(tilts, read_ctf_json(ctf), ctf)
        series.sources["--ctf"] = ctf
    return series


# ----------------------------------------------------------------------------
# Small format helpers (and their readers, used by the tests and docs)
# ----------------------------------------------------------------------------
def format_view_list(views: Sequence[int]) -> str:
    """0-based indices -> IMOD view list numbered from 1 with ranges: [0, 3, 4, 5] -> '1,4-6'.
    The inverse of :func:`engine.interpolate.parse_view_list`."""
    views = sorted(set(int(v) for v in views))
    parts, i = [], 0
    while i < len(views):
        j = i
        while j + 1 < len(views) and views[j + 1] == views[j] + 1:
            j += 1
        parts.append(str(views[i] + 1) if i == j else f"{views[i] + 1}-{views[j] + 1}")
        i = j + 1
    return ",".join(parts)


def read_imod_defocus(path: str) -> dict:
    """Read a ctfplotter defocus file (as written by :func:`write_imod_files`).

    Layouts: version 2 (``start end angle angle defocus_nm`` with a trailing 2
    on the first row) or version 3 (header ``flag 0 0.0 0.0 0.0 3``; with flag
    bit 1, rows ``start end angle angle U_nm V_nm astig_deg``).

    Returns:
      {"version": 2|3, "astigmatic": bool, "views": [(start, end)],
      "angles": [deg], "defocus_u": [A], "defocus_v": [A], "astig_angle": [deg]}
      (defocus converted from nm to Angstrom).

    Raises:
      InputError: for an empty file.
      OSError: when the file cannot be read.
      ValueError, IndexError: for rows that are not of these layouts.
    """
    with open(path) as f:
        rows = [line.split() for line in f if line.strip()]
    if not rows:
        raise InputError(f"{path}: empty defocus file")
    out = {"views": [], "angles": [], "defocus_u": [], "defocus_v": [], "astig_angle": []}
    first = rows[0]
    if len(first) == 6 and first[-1] == "3":
        out["version"], flag = 3, int(first[0])
        out["astigmatic"] = bool(flag & 1)
        rows = rows[1:]
    else:
        out["version"], out["astigmatic"] = 2, False
    for r in rows:
        v = [float(x) for x in r]
        out["views"].append((int(v[0]), int(v[1])))
        out["angles"].append(v[2])
        if out["astigmatic"]:
            out["defocus_u"].append(v[4] * 10.0)
            out["defocus_v"].append(v[5] * 10.0)
            out["astig_angle"].append(v[6])
        else:
            out["defocus_u"].append(v[4] * 10.0)
            out["defocus_v"].append(v[4] * 10.0)
            out["astig_angle"].append(0.0)
    return out


def read_stopgap_synthetic_rows(path: str) -> List[int]:
    """Rows (numbered from 1) named synthetic in a STOPGAP wedge list written
    here (the ``# cryotiger synthetic rows:`` comment); [] when it has none.

    Raises:
      OSError: when the file cannot be read.
      InputError: when the comment's row list is malformed.
    """
    from .interpolate import parse_view_list
    with open(path) as f:
        for line in f:
            if line.startswith(STOPGAP_SYNTHETIC_TAG):
                return [i + 1 for i in parse_view_list(line[len(STOPGAP_SYNTHETIC_TAG):].strip())]
    return []


def relion_image_name(stack: str, index: int) -> str:
    """``<index + 1>@<stack>`` for rlnMicrographName.  RELION reads '.mrc' as a 3D
    map and refuses an image index into it (src/image.h: "stacks of images in
    MRC-format should have extension .mrcs"); a ':mrcs' format suffix makes it
    read the file as a stack (FileName::getFileFormat)."""
    ext = os.path.splitext(stack)[1].lower()
    suffix = "" if ext in (".mrcs", ".st") else ":mrcs"
    return f"{index + 1}@{stack}{suffix}"


def _fill_for_imod(series: ExportSeries) -> List[tuple]:
    """(U, V, angle) per view for the IMOD defocus file, which needs a row for
    EVERY view: views without a CTF (left out of every reconstruction) take
    the values of the nearest tilt (by angle) that has one."""
    known = [t for t in series.tilts if t.has_ctf]
    rows = []
    for t in series.tilts:
        src = t if t.has_ctf else min(known, key=lambda k: (abs(k.angle - t.angle), k.index))
        rows.append((src.defocus_u, src.defocus_v, src.astig_angle))
    return rows


def _require_ctf(series: ExportSeries, tilts: Sequence[ExportTilt], fmt: str) -> None:
    missing = [t for t in tilts if not t.has_ctf]
    if missing:
        where = ", ".join(f"{t.angle:g}" for t in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise InputError(f"{series.sources.get('--ctf', 'CTF.json')}: no CTF for the tilt(s) at {where} "
                         f"degrees (absent or not estimated), which the {fmt} export uses; give the "
                         "CTF of every tilt used (synthetic ones included), leave synthetic ones "
                         "out (--experimental-only) or exclude those views")


# ----------------------------------------------------------------------------
# Writers: each writes into ``folder`` (a temporary folder) and returns the names
# ----------------------------------------------------------------------------
def write_imod_files(series: ExportSeries, folder: str, experimental_only: bool = False) -> List[str]:
    """Write the IMOD files for ``series`` in ``folder``: <stem>.tlt, <stem>.xf
    (identity: the stack is aligned), <stem>.defocus (only with a CTF),
    <stem>_exclude.txt, <stem>_synthetic.txt.

    Defocus file: ctfplotter layout, nm (engine.novactf.write_defocus_file,
    the layout novaCTF and ctfphaseflip accept; RELION's
    TomoCtfHelper::loadCtfplotter reads the astigmatic one the same way);
    views without a CTF take the values of the nearest tilt that has one.

    Returns:
      The file names written (in ``folder``).

    Raises:
      InputError: when a tilt used (see :meth:`ExportSeries.kept`) has no CTF
        while others have one.
      OSError: when a file cannot be written.
    """
    from .formats.xf import write_xf
    from .formats.tlt import write_angles
    from .novactf import write_defocus_file
    stem = series.name
    names = [f"{stem}.tlt", f"{stem}.xf"]
    angles = [t.angle for t in series.tilts]
    write_angles(os.path.join(folder, f"{stem}.tlt"), angles)
    identity = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (len(angles), 1, 1))
    write_xf(os.path.join(folder, f"{stem}.xf"), identity)
    if series.has_ctf:
        _require_ctf(series, series.kept(experimental_only), IMOD)
        rows = _fill_for_imod(series)
        du = [r[0] for r in rows]
        dv = [r[1] for r in rows]
        astig = any(abs(u - v) >= 0.05 for u, v in zip(du, dv))    # nm precision of the file: 0.1
        write_defocus_file(os.path.join(folder, f"{stem}.defocus"), angles, du, dv,
                           [r[2] for r in rows], astigmatism=astig)
        names.append(f"{stem}.defocus")
    left_out = [t.index for t in series.tilts if t.excluded or (experimental_only and t.synthetic)]
    with open(os.path.join(folder, f"{stem}_exclude.txt"), "w") as f:
        f.write(format_view_list(left_out) + "\n")
    with open(os.path.join(folder, f"{stem}_synthetic.txt"), "w") as f:
        f.write(format_view_list([t.index for t in series.tilts if t.synthetic]) + "\n")
    return names + [f"{stem}_exclude.txt", f"{stem}_synthetic.txt"]


STOPGAP_COLUMNS = ("tomo_num", "pixelsize", "tomo_x", "tomo_y", "tomo_z", "z_shift", "tilt_angle",
                   "defocus", "exposure", "voltage", "amp_contrast", "cs")


def stopgap_table(series: ExportSeries, experimental_only: bool = False) -> List[dict]:
    """Rows of the STOPGAP wedge list (one per tilt used, stack order):
    tomo_num, pixelsize (A), tomo_x/y/z (px), z_shift (px), tilt_angle (deg),
    defocus (mean of U and V, micrometres, only with a CTF), exposure
    (accumulated dose including the tilt, e/A^2), voltage (kV), amp_contrast,
    cs (mm).  Column meanings: STOPGAP sg_get_wedgelist_fields.m; units and
    exposure: cryoCAT wedgeutils.create_wedge_list_sg / ioutils.

    Raises:
      InputError: when a tilt used has no CTF while others have one.
    """
    kept = series.kept(experimental_only)
    if series.has_ctf:
        _require_ctf(series, kept, STOPGAP)
    rows = []
    for t in kept:
        row = {"tomo_num": series.tomo_num, "pixelsize": series.pixel_size,
               "tomo_x": series.tomo_size[0], "tomo_y": series.tomo_size[1],
               "tomo_z": series.tomo_size[2], "z_shift": series.z_shift, "tilt_angle": t.angle}
        if series.has_ctf:
            row["defocus"] = 0.5 * (t.defocus_u + t.defocus_v) / 1e4
        row.update({"exposure": t.exposure, "voltage": series.voltage,
                    "amp_contrast": series.amp_contrast, "cs": series.cs})
        rows.append(row)
    return rows


def _stopgap_value(key: str, value) -> str:
    if key in ("tomo_num", "tomo_x", "tomo_y", "tomo_z"):
        return str(int(value))
    if key == "defocus":
        return f"{value:.6f}"
    return f"{float(value):.4f}"


def write_stopgap_file(series: ExportSeries, folder: str, experimental_only: bool = False) -> List[str]:
    """Write <stem>_wedgelist.star in ``folder``; returns its name in a list.

    Written in STOPGAP's own layout (stopgap_star_write.m; cryoCAT's
    starfileio.write does the same for 'stopgap' blocks): unnumbered column
    names and ONE EMPTY LINE between the column names and the rows, because
    STOPGAP's reader (stopgap_star_read.m) takes as rows the non-empty lines
    after "last column name + 1" and would drop the first row otherwise.
    Comment lines (read by neither STOPGAP nor starfile as data) come first:
    what the file is, which rows are synthetic (``# cryotiger synthetic rows:
    2,4-5``, numbered from 1) and which tilts were left out.

    Raises:
      InputError: as :func:`stopgap_table`.
      OSError: when the file cannot be written.
    """
    kept = series.kept(experimental_only)
    rows = stopgap_table(series, experimental_only)
    columns = [c for c in STOPGAP_COLUMNS if c in rows[0]] if rows else list(STOPGAP_COLUMNS)
    synthetic_rows = [i for i, t in enumerate(kept) if t.synthetic]
    excluded = [t for t in series.tilts if t.excluded]
    dropped = [t for t in series.tilts if experimental_only and t.synthetic and not t.excluded]
    lines = [f"# STOPGAP wedge list written by cryotiger export from {series.stack}",
             "# one row per tilt used; exposure = accumulated dose including the tilt (e/A^2), "
             "defocus in um",
             f"{STOPGAP_SYNTHETIC_TAG} {format_view_list(synthetic_rows)}",
             "# cryotiger synthetic tilt angles: "
             + (", ".join(f"{kept[i].angle:g}" for i in synthetic_rows) or "none"),
             "# cryotiger left out (excluded views, numbered from 1 in the stack): "
             + (format_view_list([t.index for t in excluded]) or "none")]
    if experimental_only:
        lines.append("# cryotiger left out (synthetic tilts, --experimental-only): "
                     + (format_view_list([t.index for t in dropped]) or "none"))
    _write_stopgap_layout(os.path.join(folder, f"{series.name}_wedgelist.star"), lines, columns, rows)
    return [f"{series.name}_wedgelist.star"]


def _write_stopgap_layout(path: str, comments: List[str], columns: Sequence[str],
                          rows: Sequence[dict]) -> None:
    """Comment lines, then the block in STOPGAP's layout (see write_stopgap_file)."""
    lines = list(comments) + ["", f"data_{STOPGAP_BLOCK}", "", "loop_"]
    lines += [f"_{c}" for c in columns]
    lines.append("")
    for row in rows:
        lines.append("  ".join(_stopgap_value(c, row[c]) for c in columns))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n\n")


def combine_stopgap_wedgelists(paths: Sequence[str], out_path: str) -> int:
    """One STOPGAP wedge list for several tomograms (STOPGAP reads one list with
    a ``tomo_num`` per row): the rows of ``paths`` (files written by
    :func:`write_stopgap_file`, distinct tomo_num) in order, with their
    synthetic rows renumbered in the comment.  Written atomically at ``out_path``.

    Returns:
      The number of rows.

    Raises:
      InputError: for a file without the stopgap_wedgelist block, two files
        with one tomo_num or with different columns.
    """
    import starfile
    from .outputs import atomic_path
    rows, synthetic, columns, nums = [], [], None, set()
    for p in paths:
        table = starfile.read(p, always_dict=True).get(STOPGAP_BLOCK)
        if table is None:
            raise InputError(f"{p}: no data_{STOPGAP_BLOCK} block")
        cols = list(table.columns)
        if columns is not None and cols != columns:
            raise InputError(f"{p}: columns differ from {paths[0]}'s (one has defocus, the other "
                             "not?); export every series the same way")
        columns = cols
        these = set(int(v) for v in table["tomo_num"])
        if these & nums:
            raise InputError(f"{p}: tomo_num {sorted(these & nums)[0]} is used by another series; "
                             "give each series its own --tomo-num")
        nums |= these
        synthetic += [len(rows) + r - 1 for r in read_stopgap_synthetic_rows(p)]
        rows += table.to_dict("records")
    comments = [f"# STOPGAP wedge list of {len(paths)} tomograms written by cryotiger export",
                f"{STOPGAP_SYNTHETIC_TAG} {format_view_list(synthetic)}"]
    with atomic_path(out_path) as tmp:
        _write_stopgap_layout(tmp, comments, columns or list(STOPGAP_COLUMNS), rows)
    return len(rows)


def combine_relion_tomograms(paths: Sequence[str], out_path: str) -> int:
    """One RELION 5 tomograms.star (data_global) with the rows of the
    tomograms.star files ``paths`` (each written by an export; their
    rlnTomoTiltSeriesStarFile paths are absolute), written atomically with
    starfile at ``out_path``.

    Returns:
      The number of rows.

    Raises:
      InputError: for an rlnTomoName in more than one file.
    """
    import pandas as pd
    import starfile
    from .outputs import atomic_path
    tables = [starfile.read(p, always_dict=True)["global"] for p in paths]
    table = pd.concat(tables, ignore_index=True)
    dup = table["rlnTomoName"][table["rlnTomoName"].duplicated()]
    if len(dup):
        raise InputError(f"tomogram {dup.iloc[0]} is in more than one of the tomograms.star files; "
                         "every series needs its own name")
    with atomic_path(out_path) as tmp:
        starfile.write({"global": table}, tmp, overwrite=True)
    return len(table)


RELION_TILT_COLUMNS = ("rlnMicrographName", "rlnTomoNominalStageTiltAngle",
                       "rlnTomoNominalTiltAxisAngle", "rlnMicrographPreExposure",
                       "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
                       "rlnTomoXTilt", "rlnTomoYTilt", "rlnTomoZRot",
                       "rlnTomoXShiftAngst", "rlnTomoYShiftAngst", SYNTHETIC_COLUMN)
RELION_GLOBAL_COLUMNS = ("rlnTomoName", "rlnTomoTiltSeriesStarFile", "rlnVoltage",
                         "rlnSphericalAberration", "rlnAmplitudeContrast",
                         "rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnOpticsGroupName",
                         "rlnTomoTiltSeriesPixelSize", "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")


def relion_tables(series: ExportSeries, star_path: str, experimental_only: bool = False) -> tuple:
    """(per-tilt DataFrame, global-row dict) in RELION 5's tomography format.

    Per tilt (one row per tilt used, stack order): rlnMicrographName
    (``view@stack``), rlnTomoNominalStageTiltAngle (deg),
    rlnTomoNominalTiltAxisAngle (0: the stack is aligned, tilt axis along y;
    RELION: "wrt the Y-axis, positive is CCW"), rlnMicrographPreExposure (dose
    before the image, e/A^2), rlnDefocusU/V (A) and rlnDefocusAngle (deg, from
    x to U) with a CTF, the projection of an aligned stack (rlnTomoXTilt 0,
    rlnTomoYTilt = tilt angle, rlnTomoZRot 0, shifts 0 A, as RELION's IMOD
    import makes from an identity .xf) and cryotigerSynthetic (0/1).
    Global: see RELION_GLOBAL_COLUMNS (RELION 5 TomogramSet::loadTomogram;
    relion-documents Reference/STA/Datatypes/tomogram_set.rst);
    ``star_path`` is its rlnTomoTiltSeriesStarFile.

    Raises:
      InputError: when a tilt used has no CTF while others have one.
    """
    import pandas as pd
    kept = series.kept(experimental_only)
    if series.has_ctf:
        _require_ctf(series, kept, RELION5)
    cols: Dict[str, list] = {c: [] for c in RELION_TILT_COLUMNS}
    for t in kept:
        cols["rlnMicrographName"].append(relion_image_name(series.stack, t.index))
        cols["rlnTomoNominalStageTiltAngle"].append(float(t.angle))
        cols["rlnTomoNominalTiltAxisAngle"].append(0.0)
        cols["rlnMicrographPreExposure"].append(float(t.pre_exposure))
        if series.has_ctf:
            cols["rlnDefocusU"].append(float(t.defocus_u))
            cols["rlnDefocusV"].append(float(t.defocus_v))
            cols["rlnDefocusAngle"].append(float(t.astig_angle))
        cols["rlnTomoXTilt"].append(0.0)
        cols["rlnTomoYTilt"].append(float(t.angle))
        cols["rlnTomoZRot"].append(0.0)
        cols["rlnTomoXShiftAngst"].append(0.0)
        cols["rlnTomoYShiftAngst"].append(0.0)
        cols[SYNTHETIC_COLUMN].append(int(t.synthetic))
    if not series.has_ctf:
        for c in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"):
            del cols[c]
    tilts = pd.DataFrame(cols)
    glob = {"rlnTomoName": series.name, "rlnTomoTiltSeriesStarFile": star_path,
            "rlnVoltage": series.voltage, "rlnSphericalAberration": series.cs,
            "rlnAmplitudeContrast": series.amp_contrast,
            "rlnMicrographOriginalPixelSize": float(series.original_pixel_size or series.pixel_size),
            "rlnTomoHand": float(series.hand), "rlnOpticsGroupName": "optics1",
            "rlnTomoTiltSeriesPixelSize": series.pixel_size,
            "rlnTomoSizeX": int(series.tomo_size[0]), "rlnTomoSizeY": int(series.tomo_size[1]),
            "rlnTomoSizeZ": int(series.tomo_size[2])}
    return tilts, glob


def _merged_global(existing: Optional[str], row: dict):
    """The tomograms.star 'global' table: ``existing`` rows (another series'
    exports into the same folder) with ``row`` added or replacing the row of
    the same rlnTomoName."""
    import pandas as pd
    import starfile
    new = pd.DataFrame([row])
    if existing and os.path.exists(existing):
        try:
            old = starfile.read(existing, always_dict=True).get("global")
        except Exception as exc:
            raise InputError(f"{existing}: not a readable STAR file ({exc}); remove it or export "
                             "to another folder") from None
        if old is None or "rlnTomoName" not in getattr(old, "columns", []):
            raise InputError(f"{existing}: has no 'global' table with rlnTomoName; remove it or "
                             "export to another folder")
        if list(old.columns) != list(RELION_GLOBAL_COLUMNS):
            # Written by another program (RELION itself adds e.g. rlnEtomoDirectiveFile):
            # never rewrite it with columns dropped or made up.
            raise InputError(f"{existing}: a tomograms.star with other columns than an export's "
                             "(written by another program?); export into another folder and "
                             "join the tables yourself")
        old = old[old["rlnTomoName"].astype(str) != row["rlnTomoName"]]
        if len(old):
            new = pd.concat([old, new], ignore_index=True)
            for c in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"):
                new[c] = new[c].astype(int)
    return new


def write_relion5_files(series: ExportSeries, folder: str, out_dir: str,
                        experimental_only: bool = False) -> List[str]:
    """Write <stem>.star and tomograms.star in ``folder`` (paths inside them point
    into ``out_dir``, absolute, because RELION resolves relative paths from
    its project folder; an existing ``out_dir/tomograms.star`` written by an
    export gets this series' row added or replaced).  Written with teamtomo's
    starfile.  Returns the two file names.

    Raises:
      InputError: when a tilt used has no CTF while others have one, or an
        existing tomograms.star is unreadable or has other columns.
    """
    import starfile
    star_final = os.path.join(os.path.abspath(out_dir), f"{series.name}.star")
    tilts, glob = relion_tables(series, star_final, experimental_only)
    starfile.write({series.name: tilts}, os.path.join(folder, f"{series.name}.star"), overwrite=True)
    merged = _merged_global(os.path.join(out_dir, "tomograms.star"), glob)
    starfile.write({"global": merged}, os.path.join(folder, "tomograms.star"), overwrite=True)
    return [f"{series.name}.star", "tomograms.star"]


# ----------------------------------------------------------------------------
# The export
# ----------------------------------------------------------------------------
def output_names(fmt: str, name: str) -> List[str]:
    """File names (in the output folder) format ``fmt`` may write for tomogram ``name``.

    Raises:
      KeyError: for a format not in ``FORMATS``.
    """
    return {IMOD: [f"{name}.tlt", f"{name}.xf", f"{name}.defocus", f"{name}_exclude.txt",
                   f"{name}_synthetic.txt"],
            STOPGAP: [f"{name}_wedgelist.star"],
            RELION5: [f"{name}.star", "tomograms.star"]}[fmt]


def _same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are one file (existing: device + inode, links
    followed; else the resolved path)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_outputs(series: ExportSeries, fmt: str, out_dir: str) -> List[str]:
    """Refuse, before anything is written, outputs that are one of the inputs
    (stack, record, CTF.json) or existing folders.

    Returns:
      The output paths (``out_dir`` joined with :func:`output_names`).

    Raises:
      InputError: when ``out_dir`` is a file, an output is an input file, or
        an output name is an existing folder.
    """
    paths = [os.path.join(out_dir, n) for n in output_names(fmt, series.name)]
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"--output {out_dir} is a file; give a folder")
    for p in paths:
        for role, src in series.sources.items():
            if src and _same_file(p, src):
                raise InputError(f"{p} would overwrite the {role} input {src}; choose another "
                                 "--output folder or --name")
        if os.path.isdir(p):
            raise InputError(f"{p} is a folder; remove it or choose another --output folder")
    return paths


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                     # exists, not ours
    return True


def _remove_stale_work_folders(out_dir: str, name: str) -> None:
    """Remove temporary folders ``.<name>.<pid>-XXXX.export`` left in ``out_dir``
    by a killed export (its process is gone); a running export's folder stays."""
    import re
    pattern = re.compile(r"^\.%s\.(\d+)-[^/]*\.export$" % re.escape(name))
    for entry in os.listdir(out_dir):
        m = pattern.match(entry)
        if m and os.path.isdir(os.path.join(out_dir, entry)) and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(out_dir, entry), ignore_errors=True)


def export(series: ExportSeries, fmt: str, out_dir: str, experimental_only: bool = False) -> dict:
    """Write ``fmt`` files for ``series`` into ``out_dir`` (created if needed).

    All files are written into a temporary folder inside ``out_dir`` first and
    moved into place only when every one is complete (an error leaves the
    old files; a folder left by a killed export is removed by the next one).
    Files of an earlier export of the same name that this one does not write
    are removed.

    Args:
      series: from :func:`load_series`.
      fmt: "imod", "stopgap" or "relion5".
      out_dir: the output folder.
      experimental_only: leave the synthetic tilts out.

    Returns:
      {"files": [paths], "rows": tilts written, "synthetic": synthetic among
      them, "notes": [lines for the user]}.

    Raises:
      InputError: for an unknown format, outputs that would overwrite inputs,
        missing CTF of used tilts, no tilt left, or an existing
        tomograms.star that cannot be merged.
      OSError: when ``out_dir`` or a file cannot be written.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    check_outputs(series, fmt, out_dir)
    kept = series.kept(experimental_only)
    if not kept:
        raise InputError(f"{series.stack}: no tilt left after leaving out excluded"
                         f"{' and synthetic' if experimental_only else ''} tilts")
    notes = []
    if fmt in (STOPGAP, RELION5) and not series.tomo_size_given:
        x, y, z = series.tomo_size
        notes.append(f"no --tomo-size: tomogram taken as {x}x{y}x{z} px (x, y of the stack, z = x/2); "
                     "give --tomo-size X,Y,Z with the size of your reconstruction")
    if not series.has_ctf:
        notes.append({IMOD: "no --ctf: no .defocus file written",
                      STOPGAP: "no --ctf: the wedge list has no defocus column",
                      RELION5: "no --ctf: the tilt-series star has no rlnDefocusU/V/Angle (as "
                                "after RELION's import; estimate the CTF in RELION)"}[fmt])
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale_work_folders(out_dir, series.name)
    work = tempfile.mkdtemp(prefix=f".{series.name}.{os.getpid()}-", suffix=".export", dir=out_dir)
    try:
        if fmt == IMOD:
            names = write_imod_files(series, work, experimental_only)
        elif fmt == STOPGAP:
            names = write_stopgap_file(series, work, experimental_only)
        else:
            names = write_relion5_files(series, work, out_dir, experimental_only)
        umask = os.umask(0)
        os.umask(umask)
        from .outputs import place
        for n in names:
            os.chmod(os.path.join(work, n), 0o666 & ~umask)
            # through the command's OutputSet when it declares the file: renamed with the others
            place(os.path.join(out_dir, n), os.path.join(work, n))
        # A file of an earlier export that this one does not write (a .defocus
        # without --ctf now) would describe other values: remove it.
        for n in output_names(fmt, series.name):
            if n not in names and n != "tomograms.star" and os.path.isfile(os.path.join(out_dir, n)):
                os.remove(os.path.join(out_dir, n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"files": [os.path.join(out_dir, n) for n in names], "rows": len(kept),
            "synthetic": sum(t.synthetic for t in kept), "notes": notes}


__all__ = ["FORMATS", "ExportTilt", "ExportSeries", "record_tilts", "match_ctf",
           "load_series", "export", "format_view_list", "read_imod_defocus",
           "read_stopgap_synthetic_rows", "relion_image_name", "relion_tables", "stopgap_table",
           "parse_tomo_size", "combine_stopgap_wedgelists", "combine_relion_tomograms"]
