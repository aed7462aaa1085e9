"""``cryotiger reconstruct``: tomogram from an aligned tilt series, optionally
CTF-corrected (2D phase flip or 3D, the novaCTF scheme).

Contract (kept stable, used by checks outside the repository):
  cryotiger reconstruct --input TS.mrc --angles TS.tlt --output TOMO.mrc --thickness N
      [--ctf CTF.json --ctf-correction none|phaseflip|3d] [--exclude-synthetic OUT.json]
writes TOMO.mrc as (z, y, x) float32, the tilt axis along y, the pixel size
(Angstrom, times --binning) in the header.
"""
from __future__ import annotations

import time

from . import add_angles, add_exclude, add_input, add_microscope, add_output, add_quiet, add_xf


def _pair(text: str, name: str) -> tuple:
    from .. import InputError
    try:
        parts = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        parts = []
    if len(parts) != 2:
        raise InputError(f"--{name} '{text}': give two numbers separated by a comma, e.g. 0.35,0.05")
    return tuple(parts)


def register(subparsers):
    """Add the ``cryotiger reconstruct`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger reconstruct --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "reconstruct", help="weighted back-projection with optional 3D CTF correction",
        description="Reconstruct a tomogram (z, y, x; tilt axis y) from an ALIGNED tilt series by "
                    "weighted back-projection, optionally CTF-corrected: 2D phase flip, or 3D "
                    "(each height back-projected from images corrected with its own defocus, as "
                    "novaCTF). Back ends: built-in (CPU, numpy) or the novaCTF binary.")
    add_input(p)
    add_angles(p, required=True)
    add_output(p, "output tomogram (.mrc), written z, y, x")
    p.add_argument("--thickness", required=True, type=int,
                   help="tomogram thickness in pixels of the input stack (divided by --binning)")
    p.add_argument("--ctf", help="CTF.json from 'cryotiger ctf' (one entry per tilt, stack order)")
    p.add_argument("--ctf-correction", default=None, choices=["none", "phaseflip", "3d"],
                   help="none; phaseflip: 2D, the tilt's defocus over the whole image; 3d: the "
                        "defocus of each height (default: 3d with --ctf, none without)")
    p.add_argument("--ctf-mode", default="phaseflip", choices=["phaseflip", "multiply"],
                   help="how images are corrected: phase flip, or multiplied by the CTF")
    p.add_argument("--exclude-synthetic", metavar="OUT.json",
                   help="the interpolation record (OUT.json): leave out its synthetic tilts (and the "
                        "views it marks excluded), i.e. reconstruct from experimental tilts only")
    add_exclude(p, "views to leave out, numbered from 1 (e.g. '1,40-41')")
    p.add_argument("--min-confidence", type=float, default=None, metavar="C",
                   help="leave out synthetic tilts whose confidence (OUT.json beside --input, "
                        "written by 'cryotiger interpolate --method film'; 0..1) is below C; "
                        "synthetic tilts without a confidence are left out too")
    add_xf(p)
    p.add_argument("--backend", default="builtin", choices=["builtin", "novactf"],
                   help="builtin: numpy WBP (CPU); novactf: the novaCTF binary")
    p.add_argument("--novactf", help="path of the novaCTF binary (default: $CRYOTIGER_NOVACTF_BIN, "
                                     "$NOVACTF_HOME/novaCTF, or novaCTF on PATH)")
    p.add_argument("--binning", type=int, default=1, help="bin the images by this factor first")
    p.add_argument("--radial", default="0.35,0.05",
                   help="radial filter cutoff (cycles/pixel, 0.5 = Nyquist) and Gaussian falloff, "
                        "as IMOD's RADIAL")
    p.add_argument("--filter", default="ramp", choices=["ramp", "shepp-logan", "cosine", "hamming"],
                   help="window on the ramp (builtin back end)")
    p.add_argument("--sirt-like", type=int, default=0, metavar="K",
                   help="SIRT-like weighting equivalent to K iterations (less noise, lower "
                        "resolution; 0: off). novactf: its -FakeSIRTiterations")
    add_microscope(p, voltage="kV", cs="spherical aberration, mm",
                   amp_contrast="amplitude contrast (fraction)")
    p.add_argument("--defocus-step", type=float, default=None,
                   help="3d: spacing of the defocus planes in Angstrom (default: the step where "
                        "the CTF phase changes by pi/4 at the radial cutoff, at least one pixel)")
    p.add_argument("--correct-astigmatism", type=int, default=1, choices=[0, 1],
                   help="novactf: correct astigmatism (builtin always uses defocus U, V and angle)")
    p.add_argument("--max-memory", type=float, default=1.0, help="GiB for temporaries (builtin)")
    p.add_argument("--keep-work", action="store_true", help="novactf: keep its working folder")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``cryotiger reconstruct``: a tomogram TOMO.mrc, (z, y, x) float32,
    from the aligned stack ``args.input`` by weighted back-projection,
    optionally CTF-corrected (built-in back end or novaCTF).

    Returns:
      0 (success).

    Raises:
      InputError: for a missing stack, CTF correction without --ctf, a bad
        --radial, --min-confidence outside 0..1 or without a record, bad
        --exclude, --aligned-size without --xf, or what
        ``engine.reconstruct.reconstruct_file`` (or the novaCTF driver) refuses.
      InputError: also when the novaCTF binary is not found (backend novactf).
      NovaCtfError: when novaCTF fails or writes no usable volume (engine/novactf.py).
      OutputError: when an output cannot be written (read-only folder, full
        disk (checked first with :func:`output_bytes`), locked by another run; engine/outputs.py).
    """
    from ..outputs import OutputSet
    from .interpolate import record_beside
    outs = OutputSet("reconstruct", files=[(args.output, "--output")],
                     inputs=[(args.input, "--input"), (args.angles, "--angles"), (args.ctf, "--ctf"),
                             (args.exclude_synthetic, "--exclude-synthetic"), (args.xf, "--xf"),
                             (args.novactf, "--novactf"), record_beside(args.input)])
    with outs:
        return _run(args, outs)


def output_bytes(input_path: str, thickness: int, binning: int = 1) -> int:
    """Size in bytes of the float32 tomogram (z, y, x) made from ``input_path``
    with ``thickness`` (pixels of the input) and ``binning``, plus 1024 for
    the MRC header.
    """
    from ..formats.mrc import stack_shape
    _, ny, nx = stack_shape(input_path)
    b = max(1, int(binning))
    nz = max(1, int(round(int(thickness) / b)))
    return 1024 + 4 * nz * max(1, ny // b) * max(1, nx // b)


def _run(args, outs) -> int:
    import os

    from .. import InputError
    from ..interpolate import parse_view_list
    from ..reconstruct import reconstruct_file

    if not os.path.exists(args.input):
        raise InputError(f"{args.input}: input stack not found")
    correction = args.ctf_correction or ("3d" if args.ctf else "none")
    if correction != "none" and not args.ctf:
        raise InputError(f"--ctf-correction {correction} needs --ctf CTF.json (per-tilt defocus from "
                         "'cryotiger ctf'); or use --ctf-correction none")
    radial = _pair(args.radial, "radial")
    if args.thickness >= 1 and args.binning >= 1:
        outs.need_space(output_bytes(args.input, args.thickness, args.binning), "the tomogram")
    exclude = parse_view_list(args.exclude)
    min_conf = getattr(args, "min_confidence", None)
    if min_conf is not None and not 0.0 <= min_conf <= 1.0:
        raise InputError(f"--min-confidence {min_conf:g}: give a value from 0 to 1")
    if min_conf is not None and not args.exclude_synthetic:
        from ..formats.mrc import stack_shape
        from ..formats.tlt import read_angles
        from ..formats.record import find_record, low_confidence_views
        record = find_record(args.input, stack_shape(args.input)[0], read_angles(args.angles))
        if record is None:
            raise InputError(f"--min-confidence needs the interpolation record "
                             f"{os.path.splitext(args.input)[0]}.json beside --input (written by "
                             "'cryotiger interpolate'); it is missing or does not match the stack")
        low = low_confidence_views(record, min_conf)
        exclude = sorted(set(exclude) | set(low))
        if not args.quiet:
            print(f"--min-confidence {min_conf:g}: {len(low)} synthetic tilt(s) left out"
                  + (f" (views {', '.join(str(i + 1) for i in low)})" if low else ""), flush=True)
    if not args.exclude_synthetic:
        # Views an interpolation record beside the stack flags excluded are left out
        # (engine/formats/record.py); --exclude-synthetic OUT.json leaves them out itself.
        from ..formats.mrc import stack_shape
        from ..formats.tlt import read_angles
        from ..formats.record import excluded_views, find_record
        record = find_record(args.input, stack_shape(args.input)[0], read_angles(args.angles))
        exclude = sorted(set(exclude) | set(excluded_views(record)))
    t0 = time.monotonic()
    common = dict(ctf_path=args.ctf, correction=correction, exclude_synthetic=args.exclude_synthetic,
                  exclude=exclude, pixel_size=args.pixel_size,
                  voltage=args.voltage, cs=args.cs, amp_contrast=args.amp_contrast,
                  progress=not args.quiet, xf=None)
    if args.sirt_like:
        common["sirt_like"] = args.sirt_like
    if args.xf:
        from ..align import with_frame
        from ..formats.xf import read_xf
        common["xf"] = with_frame(read_xf(args.xf), args.aligned_size)
    elif args.aligned_size:
        raise InputError("--aligned-size sets the frame of the images aligned with --xf; give --xf")
    if args.backend == "novactf":
        from ..novactf import find_novactf, reconstruct_file_novactf
        binary = find_novactf(args.novactf)
        info = reconstruct_file_novactf(binary, args.input, args.angles, args.output, args.thickness,
                                        ctf_mode=args.ctf_mode, defocus_step=args.defocus_step,
                                        radial=radial, binning=args.binning,
                                        correct_astigmatism=bool(args.correct_astigmatism),
                                        keep_work=args.keep_work, **common)
    else:
        info = reconstruct_file(args.input, args.angles, args.output, args.thickness,
                                ctf_mode=args.ctf_mode, defocus_step=args.defocus_step,
                                filter_kind=args.filter, radial=radial, binning=args.binning,
                                max_memory_gb=args.max_memory, **common)
    if not args.quiet:
        z, y, x = info["shape"]
        print(f"wrote {args.output}: {x}x{y}x{z} (x, y, z) at {info['pixel_size']:g} A/px from "
              f"{len(info['views'])} tilts, CTF correction {correction}, {args.backend} back end, "
              f"{time.monotonic() - t0:.1f} s")
    return 0
