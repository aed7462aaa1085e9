"""``cryotiger ctf``: per-tilt defocus (U, V, astigmatism angle) of a tilt series.

Contract (kept stable, used by checks outside the repository):
  cryotiger ctf --input TS.mrc --angles TS.tlt --pixel-size A --voltage KV --cs MM
      --amp-contrast F --output CTF.json
CTF.json: a list, one entry per tilt in stack order, with ``angle`` (degrees),
``defocus_u``, ``defocus_v`` (Angstrom, underfocus positive, U >= V) and
``astig_angle`` (degrees, direction of U from the x axis), plus ``defocus``
(mean), ``fit_score``, ``resolution`` (A), ``backend``, ``on_bound`` (search
bounds the fit ended on: astig_max, defocus_min, defocus_max) and, with an
interpolation record, ``synthetic``.  Excluded views (--exclude, or flagged in
the record) are not estimated: ``excluded`` true, ``estimated`` false, values
null.
"""
from __future__ import annotations

import os
import time

from . import add_angles, add_exclude, add_input, add_microscope, add_output, add_quiet


def register(subparsers):
    """Add the ``cryotiger ctf`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger ctf --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "ctf", help="estimate the CTF (defocus U, V, astigmatism) of every tilt",
        description="Estimate the defocus of every tilt of a tilt series (synthetic tilts "
                    "included) with the built-in CPU estimator or the Gctf binary. Writes "
                    "CTF.json: one entry per tilt in stack order.")
    add_input(p, "tilt-series stack (.mrc/.mrcs/.st/.ali)")
    add_angles(p, required=True)
    add_output(p, "CTF.json to write")
    add_microscope(p)
    p.add_argument("--backend", default="builtin", choices=["builtin", "gctf"],
                   help="builtin: CPU estimator in the engine; gctf: the Gctf binary (GPU)")
    p.add_argument("--gctf", default=None, help="Gctf binary (backend gctf; default: $CRYOTIGER_GCTF_BIN, "
                                                "then Gctf on PATH)")
    p.add_argument("--gpu-id", default="0",
                   help="GPU id for Gctf (0; of a list such as '0 1' the first is used)")
    p.add_argument("--defocus-min", type=float, default=5000.0, help="search range start, A (5000)")
    p.add_argument("--defocus-max", type=float, default=80000.0, help="search range end, A (80000)")
    p.add_argument("--defocus-step", type=float, default=500.0, help="1D search step, A (500)")
    p.add_argument("--res-min", type=float, default=50.0,
                   help="low-resolution end of the fitting band, A (50)")
    p.add_argument("--res-max", type=float, default=None,
                   help="high-resolution end of the fitting band, A (default: max(10, 2.5 x pixel size))")
    p.add_argument("--tile-size", type=int, default=None,
                   help="tile (box) size in px (default: 512, less for small images)")
    p.add_argument("--astigmatism", default="series", choices=["series", "tilt", "none"],
                   help="builtin: one astigmatism for the whole series (default), per tilt, or none")
    p.add_argument("--astig-max", type=float, default=3000.0, help="largest |U - V| considered, A (3000)")
    p.add_argument("--series-window", type=float, default=10000.0,
                   help="builtin: tilts whose defocus lies further than this (A) from the series' "
                        "median are refitted inside that window (10000; 0: off)")
    p.add_argument("--defocus-gradient", action="store_true",
                   help="builtin: model the defocus gradient across tilted images (tiles grouped "
                        "by height above the tilt axis, defocus + sign x tan(angle))")
    p.add_argument("--gradient-sign", type=int, default=0, choices=[-1, 0, 1],
                   help="with --defocus-gradient: +1 (defocus grows with x at positive angles), "
                        "-1, or 0 to choose the better fit per tilt (default)")
    p.add_argument("--plan", default=None,
                   help="OUT.json written by 'cryotiger interpolate' beside this stack: copies "
                        "the synthetic flag of each tilt into CTF.json and skips the views it "
                        "flags excluded (default: STEM.json beside the stack when it is that "
                        "record)")
    add_exclude(p, "views not to estimate, numbered from 1 (e.g. '1,40-41'); their CTF.json "
                   "entries say excluded, with null values")
    p.add_argument("--work-dir", default=None, help="gctf: folder for per-tilt MRCs and logs "
                                                    "(default: OUTPUT stem + '_gctf')")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``cryotiger ctf``: estimate the defocus of every tilt of ``args.input``
    (built-in estimator or Gctf) and write CTF.json (``args.output``).

    The output is checked against the inputs and locked first (engine/outputs.py).

    Args:
      args: the parsed options (argparse.Namespace of :func:`register`'s parser);
        pixel size in Angstrom, voltage kV, Cs mm, defocus range and steps Angstrom.

    Returns:
      0 (success).

    Raises:
      InputError: for a missing stack, angles that do not match it, excluded
        views outside it, a bad pixel size or fit option, non-finite views,
        a --gpu-id without a number, or every tilt featureless (gctf).
      InputError: also when the Gctf binary is not found (backend gctf).
      GctfError: when Gctf fails, times out or writes no result (engine/gctf.py).
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..outputs import OutputSet
    from .interpolate import record_beside
    work = None
    if args.backend == "gctf":
        work = args.work_dir or os.path.splitext(args.output)[0] + "_gctf"
    outs = OutputSet("ctf", files=[(args.output, "--output")],
                     inputs=[(args.input, "--input"), (args.angles, "--angles"), (args.plan, "--plan"),
                             (args.gctf, "--gctf"), record_beside(args.input)],
                     folders=[(work, "--work-dir", "scratch")])
    with outs:
        return _run(args)


def _run(args) -> int:
    from .. import InputError
    from ..ctf import FitOptions, Microscope, estimate_stack, results_to_json
    from ..formats.ctf_json import write_ctf_json
    from ..interpolate import parse_view_list
    from ..formats.mrc import check_finite_views, open_stack, resolve_pixel_size
    from ..formats.tlt import check_angles_match, read_angles
    from ..formats.record import excluded_views, find_record, synthetic_views

    if not os.path.exists(args.input):
        raise InputError(f"{args.input}: input stack not found")
    with open_stack(args.input) as m:
        data = m.data if m.data.ndim == 3 else m.data[None]
        n = data.shape[0]
        angles = read_angles(args.angles)
        # Excluded views: --exclude and those the interpolation record flags (engine/formats/record.py).
        record = find_record(args.input, n, angles if len(angles) == n else None,
                             explicit=args.plan)
        skip = sorted(set(parse_view_list(args.exclude)) | set(excluded_views(record)))
        bad = [v for v in skip if not 0 <= v < n]
        if bad:
            raise InputError(f"excluded view {bad[0] + 1} does not exist: the stack has {n} "
                             "images (views are numbered from 1)")
        check_angles_match(angles, n, args.input, args.angles, excluded=skip)
        # --pixel-size when given (refused unless finite and > 0), else the header's (required).
        px = resolve_pixel_size(args.pixel_size, args.input, header_px=m.pixel_size)
        check_finite_views(data, [i for i in range(n) if i not in set(skip)], args.input,
                           excluded_hint=False)                                # before any work
    scope = Microscope(pixel_size=px, voltage=args.voltage, cs=args.cs,
                       amp_contrast=args.amp_contrast)
    options = FitOptions(defocus_min=args.defocus_min, defocus_max=args.defocus_max,
                         defocus_step=args.defocus_step, res_min=args.res_min,
                         res_max=args.res_max, tile_size=args.tile_size,
                         astigmatism_mode=args.astigmatism, astig_max=args.astig_max,
                         defocus_gradient=args.defocus_gradient,
                         gradient_sign=args.gradient_sign,
                         series_window=args.series_window)
    scope.check()
    options.check(px)
    synthetic = None
    if record is not None:
        syn = set(synthetic_views(record))
        synthetic = [i in syn for i in range(n)]
    t0 = time.monotonic()
    if args.backend == "gctf":
        from ..gctf import GctfOptions, find_gctf, run_gctf_stack
        binary = find_gctf(args.gctf)
        work = args.work_dir or os.path.splitext(args.output)[0] + "_gctf"
        gopts = GctfOptions.from_fit_options(options, scope, gpu_id=_first_gpu(args.gpu_id))
        from ..ctf import featureless_reason, not_estimated
        with open_stack(args.input) as m:     # featureless tilts: marked, never reported as fitted
            data = m.data if m.data.ndim == 3 else m.data[None]
            skipped = {i: r for i in range(n) if i not in set(skip)
                       for r in [featureless_reason(data[i])] if r}
        if skipped and len(skipped) + len(skip) == n:
            raise InputError(f"every tilt ({n}) is featureless ({next(iter(skipped.values()))}): there is no CTF to "
                             "estimate; check the stack (is it the right file?)")
        results = run_gctf_stack(binary, args.input, angles, gopts, work, progress=not args.quiet)
        from ..ctf import excluded_result
        results = [excluded_result(float(angles[i])) if i in set(skip) else
                   not_estimated(float(angles[i]), skipped[i]) if i in skipped else r
                   for i, r in enumerate(results)]
        entries = results_to_json(results, synthetic, backend="gctf")
    else:
        results = estimate_stack(args.input, angles, scope, options, progress=not args.quiet,
                                 skip=skip)
        entries = results_to_json(results, synthetic, backend="builtin")
    write_ctf_json(args.output, entries)
    missing = [i + 1 for i, e in enumerate(entries)
               if e.get("estimated") is False and not e.get("excluded")]
    if missing:
        import sys
        print(f"cryotiger ctf: warning: tilt(s) {', '.join(map(str, missing[:10]))}"
              f"{' ...' if len(missing) > 10 else ''} (numbered from 1) are featureless and marked "
              f"not estimated in {args.output} (\"estimated\": false, no defocus)", file=sys.stderr)
    bounds: dict = {}
    for e in entries:
        for b in e.get("on_bound") or []:
            bounds[b] = bounds.get(b, 0) + 1
    if bounds:
        import sys
        print("cryotiger ctf: warning: fits ended on a search bound ("
              + ", ".join(f"{k}: {v} tilt(s)" for k, v in sorted(bounds.items()))
              + "; flagged 'on_bound' in the CTF.json); the true value may lie beyond it: widen "
              "--astig-max/--defocus-min/--defocus-max or check the images", file=sys.stderr)
    if not args.quiet:
        import numpy as np
        dz = np.array([e["defocus"] for e in entries if e.get("estimated") is not False])
        print(f"wrote {args.output}: {len(entries)} tilts"
              f"{f' ({len(skip)} excluded, not estimated)' if skip else ''}, defocus {dz.min() / 1e4:.3f}.."
              f"{dz.max() / 1e4:.3f} um (median {np.median(dz) / 1e4:.3f} um) in "
              f"{time.monotonic() - t0:.1f} s")
    return 0


def _first_gpu(text) -> int:
    """The first GPU id of '0', '1 2' or '0,1' (Scipion passes its GPU list)."""
    import re
    from .. import InputError
    m = re.search(r"\d+", str(text))
    if not m:
        raise InputError(f"--gpu-id '{text}' holds no GPU number; give e.g. --gpu-id 0")
    return int(m.group(0))
