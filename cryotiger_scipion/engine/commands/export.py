"""``cryotiger export``: per-tilt metadata of an (interpolated) tilt series for
IMOD, STOPGAP/cryoCAT or RELION 5, synthetic tilts included and labelled.

Contract (kept stable, used by checks outside the repository):
  cryotiger export --input OUT.mrc [--ctf CTF.json] --format imod|stopgap|relion5
      --output DIR [--voltage KV --cs MM --amp-contrast F] [--tomo-size X,Y,Z]
      [--experimental-only]
writes DIR/<stem>.tlt, .xf, .defocus, _exclude.txt (imod; plus _synthetic.txt),
DIR/<stem>_wedgelist.star (stopgap), DIR/<stem>.star and DIR/tomograms.star
(relion5), <stem> being the stem of --input (or --name).  See docs/export.md.
"""
from __future__ import annotations

import os
import sys

from . import add_input, add_microscope, add_output, add_quiet


def register(subparsers):
    """Add the ``cryotiger export`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger export --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "export", help="per-tilt metadata for IMOD, STOPGAP/cryoCAT or RELION 5",
        description="Write the per-tilt metadata of an (interpolated) tilt series for the next "
                    "tools: angle, dose, defocus and which tilts are synthetic, from the "
                    "interpolation record OUT.json beside the stack and the CTF.json of "
                    "'cryotiger ctf'. Formats: imod (.tlt, .xf, .defocus, _exclude.txt), "
                    "stopgap (STOPGAP/cryoCAT wedge list), relion5 (tilt-series star and "
                    "tomograms.star of RELION 5's tomography pipeline).")
    add_input(p, "the stack (OUT.mrc of 'cryotiger interpolate')")
    p.add_argument("--format", required=True, choices=["imod", "stopgap", "relion5"])
    add_output(p, "folder to write into (created if needed)")
    p.add_argument("--record", default=None,
                   help="interpolation record (default: the .json beside --input with its stem)")
    p.add_argument("--ctf", default=None,
                   help="CTF.json of 'cryotiger ctf' (matched by acquisition_order when its entries "
                        "carry one, else by stack position)")
    add_microscope(p)
    p.add_argument("--tomo-size", default=None, metavar="X,Y,Z",
                   help="tomogram size in pixels of the stack (stopgap tomo_x/y/z, relion5 "
                        "rlnTomoSizeX/Y/Z; default: x, y of the stack and z = x/2, with a note)")
    p.add_argument("--experimental-only", action="store_true",
                   help="leave the synthetic tilts out (imod: in the exclude list; stopgap, "
                        "relion5: no row), e.g. for subtomogram averaging")
    p.add_argument("--name", default=None,
                   help="tomogram name and file stem (default: the stem of --input)")
    p.add_argument("--tomo-num", type=int, default=1, help="stopgap: tomo_num of the rows (1)")
    p.add_argument("--z-shift", type=float, default=0.0, help="stopgap: z_shift in pixels (0)")
    p.add_argument("--hand", type=float, default=-1.0, choices=[-1.0, 1.0],
                   help="relion5: rlnTomoHand, -1 or 1 (-1, RELION's import default)")
    p.add_argument("--original-pixel-size", type=float, default=None,
                   help="relion5: rlnMicrographOriginalPixelSize, A (default: the pixel size)")
    add_quiet(p, "no summary line")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``cryotiger export``: write the per-tilt metadata of ``args.input``
    for IMOD, STOPGAP or RELION 5 (``args.format``) into the folder
    ``args.output`` (engine/export.py).

    Returns:
      0 (success); notes (e.g. no --ctf) go to stderr.

    Raises:
      InputError: what :func:`engine.export.load_series`,
        :func:`~engine.export.check_outputs` and :func:`~engine.export.export`
        raise (missing or mismatched record or CTF.json, bad values, outputs
        that are inputs, no tilt left), or a bad --tomo-size.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..export import export, load_series, parse_tomo_size

    tomo_size = parse_tomo_size(args.tomo_size) if args.tomo_size else None
    series = load_series(args.input, record=args.record, ctf=args.ctf, pixel_size=args.pixel_size,
                         voltage=args.voltage, cs=args.cs, amp_contrast=args.amp_contrast,
                         tomo_size=tomo_size, z_shift=args.z_shift, hand=args.hand, name=args.name,
                         original_pixel_size=args.original_pixel_size, tomo_num=args.tomo_num)
    from ..export import check_outputs, output_names
    from ..outputs import OutputSet
    check_outputs(series, args.format, args.output)     # export's own messages first
    files = [(os.path.join(args.output, n), "a file written in --output")
             for n in output_names(args.format, series.name)]
    inputs = [(src, role) for role, src in series.sources.items()]
    with OutputSet("export", files=files, inputs=inputs,
                   folders=[(args.output, "--output", "create")]):
        result = export(series, args.format, args.output, experimental_only=args.experimental_only)
    for note in result["notes"]:
        print(f"cryotiger export: note: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.format} files for {series.name} ({result['rows']} tilts used, "
              f"{result['synthetic']} synthetic) in {args.output}: "
              + ", ".join(os.path.basename(f) for f in result["files"]))
    return 0
