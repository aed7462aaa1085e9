"""Tilt interpolation: the plan, the interpolators and the driver.

The driver works pair by pair (gap by gap): memory does not grow with the
number of tilts.  Every array is float32 in the input's intensity units.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence

import numpy as np

from ..constants import MIDPOINT_PER_GAP
from . import InputError
from .formats.mdoc import read_mdoc
from .formats.mrc import check_finite_views, open_stack, resolve_pixel_size, StackWriter
from .formats.record import write_record
from .formats.tlt import check_angles_match, read_angles, write_angles
from .plan import InputTilt, OutputTilt, gaps_of, make_input_tilts, make_plan
from .progress import Progress

# The interface every interpolator implements, the linear method and the method
# names live in methods.py (film/inference.py subclasses the interface from
# there, so the FILM package never imports this driver module).
from .methods import FILM, LINEAR, Interpolator, LinearInterpolator  # noqa: F401 (re-exported)
from .methods import recursive_midpoints

#: A synthetic tilt that a midpoint-only method makes at fraction k/(K+1) of its
#: gap may be recorded at a planned fraction that differs by at most this much
#: (uneven real tilt steps, rounding of angles); beyond it the record would
#: claim an angle the image does not show, and the target is refused.
FRACTION_TOLERANCE = 0.02


def fraction_mismatches(plan: Sequence[OutputTilt], fractions_made) -> list:
    """The synthetic tilts of ``plan`` that a method would not make where the
    plan puts them.

    Args:
      plan: the output tilts (:func:`plan.make_plan`).
      fractions_made: the method's ``fractions_made`` (fractions asked of one
        gap -> the fractions it makes; :meth:`Interpolator.fractions_made`).

    Returns:
      [(gap dict of :func:`plan.gaps_of`, output tilt, planned t, t made)] for
      every tilt whose two fractions differ by more than ``FRACTION_TOLERANCE``.
    """
    bad = []
    for g in gaps_of(plan):
        for pos, t, m in zip(g["outputs"], g["fractions"], fractions_made(g["fractions"])):
            if abs(t - m) > FRACTION_TOLERANCE:
                bad.append((g, plan[pos], t, m))
    return bad


def needs_time_aware(plan: Sequence[OutputTilt]) -> bool:
    """True when a midpoint-only FILM model cannot make ``plan``: a gap with a
    number of synthetic tilts other than 1, 3 or 7 (``MIDPOINT_PER_GAP``), or a
    tilt away from the recursive midpoints k/(K+1) of its gap (``--at``,
    restore over uneven steps; see :func:`fraction_mismatches`)."""
    if any(len(g["fractions"]) not in MIDPOINT_PER_GAP for g in gaps_of(plan)):
        return True
    return bool(fraction_mismatches(plan, recursive_midpoints))


def check_fractions(plan: Sequence[OutputTilt], interpolator: Interpolator,
                    tilts: Sequence[InputTilt]) -> None:
    """Refuse a plan whose synthetic tilts ``interpolator`` cannot make where the
    plan puts them (a record never claims an angle its image does not show).

    A midpoint-only method makes fraction k/(K+1) in a gap
    (:meth:`Interpolator.fractions_made`); a planned fraction further than
    ``FRACTION_TOLERANCE`` from it is refused.

    Args:
      plan: the output tilts (:func:`plan.make_plan`).
      interpolator: the method that will synthesise them.
      tilts: the input tilts the plan was made from (angles, degrees).

    Raises:
      InputError: naming the first such target, its fraction t and its gap.
    """
    by_index = {t.index: t for t in tilts}
    bad = fraction_mismatches(plan, interpolator.fractions_made)
    if bad:
        g, o, t, m = bad[0]
        a, b = by_index[g["a"]].angle, by_index[g["b"]].angle
        raise InputError(
            f"method {interpolator.name} synthesises only the midpoints of a gap (t = 0.5; 3 or 7 per gap: "
            f"recursive midpoints) but {len(bad)} target tilt(s) lie elsewhere, e.g. {o.angle:g} deg at "
            f"t = {t:.2f} between {a:g} and {b:g} deg (it would make the image at "
            f"{a + m * (b - a):g} deg; excluded views make gaps uneven); use a time-aware FILM model "
            "(cryotiger train --time-aware; 'cryotiger model info' says 'time-aware: yes') or --method "
            "linear, or, in cryotiger interpolate, --mode add (new tilts at the midpoints)")


def get_interpolator(method: str, **options) -> Interpolator:
    """Build the interpolator for ``method`` ('linear' or 'film').

    FILM options (model, tile_size, tile_overlap, max_memory, device, gpu_ids,
    batch_size, normalization, precision) are passed to
    :class:`cryotiger_scipion.engine.film.inference.FilmInterpolator`;
    TensorFlow is imported only then.

    Returns:
      An :class:`Interpolator`.

    Raises:
      InputError: for an unknown method, or 'film' when TensorFlow (or the
        FILM package) cannot be imported.
      CryoTigerError: what FilmInterpolator raises for bad options or an
        unusable model folder (InputError for a user mistake).
    """
    if method == LINEAR:
        return LinearInterpolator()
    if method == FILM:
        try:
            from .film.inference import FilmInterpolator
        except ImportError as exc:
            raise InputError(f"method 'film' needs TensorFlow, which is not importable here ({exc}); "
                             "run inside the managed environment (see README: 'Managed environment') "
                             "or install tensorflow-cpu") from exc
        return FilmInterpolator(**options)
    raise InputError(f"unknown method '{method}'; use 'linear' or 'film'")


def parse_view_list(text: Optional[str]) -> List[int]:
    """'1,4-6' -> [0, 3, 4, 5]: views numbered from 1 (as IMOD's EXCLUDELIST)
    -> sorted unique 0-based indices.

    Rules (the same for every command; README, "Bad input"): entries are
    separated by commas or spaces; a range ``a-b`` covers a..b inclusive and a
    reversed range ``12-10`` is read as 10-12; repeated or overlapping entries
    count once; 0 and negative numbers are refused (views start at 1).  Views
    beyond the stack are refused where the stack size is known
    (``plan.make_input_tilts``, ``reconstruct.kept_views``, training).

    Args:
      text: the --exclude value; None or blank means no view.

    Returns:
      Sorted unique 0-based view indices.

    Raises:
      InputError: for an entry that is not a number or range, a negative
        number, view 0, or a view number above 100000.
    """
    if text is None:
        return []
    text = str(text).strip()
    if not text:
        return []
    hint = "write view numbers from 1, e.g. '1,4-6'"
    out = set()
    normalised = re.sub(r"\s*-\s*", "-", text)
    for part in re.split(r"[,\s]+", normalised):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            if re.fullmatch(r"-\d+(?:-\d+)?", part):
                raise InputError(f"--exclude '{text}': '{part}' is negative; views are numbered "
                                 "from 1")
            raise InputError(f"--exclude '{text}': '{part}' is not a view number or range; {hint}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        lo, hi = min(lo, hi), max(lo, hi)
        if lo < 1:
            raise InputError(f"--exclude '{text}': view 0 does not exist; views are numbered from 1")
        if hi > 100000:
            raise InputError(f"--exclude '{text}': view {hi} does not exist in any tilt series; {hint}")
        out.update(range(lo - 1, hi))
    return sorted(out)


def describe_input(stack_path: str, angles_path: Optional[str] = None,
                   angles: Optional[Sequence[float]] = None, mdoc_path: Optional[str] = None,
                   exclude: Sequence[int] = (), orders: Optional[Sequence[int]] = None,
                   doses: Optional[Sequence[float]] = None,
                   accum_doses: Optional[Sequence[float]] = None) -> List[InputTilt]:
    """Check the stack against its metadata and return the input tilts.

    Angles come from ``angles`` or ``angles_path``; order and dose from the
    .mdoc when given (its sections must match the stack's angles within 0.5
    degree, matched by angle when the stack is sorted differently), else from
    ``orders``/``doses``/``accum_doses`` or the stack order with no dose.

    Args:
      stack_path: the MRC stack, (n, y, x) (a single (y, x) image counts as n = 1).
      angles_path: tilt-angle file (.tlt, degrees), read when ``angles`` is None.
      angles: tilt angles in degrees, one per image in stack order.
      mdoc_path: SerialEM .mdoc with one section per image.
      exclude: 0-based indices of the excluded views.
      orders: 1-based acquisition orders, one per image.
      doses: exposure of each image, e/A^2.
      accum_doses: dose received before each image, e/A^2.

    Returns:
      One :class:`plan.InputTilt` per image, in stack order.

    Raises:
      InputError: when there are no angles, their number does not match the
        stack, the .mdoc has another number of sections or other angles, or
        :func:`plan.make_input_tilts` refuses the metadata; the readers'
        errors (missing or unreadable files) as they raise them.
    """
    with open_stack(stack_path) as m:
        n = 1 if m.data.ndim == 2 else m.data.shape[0]
    if angles is None:
        if angles_path is None:
            raise InputError(f"{stack_path}: no tilt angles; give --angles TS.tlt")
        angles = read_angles(angles_path)
    angles = np.asarray(angles, dtype=float)
    check_angles_match(angles, n, stack_path, angles_path or "the angle list", excluded=exclude)
    if mdoc_path:
        mdoc = read_mdoc(mdoc_path)
        if len(mdoc.tilts) != n:
            raise InputError(f"{mdoc_path}: {len(mdoc.tilts)} sections but {n} images in "
                             f"{stack_path}; give the .mdoc of this stack")
        mdoc_angles = np.array([t.angle for t in mdoc.tilts])
        if np.max(np.abs(mdoc_angles - angles)) > 0.5:
            # The stack may be sorted by angle while the .mdoc is not: match by angle.
            match = [int(np.argmin(np.abs(mdoc_angles - a))) for a in angles]
            if len(set(match)) != n or np.max(np.abs(mdoc_angles[match] - angles)) > 0.5:
                raise InputError(f"{mdoc_path}: its tilt angles do not match {angles_path or 'the angles'}"
                                 " (differences over 0.5 degree); give the .mdoc of this stack")
        else:
            match = list(range(n))
        order_all = mdoc.acquisition_order
        orders = [int(order_all[j]) for j in match]
        doses = [mdoc.tilts[j].dose for j in match]
        accum_all = mdoc.accumulated_dose
        accum_doses = [float(accum_all[j]) for j in match]
    return make_input_tilts(angles, orders=orders, doses=doses, accum_doses=accum_doses,
                            excluded=exclude)


def output_paths(output: str) -> tuple:
    """(OUT.tlt, OUT.json): the files written beside the output stack OUT.mrc."""
    stem, _ = os.path.splitext(output)
    return stem + ".tlt", stem + ".json"


def confidence_path(output: str) -> str:
    """OUT_confidence.mrc: the confidence maps written beside OUT.mrc (issue 13)."""
    stem, ext = os.path.splitext(output)
    return f"{stem}_confidence{ext or '.mrc'}"


def read_at_angles(text: str) -> List[float]:
    """Parse --at ANGLES: a comma/space separated list of degrees, or the path
    of an angle file (.tlt: one per line).

    Returns:
      The angles in degrees, in the order given (checked by ``plan.make_plan``).

    Raises:
      InputError: (one line) when ``text`` is neither a list of numbers nor an
        existing file; the angle reader's errors for a bad file.
    """
    text = str(text).strip()
    if os.path.isfile(text):
        return [float(a) for a in read_angles(text)]
    try:
        vals = [float(v) for v in re.split(r"[,\s]+", text) if v]
    except ValueError:
        raise InputError(f"--at '{text}': not a list of angles nor an existing angle file; "
                         "give e.g. '12.5,17' or a .tlt file") from None
    return vals


def run_interpolation(input_path: str, output_path: str, tilts: Sequence[InputTilt],
                      interpolator: Interpolator, per_gap: int = 1, mode: str = "add",
                      xf: Optional[np.ndarray] = None, label: str = "",
                      progress: bool = True, pixel_size: Optional[float] = None,
                      extra_metadata: Optional[dict] = None,
                      at: Optional[Sequence[float]] = None) -> List[OutputTilt]:
    """Interpolate one tilt series, gap by gap (memory does not grow with the
    number of tilts).

    Writes ``output_path`` (MRC stack, (n_out, y, x) float32, sorted by angle,
    pixel size kept), the .tlt and the .json record beside it (same stem;
    engine/formats/record.py).  Methods with confidence maps (FILM) also write
    OUT_confidence.mrc: one (y, x) float32 map in [0, 1] per output slice, real
    tilts 1.0; the record's synthetic entries get the map's mean as
    ``confidence``.  Excluded views holding NaN/inf are left out of the output.

    Args:
      input_path: the input MRC stack, (n, y, x), any real dtype.
      output_path: the output stack (must not be the input).
      tilts: the input tilts (:func:`describe_input`).
      interpolator: the method (:func:`get_interpolator`).
      per_gap: new tilts per gap (add) or dropped tilts per gap (restore).
      mode: "add" or "restore" (see engine/plan.py).
      xf: (n, 2, 3) per-view transforms applied to the input first (see
        align.py), or None for an aligned stack.
      label: name in log lines and messages (default: the input's file name).
      progress: print progress.
      pixel_size: Angstrom per pixel (default: the input header's; 0 when unknown).
      extra_metadata: not used.
      at: angles in degrees of the new tilts instead of ``per_gap`` per gap.

    Returns:
      The plan: the :class:`plan.OutputTilt` list, confidences filled in.

    Raises:
      InputError: for a non-finite view that is not excluded, a plan that
        :func:`plan.make_plan` or :func:`check_fractions` refuses, an output
        that is the input, a bad pixel size, or a number of transforms other
        than the number of images.
      RuntimeError: when the interpolator returns NaN or infinite values.
      OutputError: from the stack writer (full disk, see engine/outputs.py).
    """
    from .align import Aligner

    label = label or os.path.basename(input_path)
    # Every view that is not excluded must be finite (checked before any work);
    # an excluded view whose pixels are not finite cannot be carried into the
    # output and is left out of it (excluded views are never used).
    with open_stack(input_path) as m:
        data = m.data if m.data.ndim == 3 else m.data[None]
        check_finite_views(data, [t.index for t in tilts if not t.excluded], label)
        unusable = [t.index for t in tilts if t.excluded and not np.all(np.isfinite(data[t.index]))]
    if unusable:
        tilts = [t for t in tilts if t.index not in set(unusable)]
        if progress:
            print(f"{label}: excluded view(s) {', '.join(str(i + 1) for i in unusable)} hold NaN or "
                  "infinite values and are left out of the output", flush=True)
    plan = make_plan(tilts, per_gap=per_gap, mode=mode, at=at)
    check_fractions(plan, interpolator, tilts)
    gaps = gaps_of(plan)
    tlt_path, json_path = output_paths(output_path)
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise InputError(f"{output_path}: the output would overwrite the input; choose another name")
    with open_stack(input_path) as m:
        data = m.data if m.data.ndim == 3 else m.data[None]
        # --pixel-size when given (refused unless finite and > 0), else the header's;
        # 0 = unknown (written as 0, never NaN/inf).
        pixel_size = resolve_pixel_size(pixel_size, input_path, header_px=m.pixel_size,
                                        required=False)
        if xf is not None and len(xf) != data.shape[0]:
            raise InputError(f"{len(xf)} transforms for {data.shape[0]} images; give one per image")
        used = sorted({i for o in plan for i in o.sources})
        aligner = Aligner(xf, data.shape[1:], label=label, views=used)
        cache: dict = {}
        # Interpolators that need whole-stack statistics (FILM's 'notebook'
        # normalisation: global min/max) get the (n, y, x) stack first.
        prepare = getattr(interpolator, "prepare_stack", None)
        if prepare is not None:
            prepare(data)

        def image(i: int) -> np.ndarray:
            if i not in cache:
                img = np.asarray(data[i], dtype=np.float32)
                img = aligner(img, i)
                if len(cache) > 4:
                    cache.pop(next(iter(cache)))
                cache[i] = img
            return cache[i]

        prog = Progress(len(gaps), label, unit="pair", enabled=progress)
        prog.log(f"{len(plan)} output tilts ({sum(o.synthetic for o in plan)} synthetic) "
                 f"from {data.shape[0]} inputs, method {interpolator.name}, mode {mode}")
        from contextlib import ExitStack
        with ExitStack() as stack:
            writer = stack.enter_context(StackWriter(output_path, len(plan), aligner.shape, pixel_size))
            conf_writer = None
            if interpolator.has_confidence:
                conf_writer = stack.enter_context(
                    StackWriter(confidence_path(output_path), len(plan), aligner.shape, pixel_size))
            ones = np.ones(aligner.shape, np.float32)
            for o in plan:
                if not o.synthetic:
                    writer[o.index] = image(o.input_index)
                    if conf_writer is not None:
                        conf_writer[o.index] = ones
                        o.confidence = 1.0
            step = max(1, int(interpolator.gaps_per_call))
            for start in range(0, len(gaps), step):
                chunk = gaps[start:start + step]
                results, confs = interpolator.interpolate_gaps_with_confidence(
                    [(image(g["a"]), image(g["b"]), g["fractions"]) for g in chunk])
                for j, (g, res) in enumerate(zip(chunk, results)):
                    for k, (pos, img) in enumerate(zip(g["outputs"], res)):
                        if not np.all(np.isfinite(img)):
                            raise RuntimeError(f"{label}: the {interpolator.name} interpolator "
                                               "produced NaN/inf values")
                        writer[pos] = img
                        if conf_writer is not None:
                            c = np.clip(np.nan_to_num(confs[j][k], nan=0.0), 0.0, 1.0)
                            conf_writer[pos] = c
                            plan[pos].confidence = float(np.mean(c, dtype=np.float64))
                    prog.update(1, f"views {g['a'] + 1}-{g['b'] + 1}")
            # Metadata is written before the stack is renamed into place, and the
            # .json (the record of what each slice is) last.
            write_angles(tlt_path, [o.angle for o in plan])
        write_record(json_path, [o.to_json() for o in plan])
    return plan
