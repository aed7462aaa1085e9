"""``cryotiger interpolate``: synthesise tilts between the acquired ones.

Contract (kept stable, used by checks outside the repository):
  cryotiger interpolate --input TS.mrc --angles TS.tlt --output OUT.mrc
      --method linear|film [--per-gap K] [--mode add|restore]
      [--model DIR --tile-size N --tile-overlap N --max-memory GiB --device cpu|gpu]
  cryotiger interpolate --input TS.mrc --angles TS.tlt --output OUT.mrc --method film
      --fit-minutes M [--model DIR] [--mode add|restore]
      (fits FILM to the series' own tilts first, starting from DIR or the starter
      model; the fitted model is kept as OUT_fitted_film/)
  cryotiger interpolate ... --method film --model DIR [--per-gap K | --at ANGLES]
      (K >= 1 and --at need a time-aware model, cryotiger train --time-aware;
      midpoint-only models make K = 1, 3 or 7; without --model such plans use
      the time-aware model shipped with the plugin, models/film_timeaware)
writes OUT.mrc, OUT.tlt and OUT.json (one entry per output slice); --method film
also writes OUT_confidence.mrc (one confidence map in [0, 1] per output slice,
real tilts 1.0) and a numeric 'confidence' for every synthetic entry of OUT.json.
"""
from __future__ import annotations

import os
import sys
import time

from . import (add_angles, add_exclude, add_input, add_output, add_pixel_size, add_quiet,
               add_xf)


def register(subparsers):
    """Add the ``cryotiger interpolate`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger interpolate --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "interpolate", help="synthesise tilts between acquired ones (linear or FILM)",
        description="Synthesise new tilts between the acquired tilts of an ALIGNED tilt series. "
                    "Writes OUT.mrc (sorted by angle, pixel size kept), OUT.tlt and OUT.json.")
    add_input(p)
    add_angles(p, help="tilt angles, one per image in stack order (.tlt/.rawtlt)")
    p.add_argument("--mdoc", help="SerialEM .mdoc: acquisition order and dose per tilt (optional)")
    add_output(p, "output stack; .tlt and .json are written beside it")
    p.add_argument("--method", default="linear", choices=["linear", "film"])
    p.add_argument("--per-gap", type=int, default=1,
                   help="new tilts per gap (FILM: any K >= 1 with a time-aware model; 1, 3 or 7 "
                        "with a midpoint-only model: recursive midpoints)")
    p.add_argument("--at", default=None, metavar="ANGLES",
                   help="make new tilts exactly at these angles (degrees; --at=-12.5,17 or a .tlt "
                        "file) instead of --per-gap; FILM needs a time-aware model")
    p.add_argument("--mode", default="add", choices=["add", "restore"],
                   help="add: between all acquired tilts; restore: drop every second tilt and "
                        "synthesise it back (for comparison with the real one)")
    add_exclude(p)
    p.add_argument("--acquisition-json", default=None,
                   help="JSON object with per-image lists in stack order: 'order' (1-based "
                        "acquisition order), 'dose' (e/A^2 of each image) and 'accum_dose' (e/A^2 "
                        "received before each image); any may be left out. Alternative to --mdoc "
                        "(written by the Scipion protocols from the tilt images' metadata)")
    add_xf(p)
    add_pixel_size(p)
    film = p.add_argument_group("FILM options")
    film.add_argument("--model", help="FILM SavedModel folder (published, trained, or 'cryotiger model init'); "
                                      "left out, new tilts away from the midpoints (--per-gap other than "
                                      "1, 3, 7, --at) use the time-aware model shipped with the plugin")
    film.add_argument("--fit-minutes", type=float, default=None,
                      help="first fit FILM to this series for M minutes (self-supervised: tilts two "
                           "apart predict the one between; restore mode: kept tilts only), starting "
                           "from --model or the shipped starter model (time-aware one for --at / "
                           "--per-gap other than 1, 3, 7); the fitted model is kept beside the "
                           "output as OUT_fitted_film/ (reuse it with --model)")
    film.add_argument("--tile-size", type=int, default=None, help="tile size in pixels (default: from --max-memory)")
    film.add_argument("--tile-overlap", type=int, default=None, help="tile overlap in pixels")
    film.add_argument("--max-memory", type=float, default=None, help="memory budget in GiB for tiling")
    film.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    film.add_argument("--gpu-ids", default=None, help="GPU ids to use, e.g. '0,1'")
    film.add_argument("--batch-size", type=int, default=None, help="pairs (tiles) per network call")
    film.add_argument("--normalization", default="robust", choices=["robust", "notebook"],
                      help="robust: percentile scaling per pair, float; notebook: the public "
                           "notebook's global min/max + uint8 path (for comparison)")
    film.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed", "bfloat16"],
                      help="compute precision (auto: the fastest one measured accurate on the device: "
                           "float16 + XLA on GPU, bfloat16 for the published network on CPUs with "
                           "AVX512-BF16/AMX, else float32)")
    add_quiet(p)
    p.set_defaults(func=run)


def film_options(args) -> dict:
    """The FILM options given in ``args`` (model, tile_size, tile_overlap,
    max_memory, device, gpu_ids, batch_size, normalization, precision; those
    left out are omitted), as keyword arguments of ``get_interpolator('film')``.
    ``args.gpu_ids`` "0 1" (Scipion's %(GPU)s) is rewritten as "0,1" in place.
    """
    if getattr(args, "gpu_ids", None):
        # Scipion fills %(GPU)s with space-separated ids ("0 1"): accept both.
        args.gpu_ids = ",".join(str(args.gpu_ids).replace(",", " ").split())
    return {k: getattr(args, k) for k in ("model", "tile_size", "tile_overlap", "max_memory", "device",
                                          "gpu_ids", "batch_size", "normalization", "precision")
            if getattr(args, k, None) is not None}


def read_series_options(args) -> tuple:
    """(angles or None, xf or None, acquisition dict) from the options shared by
    the commands that read a tilt series: --angles/--mdoc, --xf, --acquisition-json.

    ``angles`` (degrees, from the .mdoc) is None when --angles is given (the
    file is read with the stack); ``xf`` is the (n, 2, 3) transforms of --xf in
    the --aligned-size frame; the dict holds orders, doses, accum_doses (e/A^2).

    Raises:
      InputError: when neither --angles nor --mdoc is given, --aligned-size
        comes without --xf, --mdoc and --acquisition-json are both given, or a
        reader refuses its file.
    """
    from .. import InputError
    if not args.angles and not getattr(args, "mdoc", None):
        raise InputError("no tilt angles: give --angles TS.tlt (or --mdoc TS.mdoc)")
    angles = None
    if not args.angles:
        from ..formats.mdoc import read_mdoc
        angles = [t.angle for t in read_mdoc(args.mdoc).tilts]
    xf = None
    if getattr(args, "xf", None):
        from ..align import with_frame
        from ..formats.xf import read_xf
        xf = with_frame(read_xf(args.xf), getattr(args, "aligned_size", None))
    elif getattr(args, "aligned_size", None):
        raise InputError("--aligned-size sets the frame of the images aligned with --xf; give --xf")
    acq = {}
    acq_json = getattr(args, "acquisition_json", None)
    if acq_json:
        if getattr(args, "mdoc", None):
            raise InputError("give either --mdoc or --acquisition-json, not both")
        from ..formats.acquisition import read_acquisition_json
        lists = read_acquisition_json(acq_json)
        # the file's keys -> describe_input's keyword arguments
        acq = {name: lists[key] for key, name in (("order", "orders"), ("dose", "doses"),
                                                  ("accum_dose", "accum_doses")) if key in lists}
    return angles, xf, acq


def record_exclusions(args, angles=None, synthetic: bool = False) -> list:
    """0-based views to exclude: --exclude, plus the views that the
    interpolation record beside --input (OUT.json, engine/formats/record.py) flags
    excluded, plus (``synthetic``) its synthetic tilts.

    Args:
      args: parsed options with ``input``, ``angles`` and ``exclude``.
      angles: the tilt angles in degrees when known (else read from --angles),
        used to match the record to the stack.
      synthetic: also exclude the record's synthetic tilts.

    Returns:
      Sorted unique 0-based indices (only --exclude when the stack is missing).

    Raises:
      InputError: for a bad --exclude, or an unreadable angle file or stack.
    """
    from ..interpolate import parse_view_list
    from ..formats.mrc import stack_shape
    from ..formats.tlt import read_angles
    from ..formats.record import excluded_views, find_record, synthetic_views
    exclude = parse_view_list(args.exclude)
    if not os.path.exists(args.input):
        return exclude
    if angles is None and args.angles and os.path.exists(args.angles):
        angles = read_angles(args.angles)
    record = find_record(args.input, stack_shape(args.input)[0], angles)
    extra = excluded_views(record) + (synthetic_views(record) if synthetic else [])
    return sorted(set(exclude) | set(extra))


def run(args) -> int:
    """Run ``cryotiger interpolate``: synthesise tilts between the acquired ones
    of ``args.input`` (linear or FILM, optionally fitting FILM first) and
    write OUT.mrc, OUT.tlt, OUT.json (and OUT_confidence.mrc for FILM) as one
    output set (:func:`output_set`).

    Returns:
      0 (success); a FILM fallback warning is repeated on stderr.

    Raises:
      InputError: for a missing stack, bad --at, --at with --mode restore, no
        angles, bad metadata or exclusions, --fit-minutes without --method film
        or not > 0, --method film without --model or --fit-minutes for
        midpoints (``default_model``), or what
        ``engine.interpolate.run_interpolation`` refuses.
      CryoTigerError: an unusable FILM model or TensorFlow problem.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    with output_set(args):      # checks, lock: before any work; commits the set at the end
        return _run(args)


def output_set(args):
    """The :class:`engine.outputs.OutputSet` of ``interpolate``: what it writes
    (OUT.mrc, then OUT.tlt, OUT_confidence.mrc and OUT.json beside it; with
    --fit-minutes the fitted model folder) and reads (the tilt-series files,
    the --model folder for FILM).
    """
    from ..interpolate import output_paths
    from ..outputs import OutputSet
    from ..interpolate import confidence_path
    tlt, record = output_paths(args.output)
    folders = []
    if getattr(args, "fit_minutes", None) is not None:
        from ..fit import fitted_model_path
        folders.append((fitted_model_path(args.output), "the fitted model beside --output", "replace"))
    return OutputSet("interpolate",
                     files=[(args.output, "--output"), (tlt, "the .tlt written beside --output"),
                            (confidence_path(args.output),
                             "the confidence maps written beside --output"),
                            (record, "the .json record written beside --output")],
                     inputs=series_inputs(args), folders=folders,
                     input_folders=[(args.model, "--model")] if args.method == "film" else [])


def series_inputs(args) -> list:
    """[(path, option)] of the tilt-series files a command reads (--input,
    --angles, --mdoc, --xf, --acquisition-json; None when not given), plus the
    record OUT.json beside --input (engine/formats/record.py reads it).
    """
    return [(getattr(args, k, None), "--" + k.replace("_", "-"))
            for k in ("input", "angles", "mdoc", "xf", "acquisition_json")] + [record_beside(args.input)]


def record_beside(stack: str) -> tuple:
    """(path, role) of the interpolation record STEM.json beside ``stack``, read
    when present (engine/formats/record.py); (None, role) when there is none or
    the file there is not an interpolation record (the reader ignores it then, so
    it is no input: e.g. a hold-out report R.json written there by an earlier run)."""
    from .. import InputError
    from ..formats.record import read_record, record_beside as record_path
    path = record_path(stack) if stack else None
    if not path or not os.path.isfile(path):
        return None, "record beside --input"
    try:
        read_record(path)
    except InputError:
        return None, "record beside --input"
    return path, "record beside --input"


def _run(args) -> int:
    from .. import InputError
    from ..interpolate import describe_input, get_interpolator, read_at_angles, run_interpolation

    if not os.path.exists(args.input):
        raise InputError(f"{args.input}: input stack not found")
    at = read_at_angles(args.at) if getattr(args, "at", None) else None
    if at is not None and args.mode != "add":
        raise InputError("--at ANGLES adds tilts at the given angles; leave out --mode restore")
    args.at_angles = at
    angles, xf, acq = read_series_options(args)
    exclude = record_exclusions(args, angles)
    tilts = describe_input(args.input, angles_path=args.angles, angles=angles, mdoc_path=args.mdoc,
                           exclude=exclude, **acq)
    fit_minutes = getattr(args, "fit_minutes", None)
    if fit_minutes is not None and args.method != "film":
        raise InputError("--fit-minutes fits the FILM network; give --method film (or leave it out)")
    if fit_minutes is not None and fit_minutes <= 0:
        raise InputError(f"--fit-minutes {fit_minutes:g}: give a positive number of minutes")
    fitted = None
    if args.method == "film":
        if not args.model and fit_minutes is None:
            args.model = default_model(args, tilts)
        if fit_minutes is not None:
            fitted = fit_first(args, tilts)
            args.model = fitted["model"]
        interpolator = get_interpolator("film", **film_options(args))
    else:
        interpolator = get_interpolator(args.method)
    t0 = time.monotonic()
    plan = run_interpolation(args.input, args.output, tilts, interpolator, per_gap=args.per_gap,
                             mode=args.mode, xf=xf, progress=not args.quiet,
                             pixel_size=args.pixel_size, at=at)
    if not args.quiet:
        n_syn = sum(o.synthetic for o in plan)
        print(f"wrote {args.output}: {len(plan)} tilts ({n_syn} synthetic) in "
              f"{time.monotonic() - t0:.1f} s")
    if fitted is not None:
        from ..fit import describe_fit
        print(describe_fit(fitted), flush=True)
    warning = getattr(interpolator, "fallback_warning", None)
    if warning:  # repeated in the summary, also with --quiet (the Scipion log shows stderr)
        print(warning, file=sys.stderr)
    return 0


def default_model(args, tilts) -> str:
    """The FILM model of ``--method film`` without --model or --fit-minutes: the
    time-aware model shipped with the plugin (``fit.TIMEAWARE_DIR``) when the
    plan needs tilts away from the midpoints of their gaps (--per-gap other
    than 1, 3 or 7, --at, restore over uneven steps: what no published model
    makes).  Midpoints need a model chosen by the user (published, trained).

    Args:
      args: the parsed ``interpolate`` options (per_gap, mode, at_angles, quiet).
      tilts: the input tilts (engine/plan.py ``InputTilt``).

    Returns:
      The model folder (a line saying so is printed unless --quiet).

    Raises:
      InputError: for a midpoint plan (naming --model, --fit-minutes and the
        download command), when no time-aware model is shipped, or when the
        plan is refused (``plan.make_plan``).
    """
    from .. import InputError
    from ..download import install_hint
    from ..fit import TIMEAWARE_DIR, shipped
    from ..interpolate import needs_time_aware
    from ..plan import make_plan
    plan = make_plan(tilts, per_gap=args.per_gap, mode=args.mode, at=getattr(args, "at_angles", None))
    if not needs_time_aware(plan):
        raise InputError("--method film needs --model DIR (a FILM SavedModel folder) or "
                         "--fit-minutes M (fit to this series first); " + install_hint())
    if not shipped(TIMEAWARE_DIR):
        raise InputError(f"no time-aware FILM model is shipped in {TIMEAWARE_DIR} (a partial install?); "
                         "give --model DIR of a time-aware model (cryotiger train --time-aware) or "
                         "--fit-minutes M")
    if not args.quiet:
        print(f"FILM model: the time-aware model shipped with the plugin ({TIMEAWARE_DIR}; trained on "
              "simulated tilt series, bench/make_starter.py --time-aware); for your data add "
              "--fit-minutes M or train one (cryotiger train --time-aware)", flush=True)
    return TIMEAWARE_DIR


def fit_first(args, tilts) -> dict:
    """--fit-minutes: fit FILM to the series (engine/fit.py) before interpolating.

    Args:
      args: the parsed ``interpolate`` options (model, device, gpu_ids,
        per_gap, mode, at_angles, output, fit_minutes, xf, quiet).
      tilts: the input tilts (engine/plan.py ``InputTilt``; angles in degrees).

    Returns:
      The fit summary (its 'model' is the fitted SavedModel folder
      OUT_fitted_film/).

    Raises:
      InputError: when --model is the folder the fit writes or is midpoint-only
        while the plan needs a time-aware model, or the plan is refused; what
        ``engine.fit.fit_series`` raises.
    """
    from .. import InputError
    from ..fit import FitOptions, fit_series, fitted_model_path
    from ..film.inference import configure_devices
    from ..plan import make_plan
    gpu_ids = ",".join(str(args.gpu_ids).replace(",", " ").split()) if args.gpu_ids else None
    configure_devices(args.device, gpu_ids)
    plan = make_plan(tilts, per_gap=args.per_gap, mode=args.mode,
                     at=getattr(args, "at_angles", None))
    out_model = fitted_model_path(args.output)
    if os.path.abspath(args.model or "") == out_model:
        raise InputError(f"--model {args.model} is the folder the fit writes; copy it elsewhere "
                         "to start from it")
    if args.model:      # a fit keeps its starting model's kind: refuse before fitting
        from ..film.savedmodel import find_saved_model_dir, read_config
        from ..interpolate import needs_time_aware
        cfg = read_config(find_saved_model_dir(args.model))     # None: a published model, midpoint-only
        if (cfg is None or not cfg.time_conditioning) and needs_time_aware(plan):
            raise InputError(f"--model {args.model} is midpoint-only ('time-aware: no' in cryotiger "
                             "model info) and a fit keeps that, but these new tilts are not all "
                             "midpoints of their gaps (--per-gap other than 1, 3 or 7, --at, or uneven "
                             "steps); start the fit from a time-aware model, or leave --model out (the "
                             "fit then starts from the time-aware model shipped with the plugin)")
    log = (lambda msg: print(msg, flush=True)) if not args.quiet else (lambda msg: None)
    return fit_series(args.input, [t.angle for t in tilts], plan, out_model, init=args.model,
                      options=FitOptions(minutes=args.fit_minutes), xf=args.xf or "",
                      progress=not args.quiet, log=log)
