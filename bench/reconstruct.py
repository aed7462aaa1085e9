#!/usr/bin/env python
"""Reconstruction benchmarks (issue 5): tilt series simulated from the volumes
in ../shared/data (known truth), reconstructed with the built-in back end.

1. Plain WBP vs astra-toolbox's 2D FBP (CPU, Ram-Lak) slice by slice (and the
   novaCTF binary when CRYOTIGER_NOVACTF_BIN is set): time and correlation
   with the true volume; the two cylindra microtubule tomograms (bin-4,
   10.52 A/px) and a crowd of ribosomes (cryocat average, 8.7 A/px).
2. CTF at high defocus: series simulated with the defocus of every height
   (engine.simulate.simulate_thick_ctf), reconstructed with no correction,
   2D phase flip and 3D correction: correlation with the truth (whole volume
   and a high-frequency band 0.25-0.5 cycles/voxel).  The data volumes, and a
   thick sample (dots) at 1.5 A/px where the height matters.
3. The paper's experiment with a known truth: a real 2-degree series, the
   4-degree series (every second tilt) and the 4-degree series plus
   synthetic tilts (linear; FILM when --film-model is given), noise-free and
   with dose noise: correlation of the tomogram with the true volume.

    nice -n 10 .venv-engine/bin/python bench/reconstruct.py [--quick] [--figure PNG]
        [--film-model DIR]

Correlation: Pearson over all voxels against the NEGATED volume (images are
1 - projection: density is dark in the tomogram).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.environ.get("CRYOTIGER_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import copy_bandwidth, header  # noqa: E402
from cryotiger_scipion.engine import reconstruct as R  # noqa: E402
from cryotiger_scipion.engine.simulate import (Acquisition, load_volume,  # noqa: E402
                                               simulate_thick_ctf, simulate_tilt_series)


def cc(a, b):
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def band(v, lo, hi):
    f = np.sqrt(sum(g ** 2 for g in np.meshgrid(*[np.fft.fftfreq(s) for s in v.shape], indexing="ij")))
    return np.real(np.fft.ifftn(np.fft.fftn(v) * ((f >= lo) & (f < hi))))


def volumes(quick: bool):
    """{name: (volume (z, y, x) float32 normalised, pixel size A)}."""
    out = {}
    mt = os.path.join(SHARED, "cylindra_mt")
    for name in (["14pf_MT"] if quick else ["14pf_MT", "13pf_MT"]):
        v, _ = load_volume(os.path.join(mt, name + ".tif"))
        out["cylindra " + name] = (v - v.mean(), 10.52)
    rib, _ = load_volume(os.path.join(SHARED, "maps", "cryocat_ribosome_bin4_8.704A.em"))
    rib = rib - np.median(rib)
    rng = np.random.default_rng(0)
    crowd = np.zeros((48, 96, 144) if quick else (64, 128, 192), np.float32)
    for _ in range(14 if quick else 30):       # copies, overlapping allowed
        c = [rng.integers(0, s - 48 + 1) for s in crowd.shape]
        crowd[c[0]:c[0] + 48, c[1]:c[1] + 48, c[2]:c[2] + 48] += rib
    out["ribosome crowd"] = (crowd, 8.704)
    return out


def timing_volume():
    """A larger phantom for timings (section 1 only)."""
    from cryotiger_scipion.engine.simulate import phantom_volume
    return phantom_volume((96, 256, 256), n_blobs=60, seed=2), 10.0


# ----------------------------------------------------------------------------
def astra_fbp(ts, angles, nz):
    """astra 2D FBP_CPU (Ram-Lak) of every y row; returns (z, y, x).
    Geometry (checked with astra's forward projector against ours): astra
    volume rows = our z, astra angle = -theta."""
    import astra
    n, ny, nx = ts.shape
    vg = astra.create_vol_geom(nz, nx)
    pg = astra.create_proj_geom("parallel", 1.0, nx, -np.deg2rad(angles))
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, 0)
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    cfg["option"] = {"FilterType": "Ram-Lak"}
    alg = astra.algorithm.create(cfg)
    out = np.empty((nz, ny, nx), np.float32)
    # astra pads with zeros: give it images with their mean removed (the
    # background of 1 - projection would otherwise ring at the edges).
    ts = ts - ts.mean(axis=(1, 2), keepdims=True)
    for y in range(ny):
        astra.data2d.store(sid, np.ascontiguousarray(ts[:, y, :]))
        astra.algorithm.run(alg)
        out[:, y, :] = astra.data2d.get(rid)
    astra.algorithm.delete(alg)
    astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    return out


def novactf_wbp(ts, angles, nz, px, ctf=None, correction="none", step=None):
    from cryotiger_scipion.engine.novactf import reconstruct_novactf
    binary = os.environ.get("CRYOTIGER_NOVACTF_BIN")
    with tempfile.TemporaryDirectory() as work:
        return reconstruct_novactf(binary, ts, angles, nz, px, work, ctf=ctf, correction=correction,
                                   radial=(0.5, 0.0), defocus_step=step)


def timed(fn, *a, **k):
    t = time.perf_counter()
    r = fn(*a, **k)
    return r, time.perf_counter() - t


def section_astra(vols, angles):
    print("\n## 1. Plain WBP: built-in vs astra-toolbox FBP_CPU (slice by slice)"
          + (" vs novaCTF" if os.environ.get("CRYOTIGER_NOVACTF_BIN") else ""))
    print(f"{len(angles)} tilts {angles[0]:g}..{angles[-1]:g}, no CTF, no noise; "
          "filters without cutoff (Ram-Lak).\n")
    try:
        import astra  # noqa: F401
        have_astra = True
    except ImportError as exc:
        have_astra = False
        print(f"(astra-toolbox not importable: {exc})")
    nova = bool(os.environ.get("CRYOTIGER_NOVACTF_BIN"))
    print("Memory bound: back-projection reads and writes the volume once per tilt; 'GB/s' counts "
          "2 x volume bytes x tilts / time, against a numpy copy of the volume's size measured now.\n")
    print("| volume (z, y, x) | built-in s | built-in GB/s | numpy copy GB/s | % of copy | built-in cc "
          "| astra s | astra cc | cc(built-in, astra) |" + (" novaCTF s | novaCTF cc |" if nova else ""))
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if nova else ""))
    for name, (vol, px) in vols.items():
        ts = simulate_tilt_series(vol, angles, Acquisition(pixel_size=px))
        ours, t_ours = timed(lambda: R.reconstruct(ts, angles, vol.shape[0], px, radial=(0.5, 0.0))[0])
        moved = 2 * 4 * vol.size * len(angles)
        bw = copy_bandwidth(4 * vol.size)
        row = (f"| {name} {vol.shape} | {t_ours:.2f} | {moved / t_ours / 1e9:.1f} | {bw:.1f} | "
               f"{100 * moved / t_ours / 1e9 / bw:.0f}% | {cc(ours, -vol):.3f} |")
        if have_astra:
            ref, t_ref = timed(astra_fbp, ts, angles, vol.shape[0])
            row += f" {t_ref:.2f} | {cc(ref, -vol):.3f} | {cc(ours, ref):.3f} |"
        else:
            row += " - | - | - |"
        if nova:
            nv, t_nv = timed(novactf_wbp, ts, angles, vol.shape[0], px)
            row += f" {t_nv:.2f} | {cc(nv, -vol):.3f} |"
        print(row)


def section_ctf(vols, angles, quick):
    print("\n## 2. CTF correction at high defocus (built-in back end)")
    print("Series simulated with the defocus of every height (simulate_thick_ctf), "
          "300 kV, Cs 2.7 mm, 7 % amplitude contrast, no noise; radial filter without cutoff. "
          "cc: whole volume; hi: band 0.25-0.5 cycles/voxel. 3D step: automatic "
          "(pi/4 phase change at Nyquist) unless given.\n")
    print("| volume | px (A) | defocus (um) | none cc / hi | 2D flip cc / hi | 3D cc / hi | "
          "3D multiply cc | 3D planes step (A) |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [(name, vol, px, df) for name, (vol, px) in vols.items() for df in (30000.0, 60000.0)]
    # (at 1.5 A/px larger defocus is aliased on a 192-px grid: not simulated)
    cases.append(("thick dots (128, 8, 192)", DOTS, 1.5, 10000.0))
    for name, vol, px, df in cases:
        ang = angles if "dots" not in name else np.arange(-60, 60.1, 2.0)
        ts = simulate_thick_ctf(vol, ang, px, [df] * len(ang))
        ctf = R.CtfSettings([df] * len(ang), [df] * len(ang), [0.0] * len(ang))
        step = 50.0 if "dots" in name else None
        res = {}
        for corr, mode in (("none", "phaseflip"), ("phaseflip", "phaseflip"), ("3d", "phaseflip"),
                           ("3d", "multiply")):
            rec = R.reconstruct(ts, ang, vol.shape[0], px, ctf=ctf, correction=corr, ctf_mode=mode,
                                radial=(0.5, 0.0), defocus_step=step)[0]
            res[corr, mode] = (cc(rec, -vol), cc(band(rec, 0.25, 0.5), -band(vol, 0.25, 0.5)))
        s = step or R.auto_defocus_step(px, 300.0)
        f = lambda k: f"{res[k][0]:.3f} / {res[k][1]:.3f}"  # noqa: E731
        print(f"| {name} | {px:g} | {df / 1e4:g} | {f(('none', 'phaseflip'))} | "
              f"{f(('phaseflip', 'phaseflip'))} | {f(('3d', 'phaseflip'))} | "
              f"{res['3d', 'multiply'][0]:.3f} | {s:.0f} |")


def _dots(shape, n, seed=0):
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    v = np.zeros(shape, np.float32)
    pos = (rng.uniform(0.1, 0.9, (n, 3)) * np.array(shape)).astype(int)
    np.add.at(v, tuple(pos.T), 1.0)
    return ndimage.gaussian_filter(v, 0.6)


DOTS = _dots((128, 8, 192), 800)


def interpolate_linear(ts4, angles4, workdir, film_model=None):
    """4-degree series + one synthetic tilt per gap through `cryotiger interpolate`."""
    from cryotiger_scipion.engine.formats.mrc import read_stack, write_stack
    from cryotiger_scipion.engine.formats.tlt import read_angles, write_angles
    src = os.path.join(workdir, "ts4.mrc")
    write_stack(src, ts4, 10.0)
    write_angles(os.path.join(workdir, "ts4.tlt"), angles4)
    out = os.path.join(workdir, "ts4_film.mrc" if film_model else "ts4_lin.mrc")
    cmd = [os.path.join(os.path.dirname(sys.executable), "cryotiger"), "interpolate", "--input", src,
           "--angles", os.path.join(workdir, "ts4.tlt"), "--output", out, "--per-gap", "1", "--quiet"]
    cmd += ["--method", "film", "--model", film_model] if film_model else ["--method", "linear"]
    subprocess.run(cmd, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return read_stack(out)[0], read_angles(os.path.splitext(out)[0] + ".tlt")


def section_paper(vols, film_model):
    print("\n## 3. The paper's experiment with a known truth")
    print("Real 2-degree series (-60..60, 61 tilts) vs 4-degree series (every second tilt, 31) "
          "vs 4-degree + 1 synthetic tilt per gap (61). No CTF; noise: Poisson, 3 e/A^2 per "
          "tilt (the 4-degree series has half the total dose). Built-in WBP, default radial "
          "filter (0.35, 0.05). cc with the true volume.\n")
    methods = ["linear"] + (["FILM"] if film_model else [])
    head = "| volume | noise | 2-degree real | 4-degree | " + " | ".join(
        f"4-degree + {m}" for m in methods) + " |"
    print(head)
    print("|" + "---|" * (4 + len(methods)))
    a2 = np.arange(-60, 60.1, 2.0)
    for name, (vol, px) in vols.items():
        for dose in (None, 3.0):
            ts2 = simulate_tilt_series(vol, a2, Acquisition(pixel_size=px, dose_per_tilt=dose, seed=1))
            ts4, a4 = ts2[::2], a2[::2]
            nz = vol.shape[0]
            row = [cc(R.reconstruct(ts2, a2, nz, px)[0], -vol), cc(R.reconstruct(ts4, a4, nz, px)[0], -vol)]
            with tempfile.TemporaryDirectory() as work:
                for m in methods:
                    tsi, ai = interpolate_linear(ts4, a4, work, film_model if m == "FILM" else None)
                    row.append(cc(R.reconstruct(tsi, ai, nz, px)[0], -vol))
            print(f"| {name} | {'none' if dose is None else f'{dose:g} e/A^2'} | "
                  + " | ".join(f"{v:.4f}" for v in row) + " |")
    if not film_model:
        print("\nFILM: not run (no FILM model given; pass --film-model DIR with a trained or "
              "published SavedModel).")


def figure(path):
    """Central slices: truth, built-in WBP, novaCTF (when available), 3D-CTF."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cryotiger_scipion.engine.simulate import phantom_volume
    vol = phantom_volume((32, 64, 64), seed=3)
    angles = np.arange(-60, 60.1, 3.0)
    px, df = 5.0, 30000.0
    ts = simulate_thick_ctf(vol, angles, px, [df] * len(angles))
    ctf = R.CtfSettings([df] * len(angles), [df] * len(angles), [0.0] * len(angles))
    panels = [("truth (negated)", -vol),
              ("built-in, no correction", R.reconstruct(ts, angles, 32, px)[0]),
              ("built-in, 3D-CTF", R.reconstruct(ts, angles, 32, px, ctf=ctf, correction="3d",
                                                 defocus_step=50)[0])]
    if os.environ.get("CRYOTIGER_NOVACTF_BIN"):
        from cryotiger_scipion.engine.novactf import reconstruct_novactf
        with tempfile.TemporaryDirectory() as work:
            nv = reconstruct_novactf(os.environ["CRYOTIGER_NOVACTF_BIN"], ts, angles, 32, px, work,
                                     ctf=ctf, correction="3d", defocus_step=50)
        panels.append(("novaCTF, 3D-CTF", nv))
    fig, axes = plt.subplots(2, len(panels), figsize=(3 * len(panels), 4.6))
    for j, (title, v) in enumerate(panels):
        extra = "" if j == 0 else f"\ncc {cc(v, -vol):.3f}"
        axes[0, j].imshow(v[16], cmap="gray")
        axes[0, j].set_title(title + extra, fontsize=8)
        axes[1, j].imshow(v[:, 32, :], cmap="gray")
        for ax in axes[:, j]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("z = 16 (x-y)", fontsize=8)
    axes[1, 0].set_ylabel("y = 32 (x-z)", fontsize=8)
    fig.suptitle("64x64x32 phantom, 41 tilts +-60, 3 um defocus, 5 A/px", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if len(panels) == 4:
        print(f"\nfigure {path}: cc(built-in 3D, novaCTF 3D) = {cc(panels[2][1], panels[3][1]):.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller volumes, fewer cases")
    p.add_argument("--film-model", help="FILM SavedModel folder for section 3")
    p.add_argument("--figure", help="write the built-in vs novaCTF figure (PNG) here")
    p.add_argument("--sections", default="1,2,3")
    args = p.parse_args()
    if not os.path.isdir(SHARED):
        sys.exit(f"{SHARED} is absent; set CRYOTIGER_SHARED_DATA")
    print(header("Reconstruction benchmark"))
    vols = volumes(args.quick)
    angles = np.arange(-60, 60.1, 2.0)
    t0 = time.time()
    if "1" in args.sections:
        section_astra(vols if args.quick else dict(vols, **{"phantom (timing)": timing_volume()}),
                      angles)
    if "2" in args.sections:
        section_ctf(vols, angles, args.quick)
    if "3" in args.sections:
        section_paper(vols, args.film_model)
    if args.figure:
        figure(args.figure)
    print(f"\n(total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
