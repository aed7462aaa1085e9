"""Accuracy of the built-in CTF estimator on simulated tilt series.

Tilt series are simulated with engine.simulate (a phantom with a fine random
texture, projected about y, CTF at a known per-tilt defocus, Poisson noise
for the dose per tilt, signal fading with the accumulated dose) and
estimated with engine.ctf.estimate_stack.  Printed: per dose, the median and
90th percentile of |estimated - true| mean defocus over all tilts, the
astigmatism error of the series fit, and the time per tilt.

    .venv-engine/bin/python bench/ctf_accuracy.py [--size 512] [--pixel 2.5]
        [--doses 1,2,3,5] [--step 6] [--astig 1000] [--synthetic] [--gradient]
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import header  # noqa: E402

from cryotiger_scipion.engine import ctf  # noqa: E402
from cryotiger_scipion.engine.simulate import (Acquisition, phantom_volume,  # noqa: E402
                                               simulate_tilt_series)


def textured_volume(shape, seed=0):
    vol = phantom_volume(shape, n_blobs=60, seed=seed)
    rng = np.random.default_rng(seed + 100)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.6)
    return vol + 0.5 * tex / tex.std()


def simulate(vol, angles, defocus, pixel, dose, astig, seed):
    acq = Acquisition(pixel_size=pixel, defocus=defocus, dose_per_tilt=dose, astigmatism=astig,
                      astig_angle=30.0, seed=seed)
    return simulate_tilt_series(vol, angles, acq)


def fit(ts, angles, defocus, pixel, options):
    t0 = time.monotonic()
    res = ctf.estimate_stack(ts, angles, ctf.Microscope(pixel), options, progress=False)
    dt = (time.monotonic() - t0) / len(angles)
    err = np.abs(np.array([r.defocus for r in res]) - defocus)
    return err, dt, res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pixel", type=float, default=2.5)
    p.add_argument("--doses", default="1,2,3,5")
    p.add_argument("--step", type=float, default=6.0)
    p.add_argument("--astig", type=float, default=1000.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gradient", action="store_true",
                   help="also the defocus-gradient table (single tilts at 20, 40, 60 degrees)")
    p.add_argument("--synthetic", action="store_true",
                   help="also the restore experiment: defocus of linear synthetic tilts")
    args = p.parse_args(argv)
    print(header("CTF accuracy benchmark") + "\n")
    angles = np.arange(-60, 60 + 1e-6, args.step)
    rng = np.random.default_rng(args.seed)
    defocus = rng.uniform(20000, 40000, len(angles))          # 2..4 um underfocus, per tilt
    vol = textured_volume((16, args.size, args.size), seed=args.seed)
    print(f"{len(angles)} tilts -60..60 every {args.step:g} deg, {args.size} px, {args.pixel:g} A/px, "
          f"defocus 2-4 um (random per tilt), astigmatism {args.astig:g} A at 30 deg, 300 kV")
    print()
    print("| dose/tilt (e/A^2) | astigmatism fit | median error (A) | 90th pct (A) | max (A) "
          "| astig. error (A) | time/tilt (s) |")
    print("|---|---|---|---|---|---|---|")
    for dose in [float(d) for d in args.doses.split(",") if d.strip()]:
        ts = simulate(vol, angles, defocus, args.pixel, dose, args.astig, args.seed)
        for mode in ("series", "tilt"):
            err, dt, res = fit(ts, angles, defocus, args.pixel, ctf.FitOptions(astigmatism_mode=mode))
            aerr = [abs((r.defocus_u - r.defocus_v) - args.astig) for r in res]
            aerr_txt = f"{aerr[0]:.0f}" if mode == "series" else f"{np.median(aerr):.0f} (median)"
            print(f"| {dose:g} | {mode} | {np.median(err):.0f} | {np.percentile(err, 90):.0f} | "
                  f"{err.max():.0f} | {aerr_txt} | {dt:.2f} |", flush=True)
    if args.synthetic:
        synthetic_table(vol, args)
    if args.gradient:
        gradient_table(args)


def synthetic_table(vol, args):
    """Restore experiment: a 2-degree series; every second tilt is replaced by
    the linear interpolation of its neighbours (the mean of the tilts at
    +-2 degrees, the engine's linear weights at the midpoint); the defocus
    estimated on the synthetic tilt is compared with the one estimated on the
    real tilt at the same angle, and with the truth."""
    angles = np.arange(-30, 30 + 1e-6, 2.0)
    rng = np.random.default_rng(args.seed + 7)
    defocus = 30000 + np.cumsum(rng.normal(0, 300, len(angles)))   # slowly drifting focus
    print()
    print(f"Synthetic (linear) tilts, restore mode: {len(angles)} tilts -30..30 every 2 deg, "
          f"{args.size} px, {args.pixel:g} A/px, dose 3 e/A^2 per tilt")
    print()
    print("| tilts | median abs(estimated - true) (A) | median abs(synthetic - real at the same angle) (A) |")
    print("|---|---|---|")
    ts = simulate(vol, angles, defocus, args.pixel, 3.0, 0.0, args.seed)
    mids = np.arange(1, len(angles) - 1, 2)
    syn = np.stack([0.5 * (ts[i - 1] + ts[i + 1]) for i in mids])
    opts = ctf.FitOptions()
    real = ctf.estimate_stack(ts, angles, ctf.Microscope(args.pixel), opts, progress=False)
    made = ctf.estimate_stack(syn, angles[mids], ctf.Microscope(args.pixel), opts, progress=False)
    real_dz = np.array([r.defocus for r in real])
    made_dz = np.array([r.defocus for r in made])
    print(f"| real (all {len(angles)}) | {np.median(np.abs(real_dz - defocus)):.0f} | - |")
    print(f"| synthetic ({len(mids)}) | {np.median(np.abs(made_dz - defocus[mids])):.0f} | "
          f"{np.median(np.abs(made_dz - real_dz[mids])):.0f} |", flush=True)


def gradient_table(args):
    """Defocus gradient: single tilts of a wide textured slab (cropped so the
    specimen fills the field of view), 512 px at 5 A/px, 3 e/A^2, 3 um at the
    axis, simulated with the gradient; fitted without and with the gradient
    model, and strips fitted independently (their slope vs tan(angle))."""
    print()
    print("Defocus gradient: 512 px, 5 A/px, 3 e/A^2, 3 um at the tilt axis, 128-px tiles")
    print()
    print("| tilt (deg) | error, no model (A) | error, gradient model (A) | sign chosen "
          "| strip slope (independent fits) | tan(tilt) |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed + 11)
    vol = ndimage.gaussian_filter(rng.standard_normal((12, 256, 1024)).astype(np.float32), 0.6)
    scope = ctf.Microscope(5.0)
    for angle in (20.0, 40.0, 60.0):
        ts = simulate_tilt_series(vol, [angle], Acquisition(pixel_size=5.0, defocus=[30000.0],
                                                            dose_per_tilt=3.0, defocus_gradient=True,
                                                            seed=args.seed))
        img = ts[0][:, 256:768]
        plain = ctf.estimate_image(img, scope, ctf.FitOptions(tile_size=128), angle=angle)
        grad = ctf.estimate_image(img, scope, ctf.FitOptions(tile_size=128, defocus_gradient=True),
                                  angle=angle)
        x, dz = ctf.estimate_strips(img, scope, ctf.FitOptions(tile_size=128), angle=angle,
                                    n_strips=4)
        slope = np.polyfit(x, dz, 1)[0]
        print(f"| {angle:g} | {abs(plain.defocus - 30000):.0f} | {abs(grad.defocus - 30000):.0f} | "
              f"{grad.gradient_sign:+d} | {slope:.2f} | {np.tan(np.radians(angle)):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
