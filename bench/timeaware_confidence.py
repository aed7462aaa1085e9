#!/usr/bin/env python
"""Issue 13 evidence: time-aware FILM at t = 1/4, 1/3, 1/2 against recursive
midpoints and linear, and how well the confidence maps rank the real error.

Data: bench/fit_film.py's simulator (../shared/data): training series from the
14pf_MT crop (seeds 1000+), held-out test series from 13pf_MT (seeds 5000+),
128x128 px, -60..60 degrees every 2 degrees, dose-symmetric, Poisson noise at
``--dose`` e/A^2 per tilt; the noise-free expectation of every tilt is the truth.

1. A time-aware FILM (engine/fit.py FIT_CONFIG, ~137k parameters, aligned,
   time-conditioned) is trained from scratch with ``cryotiger train
   --time-aware`` (triplet spacings 2, 3, 4: t = 1/4 ... 3/4) for ``--minutes``
   of wall time on the training series.  Budgets are small (the machine's cores
   are shared): the step count is printed.
2. Restore at t = 1/s (s = 4, 3, 2): of a test series keep every s-th tilt (8, 6
   or 4 degree steps) and synthesise the tilt 2 degrees after each kept one
   (t = 1/4, 1/3, 1/2) from the noisy kept tilts.  Methods: time-aware FILM (one
   call at t), recursive midpoints with the SAME network (t = 1/2 calls only;
   t = 1/4 = the first of 3 per gap; t = 1/3: not possible), the shipped
   midpoint-only starter model (recursive midpoints), and linear.  PSNR / SSIM
   against the noise-free truth (data range: the truth's max - min).
3. Confidence (engine/film/confidence.py): Spearman correlation between the
   per-tilt confidence and the tilt's mean absolute error (all restored tilts of
   one model), and per pixel between the map and |error| (median over tilts;
   also against the error smoothed like the map).  Negative rho = low
   confidence where the error is large (what is wanted).

    nice .venv-engine/bin/python bench/timeaware_confidence.py --minutes 4 --workdir /tmp/ta \
        --figure docs/figures/timeaware_confidence.png
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

STEPS = {"1/4": 4, "1/3": 3, "1/2": 2}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0, help="training budget of the time-aware model")
    p.add_argument("--train-series", type=int, default=2)
    p.add_argument("--series", type=int, default=2, help="held-out test series")
    p.add_argument("--dose", type=float, default=1.5, help="e/A^2 per tilt")
    p.add_argument("--workdir", default="/tmp/cryotiger_timeaware")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=None, help="an already trained time-aware model (skip training)")
    p.add_argument("--starter", default=None, help="midpoint-only model (default: the shipped starter)")
    p.add_argument("--figure", default=None, help="PNG: per-tilt confidence vs error, an example map")
    a = p.parse_args(argv)
    os.makedirs(a.workdir, exist_ok=True)
    from machine import header
    from fit_film import scores, simulate
    from scipy.ndimage import gaussian_filter

    from cryotiger_scipion.engine.film.confidence import SMOOTH_SIGMA
    from cryotiger_scipion.engine.metrics import spearman
    from cryotiger_scipion.engine.fit import FIT_CONFIG, STARTER_DIR
    from cryotiger_scipion.engine.interpolate import LinearInterpolator

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS=str(a.threads),
               TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS=str(a.threads))
    exe = os.path.join(os.path.dirname(sys.executable), "cryotiger")
    model = a.model
    train_info = {}
    if model is None:
        model = os.path.join(a.workdir, "timeaware_model")
        cmd = [exe, "train", "--output", model, "--time-aware", "--spacing", "2,3,4",
               "--minutes", str(a.minutes), "--steps", "100000", "--patch-size", "64", "--patch-stride", "32",
               "--batch-size", "8", "--lr", "1e-3", "--decay-steps", "1000", "--decay-rate", "0.5",
               "--val-fraction", "0", "--threads", str(a.threads), "--checkpoint-every", "100000",
               "--val-every", "100000", "--quiet", "--restart"]
        cfg_path = os.path.join(a.workdir, "fit_config.json")
        with open(cfg_path, "w") as f:
            json.dump(FIT_CONFIG, f)
        cmd += ["--config", cfg_path]
        for k in range(a.train_series):
            stem = simulate(a.workdir, k, a.dose, tomo="14pf_MT", base=1000, prefix="train")[-1]
            cmd += ["--input", stem + ".mrc", "--angles", stem + ".tlt"]
        t0 = time.time()
        subprocess.run(cmd, check=True, env=env)
        with open(os.path.join(model, "cryotiger_train.json")) as f:
            rec = json.load(f)
        train_info = {"seconds": time.time() - t0, "step": rec.get("step") or rec.get("summary", {}).get("step")}
        print(f"trained {model}: {train_info}", flush=True)

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    quiet = lambda msg: None  # noqa: E731
    ta = FilmInterpolator(model, tile_size=128, tile_overlap=64, log=quiet)
    assert ta.time_aware, "the trained model is not time-aware"
    rec_mid = FilmInterpolator(model, tile_size=128, tile_overlap=64, log=quiet)
    rec_mid.time_aware = False           # the same network, recursive midpoints (t = 0.5 calls)
    starter_dir = a.starter or STARTER_DIR
    starter = FilmInterpolator(starter_dir, tile_size=128, tile_overlap=64, log=quiet) \
        if os.path.isfile(os.path.join(starter_dir, "saved_model.pb")) else None
    lin = LinearInterpolator()

    rows = {}       # (t, method) -> list of (psnr, ssim)
    conf = {"time-aware FILM": [], "starter (midpoints)": []}   # (t, mean conf, mean |err|, rho_px, rho_px_s, map, err)
    for k in range(a.series):
        vol, noisy, clean, angles, stem = simulate(a.workdir, k, a.dose)
        n = len(angles)
        for tname, s in STEPS.items():
            t = 1.0 / s
            kept = list(range(0, n, s))
            for ia, ib in zip(kept[:-1], kept[1:]):
                target = ia + 1
                truth = clean[target]
                x0, x1 = noisy[ia], noisy[ib]
                made = {}
                made["linear"] = (lin.interpolate_gaps([(x0, x1, [t])])[0][0], None)
                imgs, confs = ta.interpolate_gaps_with_confidence([(x0, x1, [t])])
                made["time-aware FILM"] = (imgs[0][0], confs[0][0])
                if s in (2, 4):
                    fr = [0.5] if s == 2 else [0.25, 0.5, 0.75]
                    made["recursive midpoints (same net)"] = (rec_mid.interpolate_gaps([(x0, x1, fr)])[0][0], None)
                    if starter is not None:
                        imgs, confs = starter.interpolate_gaps_with_confidence([(x0, x1, fr)])
                        made["starter (midpoints)"] = (imgs[0][0], confs[0][0])
                for name, (img, cmap) in made.items():
                    rows.setdefault((tname, name), []).append(scores(img, truth))
                    if cmap is not None:
                        err = np.abs(img.astype(np.float64) - truth)
                        rho = spearman(cmap, err)
                        rho_s = spearman(cmap, gaussian_filter(err, SMOOTH_SIGMA))
                        conf[name].append((tname, float(cmap.mean()), float(err.mean()), rho, rho_s,
                                           cmap, err, float(err.mean()) / float(truth.max() - truth.min())))
        print(f"series {k + 1}/{a.series} done", flush=True)

    print(header("Time-aware FILM and confidence (issue 13)", tensorflow=True))
    print(f"time-aware model trained {train_info or '(given)'}")
    print("\nRestore at t against the noise-free truth (mean over tilts; test series "
          f"{a.series} x 13pf_MT, dose {a.dose} e/A^2 per tilt)")
    print(f"{'t':>4} | {'method':32} | {'n':>3} | {'PSNR dB':>8} | {'SSIM':>6} | {'PSNR - linear':>13}")
    for tname in STEPS:
        base = np.mean([r[0] for r in rows[(tname, 'linear')]])
        for (tt, name), vals in rows.items():
            if tt != tname:
                continue
            ps = np.mean([v[0] for v in vals])
            ss = np.mean([v[1] for v in vals])
            print(f"{tname:>4} | {name:32} | {len(vals):3d} | {ps:8.2f} | {ss:6.3f} | {ps - base:+13.2f}")
    print("\nConfidence vs absolute error (Spearman rho; negative = confidence low where error high; "
          "per tilt also against the mean |error| / the truth's range, the scale of PSNR)")
    print(f"{'model':22} | {'tilts':>5} | {'per tilt':>8} | {'per tilt rel':>12} | {'per px median':>13} | "
          f"{'per px (smoothed err)':>21}")
    summary = {}
    for name, items in conf.items():
        if not items:
            continue
        pt = spearman([i[1] for i in items], [i[2] for i in items])
        pr = spearman([i[1] for i in items], [i[7] for i in items])
        px = float(np.nanmedian([i[3] for i in items]))
        pxs = float(np.nanmedian([i[4] for i in items]))
        summary[name] = (pt, px, pxs, pr)
        print(f"{name:22} | {len(items):5d} | {pt:8.3f} | {pr:12.3f} | {px:13.3f} | {pxs:21.3f}")
    if a.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 3, figsize=(13, 4))
        for name, items in conf.items():
            if items:
                ax[0].scatter([i[1] for i in items], [i[7] for i in items], s=12,
                              label=f"{name} (rho {summary[name][3]:.2f})")
        ax[0].set_xlabel("per-tilt confidence (mean of map)")
        ax[0].set_ylabel("mean |error| / range of the noise-free truth")
        ax[0].legend(fontsize=8)
        ex = min(conf["time-aware FILM"], key=lambda i: i[1])
        im = ax[1].imshow(ex[5], vmin=0, vmax=1, cmap="viridis")
        ax[1].set_title(f"confidence map (t = {ex[0]}, lowest tilt)")
        plt.colorbar(im, ax=ax[1])
        im = ax[2].imshow(gaussian_filter(ex[6], SMOOTH_SIGMA), cmap="magma")
        ax[2].set_title("|error| (smoothed like the map)")
        plt.colorbar(im, ax=ax[2])
        for x in ax[1:]:
            x.set_xticks([])
            x.set_yticks([])
        fig.tight_layout()
        fig.savefig(a.figure, dpi=90)
        print(f"figure: {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
