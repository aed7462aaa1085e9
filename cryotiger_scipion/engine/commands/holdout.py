"""``cryotiger holdout``: restore-mode evaluation of interpolation methods.

Contract (kept stable, used by checks outside the repository):
  cryotiger holdout --input TS.mrc --angles TS.tlt --method linear
      [--method film --model DIR [--name NAME] ...] --report R.json [--plot DIR]
drops every second tilt, synthesises it back with each method and compares it
with the real one.  R.json: ``methods`` -> name -> ``psnr``, ``rmse``, ``ssim``
(per held-out tilt) and ``median_psnr``, ``median_rmse``, ``median_ssim``; plus
``angles``, ``input_indices``, ``data_range`` and ``paired_tests``.

--method may repeat.  --model and --name apply to the --method they follow.
Default names: the method, then film-2, film-3 ... for repeats.
"""
from __future__ import annotations

import sys

import argparse

from . import add_angles, add_exclude, add_input, add_microscope, add_quiet, add_xf


class _Ordered(argparse.Action):
    """Collects --method/--model/--name in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, "method_tokens", None) or []
        items.append((self.dest, values))
        setattr(namespace, "method_tokens", items)


def register(subparsers):
    """Add the ``cryotiger holdout`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger holdout --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "holdout", help="evaluate methods by restoring held-out tilts (PSNR, RMSE, SSIM)",
        description="Restore-mode evaluation: drop every second tilt of an ALIGNED tilt series, "
                    "synthesise it back from its neighbours with each method and compare it "
                    "with the real tilt (PSNR, RMSE, SSIM per tilt, medians, paired tests).")
    add_input(p, "aligned tilt-series stack (.mrc/.st/.ali)")
    add_angles(p)
    p.add_argument("--mdoc", help="SerialEM .mdoc (optional; angles when --angles is absent)")
    p.add_argument("--method", action=_Ordered, dest="method", choices=["linear", "film"],
                   help="method to evaluate; repeat for several (e.g. --method linear "
                        "--method film --model DIR)")
    p.add_argument("--model", action=_Ordered, dest="model",
                   help="FILM SavedModel folder of the preceding --method film")
    p.add_argument("--name", action=_Ordered, dest="name",
                   help="name of the preceding --method in the report and plots "
                        "(default: linear, film, film-2, ...)")
    p.add_argument("--report", required=True, help="JSON report to write (R.json)")
    p.add_argument("--plot", help="folder for box plots (holdout_boxplots.png, ...)")
    p.add_argument("--data-range", default="tilt",
                   help="data range for PSNR/SSIM: 'tilt' (max-min of the real tilt, default), "
                        "'robust' (0.5-99.5 percentile of the real tilt), 'stack' (max-min of "
                        "the whole input) or a number")
    p.add_argument("--per-gap", type=int, default=1,
                   help="tilts dropped between two kept ones (1: every second tilt)")
    add_exclude(p)
    p.add_argument("--acquisition-json", help="per-image acquisition order and dose (as for "
                   "'cryotiger interpolate'); optional")
    add_xf(p, "IMOD .xf transforms to apply first (real tilts are aligned the same way before "
              "the comparison)")
    p.add_argument("--keep", help="folder to keep the restored stacks in (NN_<name>.mrc/.tlt/.json, and "
                   "NN_<name>_confidence.mrc for FILM)")
    ctf = p.add_argument_group("defocus difference (optional; built-in CTF estimator)")
    ctf.add_argument("--defocus", action="store_true",
                     help="also estimate the defocus of every real and synthetic held-out tilt and "
                          "report |difference| (defocus_diff, Angstrom), as the paper's Fig. 2")
    add_microscope(ctf, "Angstrom (default: header)", voltage="kV", cs="spherical aberration, mm",
                   amp_contrast="amplitude contrast fraction")
    ctf.add_argument("--defocus-min", type=float, default=None, help="search range, Angstrom")
    ctf.add_argument("--defocus-max", type=float, default=None, help="search range, Angstrom")
    ctf.add_argument("--res-min", type=float, default=None, help="fitting band, low resolution (A)")
    ctf.add_argument("--res-max", type=float, default=None, help="fitting band, high resolution (A)")
    film = p.add_argument_group("FILM options (shared by every FILM method)")
    film.add_argument("--tile-size", type=int, default=None)
    film.add_argument("--tile-overlap", type=int, default=None)
    film.add_argument("--max-memory", type=float, default=None)
    film.add_argument("--device", default=None, choices=["cpu", "gpu"])
    film.add_argument("--gpu-ids", default=None)
    film.add_argument("--batch-size", type=int, default=None)
    film.add_argument("--normalization", default=None, choices=["robust", "notebook"])
    film.add_argument("--precision", default=None, choices=["auto", "float32", "mixed", "bfloat16"])
    add_quiet(p)
    p.set_defaults(func=run, method_tokens=None)


def method_entries(tokens) -> list:
    """Turn the --method/--model/--name tokens (``[(dest, value), ...]`` in
    command-line order) into ``[{'method', 'model', 'name'}, ...]``.

    --model/--name attach to the latest --method; given before any --method they
    attach to the next one.

    Raises:
      InputError: for a second --model (or --name) for the same method, or a
        --model/--name not followed by a --method.
    """
    from .. import InputError

    entries, pending = [], {}
    for dest, value in tokens or []:
        if dest == "method":
            entries.append({"method": value, **pending})
            pending = {}
        elif entries and not pending and dest not in entries[-1]:
            entries[-1][dest] = value
        elif dest in pending:
            raise InputError(f"--{dest} {value}: two --{dest} options for one --method; "
                             f"write --method film --{dest} X for each")
        else:
            pending[dest] = value
    if pending:
        dest, value = next(iter(pending.items()))
        raise InputError(f"--{dest} {value} is not followed by a --method; "
                         "write --method film --model DIR")
    return entries


def run(args) -> int:
    """Run ``cryotiger holdout``: restore-mode evaluation of each --method on
    ``args.input`` (engine/holdout.py ``run_holdout``); writes the report
    R.json and, with --plot/--keep, the plots and the restored stacks.

    Returns:
      0 (success); the table of medians is printed unless --quiet.

    Raises:
      InputError: for bad --method/--model/--name sequences, no angles, a bad
        --acquisition-json, --aligned-size without --xf, a bad --exclude, or
        what ``run_holdout`` raises.
      CryoTigerError: an unusable FILM model.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..holdout import method_specs
    from .interpolate import film_options, read_series_options, record_exclusions
    entries = method_entries(args.method_tokens)
    shared = {k: v for k, v in film_options(args).items() if k != "model"}
    for e in entries:
        if e["method"] == "film":
            e.update(shared)
    specs = method_specs(entries)
    with output_set(args, specs):   # checks, lock: before any work; commits at the end
        angles, xf, acq = read_series_options(args)
        # On an interpolated stack (a record OUT.json beside it) only real, not
        # excluded tilts are held out and used (engine/formats/record.py).
        exclude = record_exclusions(args, angles, synthetic=True)
        return _run(args, specs, angles, xf, acq, exclude)


def output_set(args, specs):
    """The :class:`engine.outputs.OutputSet` of ``holdout``: what it writes
    (R.json, the plots in --plot, the kept stacks in --keep) and reads (the
    tilt-series files, the models of ``specs``).
    """
    from ..holdout import METRICS, kept_files
    from ..outputs import OutputSet
    from ..plots import holdout_figure_names
    from .interpolate import series_inputs
    files = [(args.report, "--report")]
    folders = []
    if args.plot:
        metrics = list(METRICS) + (["defocus_diff"] if args.defocus else [])
        files += [(p, "a plot in --plot") for p in holdout_figure_names(args.plot, metrics)]
        folders.append((args.plot, "--plot", "create"))
    if args.keep:
        files += [(p, "a kept stack in --keep") for p in kept_files(args.keep, [s.name for s in specs],
                                                                      [s.method for s in specs])]
        folders.append((args.keep, "--keep", "create"))
    return OutputSet("holdout", files=files, inputs=series_inputs(args), folders=folders,
                     input_folders=[(s.options.get("model"), "--model") for s in specs])


def _run(args, specs, angles, xf, acq, exclude) -> int:
    from ..holdout import format_table, run_holdout
    ctf = None
    if args.defocus:
        ctf = {k: getattr(args, k) for k in ("pixel_size", "voltage", "cs", "amp_contrast",
                                             "defocus_min", "defocus_max", "res_min", "res_max")}
    report = run_holdout(args.input, specs, angles_path=args.angles, angles=angles,
                         mdoc_path=args.mdoc, exclude=exclude,
                         per_gap=args.per_gap, xf=xf, acquisition=acq, data_range=args.data_range,
                         report_path=args.report, plot_dir=args.plot, keep_dir=args.keep,
                         progress=not args.quiet, ctf=ctf)
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {args.report}" + (f" and plots in {args.plot}" if args.plot else ""))
    for warning in report.get("warnings", []):
        print(warning, file=sys.stderr)
    return 0
