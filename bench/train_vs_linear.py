#!/usr/bin/env python
"""Train a small FILM on CPU for a fixed time budget and compare it with
linear interpolation in restore mode on held-out tilt series (issue 4).

Data: tilt series simulated (engine.simulate) from volumes built out of the
real maps in ../shared/data: a cryo-ET tomogram crop of microtubules
(cylindra_mt, bin-4, 10.52 A voxels; contrast inverted so that density is
positive) as the "cell", plus randomly rotated copies of the two ribosome
maps (maps/, rescaled to the same voxel size) at random heights in a slab.
Training series use 14pf_MT.tif; held-out series use 13pf_MT.tif (another
tomogram) and new ribosome positions.  Acquisition: -60..+60 degrees in 2
degree steps, 300 kV, 3 um underfocus CTF, then white Gaussian noise with
half the standard deviation of the signal (SNR 4, --noise; the noise-free stacks are kept
for a second comparison against the true, noise-free tilts).

Training: ``cryotiger train`` with spacing 2 (tilts 4 degrees apart predict
the middle one: exactly the restore task), a small custom FILM configuration,
64-pixel patches, for ``--minutes`` of wall time.  Evaluation: ``cryotiger
holdout`` (every second tilt dropped and synthesised back; PSNR, SSIM against
the real tilt, data range = the real tilt's max-min) with linear and with the
trained model; per-series medians and the mean over series are printed as a
table.

    nice -n 10 .venv-engine/bin/python bench/train_vs_linear.py --minutes 20 --workdir /tmp/tvl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
if not os.path.isdir(DATA):
    DATA = "/work/shared/data"

VOXEL = 10.52  # Angstrom (cylindra_mt tomograms: 1.052 nm)

# A FILM configuration small enough for CPU training (about 137k parameters).
BENCH_CONFIG = {"pyramid_levels": 4, "fusion_pyramid_levels": 3, "specialized_levels": 1,
                "sub_levels": 2, "flow_convs": [2, 2], "flow_filters": [16, 32], "filters": 16}


def _norm(v):
    v = v - np.median(v)
    return v / (np.percentile(np.abs(v), 99.5) or 1.0)


def _ingredients():
    from cryotiger_scipion.engine.simulate import load_volume
    mt = {}
    for name in ("14pf_MT", "13pf_MT"):
        v, _ = load_volume(os.path.join(DATA, "cylindra_mt", f"{name}.tif"))
        mt[name] = np.clip(_norm(-v), 0, None).astype(np.float32)     # density positive
    ribos = []
    v, _ = load_volume(os.path.join(DATA, "maps", "cryocat_ribosome_bin4_8.704A.em"))
    ribos.append(ndimage.zoom(_norm(-v), 8.704 / VOXEL, order=1))       # EM map: density negative
    v, px = load_volume(os.path.join(DATA, "maps", "libtilt_ribo-16Apx.mrc"))
    ribos.append(ndimage.zoom(_norm(v), (px or 16.0) / VOXEL, order=1))
    ribos = [np.clip(r, 0, None).astype(np.float32) for r in ribos]
    return mt, ribos


def _taper(ny, nx, width):
    """(ny, nx) window, 1 inside, raised-cosine to 0 over ``width`` pixels at the edges."""
    def ramp(n):
        r = np.ones(n, np.float32)
        k = np.arange(width)
        r[:width] = 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / width)
        r[n - width:] = r[:width][::-1]
        return r
    return np.outer(ramp(ny), ramp(nx))


def make_volume(mt, ribos, seed: int, shape=(56, 128, 128), n_ribo: int = 10) -> np.ndarray:
    """(z, y, x) volume: a random crop of the tomogram ``mt`` plus rotated ribosomes."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    vol = np.zeros(shape, np.float32)
    t = mt
    if rng.random() < 0.5:
        t = t[:, ::-1]
    if rng.random() < 0.5:
        t = t[:, :, ::-1]
    if rng.random() < 0.5:
        t = np.swapaxes(t, 1, 2)
    tz, ty, tx = t.shape
    cy, cx = min(ty, ny), min(tx, nx)
    y0 = rng.integers(0, ty - cy + 1)
    x0 = rng.integers(0, tx - cx + 1)
    crop = t[:, y0:y0 + cy, x0:x0 + cx] * _taper(cy, cx, 10)[None]
    z0 = (nz - tz) // 2
    oy, ox = rng.integers(0, ny - cy + 1), rng.integers(0, nx - cx + 1)
    vol[z0:z0 + tz, oy:oy + cy, ox:ox + cx] += 0.6 * crop
    for _ in range(n_ribo):
        r = ribos[rng.integers(len(ribos))]
        r = ndimage.rotate(r, rng.uniform(0, 360), axes=(1, 2), reshape=False, order=1)
        r = ndimage.rotate(r, rng.uniform(0, 180), axes=(0, 2), reshape=False, order=1)
        s = r.shape[0]
        pz = rng.integers(-nz // 2 + 4, nz // 2 - 4) + nz // 2 - s // 2
        py, px = rng.integers(-s // 2, ny - s // 2), rng.integers(-s // 2, nx - s // 2)
        # paste with clipping at the borders
        zs, ys, xs = [slice(max(0, p), min(n, p + s)) for p, n in ((pz, nz), (py, ny), (px, nx))]
        rs = tuple(slice(sl.start - p, sl.stop - p) for sl, p in zip((zs, ys, xs), (pz, py, px)))
        vol[zs, ys, xs] += r[rs]
    return vol


def simulate_series(folder: str, n_train: int, n_test: int, seed: int = 0, noise: float = 1.0,
                    log=print) -> dict:
    """Noisy series (Gaussian noise of ``noise`` x the signal's std) and their noise-free twins."""
    from cryotiger_scipion.engine.formats.mrc import write_stack
    from cryotiger_scipion.engine.formats.tlt import write_angles
    from cryotiger_scipion.engine.simulate import Acquisition, simulate_tilt_series
    os.makedirs(folder, exist_ok=True)
    mt, ribos = _ingredients()
    angles = np.arange(-60, 60.1, 2.0)
    out = {"train": [], "test": []}
    folder = os.path.join(folder, f"noise{noise:g}")
    os.makedirs(folder, exist_ok=True)
    for split, n, tomo, base in (("train", n_train, "14pf_MT", 1000), ("test", n_test, "13pf_MT", 5000)):
        for k in range(n):
            stem = os.path.join(folder, f"{split}{k:02d}")
            if not os.path.exists(stem + ".mrc"):
                s = seed + base + k
                vol = make_volume(mt[tomo], ribos, s)
                acq = Acquisition(pixel_size=VOXEL, defocus=[30000.0] * len(angles))
                clean = simulate_tilt_series(vol, angles, acq)
                rng = np.random.default_rng(s)
                sigma = noise * float(np.std(clean))
                ts = (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32)
                write_stack(stem + ".mrc", ts, VOXEL)
                write_stack(stem + "_clean.mrc", clean, VOXEL)
                write_angles(stem + ".tlt", angles)
                log(f"simulated {stem}.mrc {ts.shape}")
            out[split].append(stem)
    return out


def against_clean(clean_path: str, keep: str) -> dict:
    """PSNR/SSIM of the restored tilts (holdout --keep stacks) against the
    noise-free twins of the real tilts (data range: the clean tilt's max-min)."""
    import glob
    from cryotiger_scipion.engine import metrics as M
    from cryotiger_scipion.engine.formats.mrc import read_stack
    clean, _ = read_stack(clean_path)
    out = {}
    for path in sorted(glob.glob(os.path.join(keep, "*.mrc"))):
        name = os.path.splitext(os.path.basename(path))[0].split("_", 1)[1]
        with open(os.path.splitext(path)[0] + ".json") as f:
            plan = json.load(f)
        stack, _ = read_stack(path)
        res = {"psnr": [], "ssim": []}
        for e in plan:
            if e["synthetic"] and e.get("replaces") is not None:
                ref = clean[e["replaces"]].astype(np.float64)
                rng = float(ref.max() - ref.min())
                res["psnr"].append(M.psnr(stack[e["index"]].astype(np.float64), ref, rng))
                res["ssim"].append(M.ssim(stack[e["index"]].astype(np.float64), ref, rng))
        out[name] = res
    return out


def cli(*args, log=None, env=None) -> None:
    """Run ``cryotiger ARGS``; its output is appended to ``log`` as it comes."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "cryotiger"), *map(str, args)]
    with open(log or os.devnull, "a") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        res = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
    if res.returncode:
        if log:
            with open(log) as f:
                sys.stderr.write(f.read()[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget (wall clock)")
    p.add_argument("--workdir", default="/tmp/cryotiger_train_vs_linear")
    p.add_argument("--train-series", type=int, default=8)
    p.add_argument("--test-series", type=int, default=3)
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.5,
                   help="Gaussian noise std as a fraction of the signal's std (0.5: SNR 4)")
    p.add_argument("--steps", type=int, default=1000000, help="step cap (the time budget normally stops first)")
    a = p.parse_args(argv)

    os.makedirs(a.workdir, exist_ok=True)
    log = os.path.join(a.workdir, "log.txt")
    t0 = time.time()
    series = simulate_series(os.path.join(a.workdir, "data"), a.train_series, a.test_series, a.seed,
                             noise=a.noise)
    t_sim = time.time() - t0
    cfg_path = os.path.join(a.workdir, "film_config.json")
    with open(cfg_path, "w") as f:
        json.dump(BENCH_CONFIG, f)
    model = os.path.join(a.workdir, "model")
    train_args = ["train"]
    for s in series["train"]:
        train_args += ["--input", s + ".mrc", "--angles", s + ".tlt"]
    train_args += ["--output", model, "--config", cfg_path, "--minutes", a.minutes, "--steps", a.steps,
                   "--spacing", "2", "--patch-size", a.patch_size, "--batch-size", a.batch_size,
                   "--lr", a.lr, "--decay-steps", 2000, "--decay-rate", 0.7, "--val-every", 500,
                   "--checkpoint-every", 500, "--log-every", 100, "--val-fraction", 0.15,
                   "--threads", a.threads, "--seed", a.seed, "--restart"]
    t1 = time.time()
    cli(*train_args, log=log)
    t_train = time.time() - t1
    with open(os.path.join(model, "cryotiger_train.json")) as f:
        info = json.load(f)

    rows, clean_rows = [], []
    for s in series["test"]:
        rep = os.path.join(a.workdir, os.path.basename(s) + "_holdout.json")
        keep = os.path.join(a.workdir, os.path.basename(s) + "_restored")
        cli("holdout", "--input", s + ".mrc", "--angles", s + ".tlt", "--method", "linear",
            "--method", "film", "--model", model, "--name", "film-trained", "--report", rep,
            "--keep", keep, log=log)
        with open(rep) as f:
            r = json.load(f)
        rows.append((os.path.basename(s), r["methods"]))
        clean_rows.append((os.path.basename(s), against_clean(s + "_clean.mrc", keep)))

    def med(m, key):
        return float(np.median(m[key]))

    lines = [f"FILM trained {a.minutes:g} min on CPU vs linear, restore mode (every second tilt of a "
             f"2-degree series dropped and synthesised back), held-out series",
             f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"TensorFlow threads {a.threads}; training {t_train / 60:.1f} min wall, "
             f"{info['step']} steps (batch {a.batch_size}, {a.patch_size} px patches, "
             f"{info['database']['counts']['train']} training patches), stopped on {info.get('stopped')}",
             "",
             "| series | tilts | linear PSNR (dB) | FILM PSNR (dB) | linear SSIM | FILM SSIM |",
             "|---|---|---|---|---|---|"]
    from machine import header, matmul_peak
    lines[:0] = [header("Training benchmark " + os.path.basename(__file__), tensorflow=True),
                 f"float32 matmul peak measured at the end of this run: {matmul_peak('float32'):.0f} GFLOP/s "
                 "(the limit of training steps; on a shared machine it shows what was left)", ""]
    agg = {"lp": [], "fp": [], "ls": [], "fs": []}
    per_tilt = {"lp": [], "fp": [], "ls": [], "fs": []}
    for name, m in rows:
        lin, film = m["linear"], m["film-trained"]
        vals = (med(lin, "psnr"), med(film, "psnr"), med(lin, "ssim"), med(film, "ssim"))
        for k, v in zip(("lp", "fp", "ls", "fs"), vals):
            agg[k].append(v)
        per_tilt["lp"] += lin["psnr"]; per_tilt["fp"] += film["psnr"]
        per_tilt["ls"] += lin["ssim"]; per_tilt["fs"] += film["ssim"]
        lines.append(f"| {name} | {len(lin['psnr'])} | {vals[0]:.2f} | {vals[1]:.2f} | {vals[2]:.4f} | {vals[3]:.4f} |")
    lines.append(f"| mean of medians | | {np.mean(agg['lp']):.2f} | {np.mean(agg['fp']):.2f} | "
                 f"{np.mean(agg['ls']):.4f} | {np.mean(agg['fs']):.4f} |")
    wins_p = int(np.sum(np.array(per_tilt["fp"]) > np.array(per_tilt["lp"])))
    wins_s = int(np.sum(np.array(per_tilt["fs"]) > np.array(per_tilt["ls"])))
    n = len(per_tilt["fp"])
    lines += ["", f"per held-out tilt: FILM better PSNR in {wins_p}/{n}, better SSIM in {wins_s}/{n}; "
                  f"simulation {t_sim:.0f} s"]
    lines += ["", "Against the NOISE-FREE truth (the simulator's clean tilts; medians over the held-out tilts):",
              "", "| series | linear PSNR (dB) | FILM PSNR (dB) | linear SSIM | FILM SSIM |", "|---|---|---|---|---|"]
    for name, c in clean_rows:
        lines.append(f"| {name} | {np.median(c['linear']['psnr']):.2f} | {np.median(c['film-trained']['psnr']):.2f} | "
                     f"{np.median(c['linear']['ssim']):.4f} | {np.median(c['film-trained']['ssim']):.4f} |")
    hist = info.get("history") or []
    if hist:
        lines.append("validation during training (normalised units): " + ", ".join(
            f"step {h['step']}: {h['psnr']:.2f} dB (linear {h['linear_psnr']:.2f})" for h in hist[-4:]))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.workdir, "table.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
