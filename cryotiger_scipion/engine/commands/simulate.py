"""``cryotiger simulate``: make a tilt series from a volume (or a phantom)."""
from __future__ import annotations

import os

import numpy as np

from . import add_output, add_pixel_size


def register(subparsers):
    """Add the ``cryotiger simulate`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger simulate --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser("simulate", help="project a volume into a tilt series (test data)")
    p.add_argument("--volume", help="MRC/EM/TIFF volume (z, y, x); default: a random phantom")
    p.add_argument("--phantom-shape", default="32,64,64", help="phantom size z,y,x")
    add_output(p, "output stack (.mrc); .tlt written beside it")
    p.add_argument("--min-angle", type=float, default=-60)
    p.add_argument("--max-angle", type=float, default=60)
    p.add_argument("--step", type=float, default=3)
    add_pixel_size(p, "Angstrom (default: volume's or 10)")
    p.add_argument("--defocus", type=float, default=None, help="defocus in Angstrom (underfocus > 0)")
    p.add_argument("--dose", type=float, default=None, help="dose per tilt, e/A^2 (adds noise)")
    p.add_argument("--dose-symmetric", action="store_true", help="dose-symmetric acquisition order")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def dose_symmetric_order(angles, group: int = 2) -> np.ndarray:
    """1-based acquisition order of a dose-symmetric scheme (Hagen et al. 2017)
    starting at the tilt nearest 0 degrees (the smallest angle >= 0), then
    ``group`` tilts on the negative side, ``group`` on the positive side, and
    so on.

    Args:
      angles: tilt angles in degrees, one per image in stack order.
      group: tilts taken on one side before switching.

    Returns:
      (n,) int array, the order of each image.
    """
    angles = np.asarray(angles)
    pos = sorted([a for a in angles if a >= 0])
    neg = sorted([a for a in angles if a < 0], reverse=True)
    seq = [pos.pop(0)] if pos else []
    side = 0
    while pos or neg:
        src = neg if side == 0 else pos
        for _ in range(group):
            if src:
                seq.append(src.pop(0))
        side = 1 - side
        if not (neg if side == 0 else pos):
            side = 1 - side
    order = np.empty(len(angles), dtype=int)
    for rank, a in enumerate(seq, 1):
        order[int(np.flatnonzero(angles == a)[0])] = rank
    return order


def output_paths(output: str) -> tuple:
    """(OUT.tlt, OUT.order.json): the files written beside the stack OUT.mrc."""
    stem = os.path.splitext(output)[0]
    return stem + ".tlt", stem + ".order.json"


def run(args) -> int:
    """Run ``cryotiger simulate``: project ``args.volume`` (or a random phantom)
    into a tilt series OUT.mrc, (n, y, x) float32, with OUT.tlt (degrees) and
    OUT.order.json (the --acquisition-json layout) beside it.

    Returns:
      0 (success).

    Raises:
      InputError: for an unreadable volume or bad simulation values
        (engine/simulate.py).
      ValueError: for a --phantom-shape that is not three integers.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..outputs import OutputSet
    tlt, order = output_paths(args.output)
    outs = OutputSet("simulate", files=[(args.output, "--output"),
                                        (tlt, "the .tlt written beside --output"),
                                        (order, "the .order.json written beside --output")],
                     inputs=[(args.volume, "--volume")])
    with outs:
        return _run(args)


def _run(args) -> int:
    from ..formats.acquisition import write_acquisition_json
    from ..formats.mrc import write_stack
    from ..formats.tlt import write_angles
    from ..simulate import Acquisition, load_volume, phantom_volume, simulate_tilt_series

    if args.volume:
        vol, px = load_volume(args.volume)
    else:
        vol, px = phantom_volume(tuple(int(v) for v in args.phantom_shape.split(",")), seed=args.seed), 0.0
    px = args.pixel_size or px or 10.0
    angles = np.arange(args.min_angle, args.max_angle + 1e-6, args.step)
    order = dose_symmetric_order(angles) if args.dose_symmetric else np.arange(1, len(angles) + 1)
    acq = Acquisition(pixel_size=px, defocus=None if args.defocus is None else [args.defocus] * len(angles),
                      dose_per_tilt=args.dose, order=order, seed=args.seed)
    ts = simulate_tilt_series(vol, angles, acq)
    write_stack(args.output, ts, px)
    tlt, order_json = output_paths(args.output)
    write_angles(tlt, angles)
    # the --acquisition-json layout, so the file can be given to interpolate/holdout as is
    write_acquisition_json(order_json, order=order.tolist(),
                           dose=[float(args.dose)] * len(angles) if args.dose else None)
    print(f"wrote {args.output}: {len(angles)} tilts of {ts.shape[1]}x{ts.shape[2]}, {px:g} A/px")
    return 0
