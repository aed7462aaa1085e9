#!/usr/bin/env python
"""Evaluation benchmarks (issue 6): cost of the metrics and of `cryotiger holdout`,
and hold-out figures on tilt series re-projected from a real tomogram.

1. PSNR / SSIM of one 2048 x 2048 float32 pair; SSIM against scikit-image.
2. One-to-one matching of 18,000 predicted to 18,000 true 3D positions (the
   paper's nucleosome scale) within 10 px, and a 200-threshold PR curve.
3. `cryotiger holdout --method linear` on a 61-tilt 1024 x 1024 series
   (smooth random images changing with angle), with and without --defocus.
4. Real data: the cylindra 14pf microtubule tomogram (bin-4, 10.52 A/px,
   ../shared/data/cylindra_mt) projected at -60..60 in 1 and 2 degree steps,
   3 um underfocus CTF, and held out: median PSNR/SSIM/defocus difference of
   linear restoration (no noise; noise-free figures are upper bounds).

    nice -n 10 .venv-engine/bin/python bench/bench_evaluation.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CRYOTIGER_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header  # noqa: E402

CLI = os.path.join(os.path.dirname(sys.executable), "cryotiger")


def timed(fn, repeat=1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_images():
    from skimage.metrics import structural_similarity
    from cryotiger_scipion.engine import metrics as M
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2048, 2048)).astype(np.float32)
    test = ref + rng.normal(scale=0.3, size=ref.shape).astype(np.float32)
    r = float(np.ptp(ref))
    t_psnr, _ = timed(lambda: M.psnr(test, ref, r), 3)
    t_ssim, ours = timed(lambda: M.ssim(test, ref, r), 2)
    t_sk, theirs = timed(lambda: structural_similarity(test.astype(np.float64), ref.astype(np.float64),
                                                       data_range=r), 2)
    print("| image metric (2048 x 2048) | time (s) |\n|---|---|")
    print(f"| PSNR | {t_psnr:.3f} |\n| SSIM (ours, float64) | {t_ssim:.3f} |")
    print(f"| SSIM (scikit-image, float64) | {t_sk:.3f} |")
    print(f"\nSSIM ours {ours:.8f}, scikit-image {theirs:.8f}, |diff| {abs(ours - theirs):.1e}\n")


def bench_detection():
    from cryotiger_scipion.engine import metrics as M
    rng = np.random.default_rng(1)
    true = rng.uniform(0, [200, 1000, 1000], size=(18000, 3))
    pred = np.concatenate([true[:15000] + rng.normal(scale=2.0, size=(15000, 3)),
                           rng.uniform(0, [200, 1000, 1000], size=(3000, 3))])
    scores = np.concatenate([rng.uniform(0.4, 1.0, 15000), rng.uniform(0.0, 0.6, 3000)])
    t_match, (p, t, d) = timed(lambda: M.match_points(pred, true, 10.0))
    t_curve, c = timed(lambda: M.detection_curve(pred, true, 10.0, scores=scores))
    print("| detection (18,000 vs 18,000, 3D, tol 10 px) | time (s) | result |\n|---|---|---|")
    print(f"| one matching | {t_match:.2f} | TP {len(p)} |")
    print(f"| PR curve, {len(c['thresholds'])} thresholds | {t_curve:.1f} | "
          f"PR-AUC {c['pr_auc']:.3f}, best F1 {c['best_f1']:.3f} |\n")


def bench_holdout(work):
    from scipy import ndimage
    from cryotiger_scipion.engine.formats.mrc import write_stack
    from cryotiger_scipion.engine.formats.tlt import write_angles
    rng = np.random.default_rng(2)
    angles = np.arange(-60.0, 61.0, 2.0)
    a = ndimage.gaussian_filter(rng.normal(size=(1024, 1024)), 3).astype(np.float32)
    b = ndimage.gaussian_filter(rng.normal(size=(1024, 1024)), 3).astype(np.float32)
    stack = np.stack([np.cos(np.deg2rad(x)) * a + np.sin(np.deg2rad(x)) * b
                      + 0.05 * rng.normal(size=a.shape).astype(np.float32) for x in angles])
    path = os.path.join(work, "big.mrc")
    write_stack(path, stack, 4.0)
    write_angles(os.path.join(work, "big.tlt"), angles)
    print("| `cryotiger holdout`, 61 tilts 1024 x 1024, linear | wall (s) |\n|---|---|")
    for extra, label in (([], "PSNR/RMSE/SSIM"), (["--defocus"], "+ --defocus (CTF fits of 60 images)")):
        t = time.perf_counter()
        subprocess.run([CLI, "holdout", "--input", path, "--angles", os.path.join(work, "big.tlt"),
                        "--method", "linear", "--report", os.path.join(work, "big.json"), "--quiet"]
                       + extra, check=True)
        print(f"| {label} | {time.perf_counter() - t:.1f} |")
    print()


def bench_real(work):
    from cryotiger_scipion.engine.formats.mrc import write_stack
    from cryotiger_scipion.engine.formats.tlt import write_angles
    from cryotiger_scipion.engine.simulate import Acquisition, load_volume, simulate_tilt_series
    tif = os.path.join(SHARED, "cylindra_mt", "14pf_MT.tif")
    if not os.path.exists(tif):
        print(f"(real-data section skipped: {tif} absent)")
        return
    vol, _ = load_volume(tif)
    vol = vol.max() - vol                    # density positive
    vol = np.pad(vol, ((10, 10), (0, 0), (0, 0)))
    print("| 14pf_MT re-projected (84 x 136 px, 10.52 A/px, 3 um CTF) | held-out tilts | "
          "median PSNR (dB) | median SSIM | median abs. defocus diff (A) |\n|---|---|---|---|---|")
    for step in (1.0, 2.0):
        angles = np.arange(-60.0, 60.0 + step / 2, step)
        acq = Acquisition(pixel_size=10.52, defocus=[30000.0] * len(angles))
        stack = simulate_tilt_series(vol, angles, acq)
        path = os.path.join(work, f"mt_{step:g}.mrc")
        write_stack(path, stack, 10.52)
        write_angles(path[:-4] + ".tlt", angles)
        rep = path[:-4] + ".json"
        subprocess.run([CLI, "holdout", "--input", path, "--angles", path[:-4] + ".tlt", "--method",
                        "linear", "--defocus", "--defocus-min", "10000", "--defocus-max", "60000",
                        "--res-max", "30", "--report", rep, "--quiet"], check=True)
        r = json.load(open(rep))["methods"]["linear"]
        print(f"| {step:g} degree series, restored across {2 * step:g} degrees | {len(r['psnr'])} | "
              f"{r['median_psnr']:.2f} | {r['median_ssim']:.4f} | {r['median_defocus_diff']:.0f} |")
    print()


def main():
    print(header("Evaluation benchmark") + "\n")
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as work:
        bench_images()
        bench_detection()
        bench_holdout(work)
        bench_real(work)


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
