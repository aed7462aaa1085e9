#!/usr/bin/env python
"""Issue 13: which uncertainty from the network ranks the real error best.

For restored tilts of held-out simulated series (bench/fit_film.py's simulator,
13pf_MT, 128 x 128 px, -60..60 every 2 degrees, Poisson noise ``--dose``
e/A^2 per tilt; every 2nd tilt kept, t = 1/2, and for a time-aware model also
every 4th kept, t = 1/4) the candidate maps below are compared with the
absolute error against the noise-free truth (Spearman rho; per tilt: the map's
mean against the tilt's mean |error|; per pixel: median over tilts, against the
raw and the smoothed (sigma 3 px) |error|).  Signs are those of a confidence
(negative = low where the error is large, as wanted).

* warped (previous definition): exp(-max(0, D / n - 1)), D the smoothed
  |x0_warped - x1_warped|, n the noise of the raw inputs;
* warped, noise of warped: D / n_w with n_w measured on the warped images;
* spread: the smoothed std of the four symmetric passes (the definition used
  until 2026-12-08), divided by the inputs' noise;
* spread x structure (now, film/confidence.py): the spread times the structure
  factor exp(-T / sigma) of the synthetic image (first-order flow error and
  second-order smoothing error); warped x structure: the same for the warped
  definition of published-layout models;
* forward/backward: smoothed |F(0->1) + F(1->0)| at full resolution;
* spread + warped: the sum of the two normalised terms.

    nice .venv-engine/bin/python bench/confidence_candidates.py --series 1 \
        --model /tmp/ta/timeaware_model
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=1)
    p.add_argument("--dose", type=float, default=1.5)
    p.add_argument("--workdir", default="/tmp/cryotiger_confidence")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--explore", action="store_true", help="also try more candidates")
    p.add_argument("--model", action="append", default=[],
                   help="a model folder (repeatable; default: the shipped starter)")
    a = p.parse_args(argv)
    os.makedirs(a.workdir, exist_ok=True)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    from machine import header
    from fit_film import simulate
    from scipy.ndimage import gaussian_filter
    from scipy.ndimage import sobel
    from scipy.stats import rankdata, spearmanr

    from cryotiger_scipion.engine.film.confidence import SMOOTH_SIGMA, confidence_map, noise_sigma
    from cryotiger_scipion.engine.film.inference import LUMA, FilmInterpolator
    from cryotiger_scipion.engine.fit import STARTER_DIR

    luma = np.asarray(LUMA, np.float32)
    rot = lambda t: tf.reverse(t, axis=[1, 2])  # noqa: E731
    models = a.model or [STARTER_DIR]
    print(header("Confidence candidates (issue 13)", tensorflow=True))
    for folder in models:
        fi = FilmInterpolator(folder, tile_size=128, tile_overlap=64, log=lambda m: None)
        net = fi.net
        if not net.config.average_symmetries:
            print(f"{folder}: not an aligned model (no symmetric passes), skipped")
            continue
        steps = (2, 4) if fi.time_aware else (2,)
        res = {}
        dump = []
        for k in range(a.series):
            _, noisy, clean, angles, _ = simulate(a.workdir, k, a.dose)
            n = len(angles)
            for s in steps:
                t = 1.0 / s
                kept = list(range(0, n, s))
                for ia, ib in zip(kept[:-1], kept[1:]):
                    ua, ub, off, scale = fi._to_unit(noisy[ia], noisy[ib])
                    x0 = tf.constant(np.repeat(ua[None, ..., None], 3, -1).astype(np.float32))
                    x1 = tf.constant(np.repeat(ub[None, ..., None], 3, -1).astype(np.float32))
                    out = net.forward_once(tf.concat([x0, rot(x0), x1, rot(x1)], 0),
                                           tf.concat([x1, rot(x1), x0, rot(x0)], 0), aux=True,
                                           time=tf.constant([t, t, 1 - t, 1 - t]))
                    im = out["image"].numpy() @ luma
                    passes = np.stack([im[0], im[1][::-1, ::-1], im[2], im[3][::-1, ::-1]])
                    w0 = out["x0_warped"].numpy()[0] @ luma
                    w1 = out["x1_warped"].numpy()[0] @ luma
                    f01 = out["forward_flow_pyramid"][0].numpy()[0]
                    f10 = out["backward_flow_pyramid"][0].numpy()[0]
                    err = np.abs(passes.mean(0) * scale + off - clean[ia + 1])
                    errs = gaussian_filter(err, SMOOTH_SIGMA)
                    nin = 0.5 * (noise_sigma(ua) + noise_sigma(ub))
                    nw = 0.5 * (noise_sigma(w0) + noise_sigma(w1)) * 2 / np.sqrt(np.pi)
                    dw = gaussian_filter(np.abs(w0 - w1), SMOOTH_SIGMA)
                    sp = gaussian_filter(passes.std(0), SMOOTH_SIGMA) / nin
                    cand = {
                        "warped (previous)": confidence_map(np.abs(w0 - w1), ua, ub, kind="warped"),
                        "warped, noise of warped": -dw / nw,
                        "spread of 4 passes": confidence_map(passes.std(0), ua, ub, kind="spread"),
                        "spread x structure (now)": confidence_map(passes.std(0), ua, ub, kind="spread",
                                                                   image=passes.mean(0)),
                        "warped x structure": confidence_map(np.abs(w0 - w1), ua, ub, kind="warped",
                                                             image=passes.mean(0)),
                        "forward/backward": -gaussian_filter(np.linalg.norm(f01 + f10, axis=-1),
                                                             SMOOTH_SIGMA),
                        "spread + warped": -(sp + dw / nw),
                    }
                    if a.explore:
                        pred = passes.mean(0)
                        dump.append(dict(passes=passes, ua=ua, ub=ub, err=err, t=t, truth=(clean[ia + 1] - off) / scale))
                        sp1 = gaussian_filter(passes.std(0), 1.0) / nin
                        sp8 = gaussian_filter(passes.std(0), 8.0) / nin
                        gm = gaussian_filter(np.hypot(sobel(pred, 0), sobel(pred, 1)), SMOOTH_SIGMA)
                        hp = np.sqrt(gaussian_filter((pred - gaussian_filter(pred, 2.0)) ** 2, SMOOTH_SIGMA))
                        lin = 0.5 * (ua + ub)
                        dl = gaussian_filter(np.abs(pred - lin), SMOOTH_SIGMA)
                        bright = gaussian_filter(pred, SMOOTH_SIGMA)
                        rk = lambda m: rankdata(m).reshape(m.shape)  # noqa: E731
                        cand.update({
                            "spread, sigma 1": -sp1, "spread, sigma 8": -sp8,
                            "gradient of output": -gm, "high-pass of output": -hp,
                            "|output - linear|": -dl, "brightness": -bright, "darkness": bright,
                            "spread rank + gradient rank": -(rk(sp) + rk(gm)),
                            "spread x gradient": -(sp * gm),
                        })
                        gy, gx = np.gradient(pred)
                        g = gaussian_filter(np.hypot(gy, gx), SMOOTH_SIGMA) / nin
                        for d0 in (0.25, 0.5, 1.0, 2.0):
                            cand[f"spread (+) {d0} px x gradient"] = -np.hypot(sp, d0 * g)
                            cand[f"spread + {d0} px x gradient"] = -(sp + d0 * g)
                    for name, m in cand.items():
                        res.setdefault(name, []).append(
                            (float(m.mean()), float(err.mean()), spearmanr(m.ravel(), err.ravel())[0],
                             spearmanr(m.ravel(), errs.ravel())[0]))
        if a.explore:
            np.savez_compressed(os.path.join(a.workdir, os.path.basename(folder) + "_dump.npz"),
                                **{f"{k}_{i}": v for i, d in enumerate(dump) for k, v in d.items()})
        print(f"\n{folder} ({'time-aware, t = 1/2 and 1/4' if fi.time_aware else 'midpoints, t = 1/2'}; "
              f"{a.series} test series, dose {a.dose} e/A^2 per tilt)")
        print(f"{'candidate':26} | {'tilts':>5} | {'per tilt':>8} | {'per px':>7} | {'per px (smoothed err)':>21}")
        for name, items in res.items():
            pt = spearmanr([i[0] for i in items], [i[1] for i in items])[0]
            print(f"{name:26} | {len(items):5d} | {pt:+8.3f} | {np.nanmedian([i[2] for i in items]):+7.3f} | "
                  f"{np.nanmedian([i[3] for i in items]):+21.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
