#!/usr/bin/env python
"""FILM inference benchmark (issues 3 and 17): speed against the machine's
matmul peak measured in the same run, precision error against the tilts'
own variation, tiled vs whole rate, linear interpolation against memory
bandwidth, and a GPU mode.

Printed in one run (markdown):

1. the machine (CPU model, flags, usable threads, load average, TensorFlow
   version) and the matrix-multiply peak of float32 and of the reduced
   precision (bfloat16 on CPU, float16 on GPU), measured now;
2. per model and precision: seconds per pair at --size, GFLOP/s (published
   configuration: 4.2 MFLOP per output pixel) and its ratio to the float32
   peak, speed-up over float32, and the ERROR against float32 on pairs of a
   tilt series re-projected from a real tomogram (../shared/data cylindra
   14pf_MT, tilts i and i+2 of a 2-degree series -> the middle one),
   relative to the std of the difference between neighbouring tilts of that
   series (noise-free, so stricter than the noise of real tilts); the
   precision ``--precision auto`` picks is marked;
3. tiled vs whole: the same pair run whole and in tiles with the default
   overlap: rate ratio and max |difference| / output range;
4. linear interpolation: time per pair and GB/s against a numpy copy of the
   same size (read two images, write one);
5. ``--gpu``: float16 + XLA, batches of pairs, 2048x2048: pairs/s and the
   time of 60 pairs (one 61-tilt series).

Models: ``--model DIR`` (a published model folder; default: the published
configuration initialised randomly, and the table says so) and
``--trained-model DIR`` (a model trained by ``cryotiger train``; default: the
shipped starter model cryotiger_scipion/models/film_starter, when present).
On a shared machine the absolute times are upper bounds: quote the ratios.

    nice .venv-engine/bin/python bench/film_inference.py --trained-model M [--size 256] [--repeats 2]
    .venv-engine/bin/python bench/film_inference.py --gpu [--model DIR] [--pairs 60]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine import copy_bandwidth, header, matmul_peak  # noqa: E402

FLOP_PER_PIXEL = 4.2e6          # published configuration, per output pixel
STARTER = os.path.join(ROOT, "cryotiger_scipion", "models", "film_starter")
SHARED = os.environ.get("CRYOTIGER_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def test_pair(size: int, seed: int = 0):
    """A smooth random image and a copy shifted by 3 pixels (float32)."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), 2)
    a += 0.3 * rng.normal(0, 1, a.shape).astype(np.float32)
    return a, np.roll(a, 3, axis=1)


def reprojected_series(step: float = 2.0, span: float = 10.0):
    """Tilts (n, 136, 84) float32 of the real 14pf_MT tomogram crop, -span..span
    every ``step`` degrees (no CTF, no noise), and the std of the difference of
    neighbouring tilts (mean over the series)."""
    from cryotiger_scipion.engine.simulate import load_volume, project
    vol, _ = load_volume(os.path.join(SHARED, "cylindra_mt", "14pf_MT.tif"))
    vol = np.pad(vol.max() - vol, ((10, 10), (0, 0), (0, 0)))
    tilts = np.stack([project(vol, a) for a in np.arange(-span, span + step / 2, step)])
    diff = float(np.mean([np.std(tilts[i + 1] - tilts[i]) for i in range(len(tilts) - 1)]))
    return tilts, diff


def timed(fi, gaps, repeats: int) -> float:
    fi.interpolate_gaps(gaps)                       # trace + first run
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fi.interpolate_gaps(gaps)
        best = min(best, time.perf_counter() - t0)
    return best / len(gaps)


def load_models(args):
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.network import FilmNet
    models = []
    if args.model:
        models.append((f"published ({args.model})", args.model, True))
    else:
        models.append(("published configuration, RANDOM weights", FilmNet(FilmConfig.published(), seed=0), True))
    if args.trained_model:
        models.append((f"trained by cryotiger train ({os.path.basename(args.trained_model.rstrip('/'))})",
                       args.trained_model, False))
    return models


def precision_rows(args, models, peaks, device):
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.film.precision import ERROR_BOUND, auto_precision
    reduced = "mixed" if device == "gpu" else "bfloat16"
    tilts, diff = reprojected_series()
    gaps = [(tilts[i], tilts[i + 2], [0.5]) for i in range(0, len(tilts) - 2, 3)]
    a, b = test_pair(args.size)
    print(f"\nError reference: {len(tilts)} tilts -10..10 every 2 degrees re-projected from 14pf_MT "
          f"(136 x 84 px), std of the neighbouring-tilt difference {diff:.1f} (data units); "
          f"{len(gaps)} pairs (i, i+2). Bound for a default precision: error std < "
          f"{100 * ERROR_BOUND:g}% of it.\n")
    print(f"| model | precision | per pair at {args.size}x{args.size} (s) | GFLOP/s | % of float32 matmul peak "
          f"| % of its own matmul peak | speed vs float32 | error std / neighbour diff | max error / neighbour diff "
          f"| accurate (< {100 * ERROR_BOUND:g}%) | auto |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, model, published in models:
        ref_out, ref_time = None, None
        for prec in ("float32", reduced):
            fi = FilmInterpolator(model, tile_size=-(-args.size // 64) * 64, tile_overlap=0, precision=prec,
                                  device=device, log=lambda m: None)
            if fi.precision != prec:
                print(f"| {label} | {prec} | (runs as {fi.precision}: {fi.fallback_warning or 'not native'}) "
                      "| | | | | | | | |")
                continue
            t = timed(fi, [(a, b, [0.5])], args.repeats)
            out = np.stack([o[0] for o in fi.interpolate_gaps(gaps)])
            auto = auto_precision(device, fi.parameters())
            if prec == "float32":
                ref_out, ref_time = out, t
                err_std = err_max = 0.0
            else:
                err_std = float(np.std(out - ref_out)) / diff
                err_max = float(np.abs(out - ref_out).max()) / diff
            if published:
                gf = FLOP_PER_PIXEL * args.size ** 2 / t / 1e9
                own = peaks.get(prec)
                rates = (f"{gf:.0f} | {100 * gf / peaks['float32']:.0f}% | "
                         f"{f'{100 * gf / own:.0f}%' if own else '-'}")
            else:
                rates = "- | - | -"
            print(f"| {label} | {prec} | {t:.3f} | {rates} | {ref_time / t:.2f}x | {100 * err_std:.2f}% | "
                  f"{100 * err_max:.2f}% | {'yes' if err_std < ERROR_BOUND else 'NO'} | "
                  f"{'<- auto' if auto == prec else ''} |")


def context_rows(args, models, device):
    """How far the network's output moves when the input changes at one spot."""
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.film.tiling import network_context
    size = 256
    a, _ = test_pair(size, seed=2)
    a = (a - a.min()) / np.ptp(a)
    b = np.roll(a, 2, axis=1)
    c = size // 2
    a2, b2 = a.copy(), b.copy()
    a2[c - 2:c + 2, c - 2:c + 2] += 3 * a.std()
    b2[c - 2:c + 2, c - 2:c + 2] += 3 * a.std()
    yy, xx = np.mgrid[:size, :size]
    dist = np.maximum(np.abs(yy - c), np.abs(xx - c))
    print(f"\nContext: a 4x4 spot raised by 3 SD in both (normalised) inputs of a {size}x{size} pair; "
          "the farthest output pixel (Chebyshev distance from the spot) that moved by more than a "
          "fraction of the output range, float32:\n")
    print("| model | > 1e-2 (px) | > 1e-3 (px) | > 1e-4 (px) | max change at 64 px | context used by the tiling (px) |")
    print("|---|---|---|---|---|---|")
    for label, model, _ in models:
        fi = FilmInterpolator(model, tile_size=size, tile_overlap=0, precision="float32", device=device,
                              log=lambda m: None)
        base = fi.midpoints([(a, b)])[0]
        d = np.abs(fi.midpoints([(a2, b2)])[0] - base) / np.ptp(base)
        reach = [int(dist[d > t].max()) if (d > t).any() else 0 for t in (1e-2, 1e-3, 1e-4)]
        cfg = fi.model_info.get("config")
        print(f"| {label} | {reach[0]} | {reach[1]} | {reach[2]} | {d[dist == 64].max():.1e} | "
              f"{network_context(cfg) or 'not measured with trained weights: quarter-tile overlap'} |")


def tiled_rows(args, models, device):
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.film.tiling import TileGrid
    a, b = test_pair(args.tiled_size, seed=1)
    print(f"\nTiled vs whole at {args.tiled_size}x{args.tiled_size} (tiles of {args.tile}, default overlap "
          "of the model); rate = output pixels per second, float32:\n")
    print("| model | tiles | overlap (px) | pixels run / image pixels | whole (s) | tiled (s) | tiled rate / whole rate "
          "| max abs(tiled - whole) / output range |")
    print("|---|---|---|---|---|---|---|---|")
    for label, model, published in models:
        if published and not args.model:
            print(f"| {label} | not run: with random weights the published network's output depends on the "
                  "whole tile (--tiled-size 512 --tile 256 --model with such a network shows it), "
                  "so its tiling can only be measured with trained published weights | | | | | | |")
            continue
        whole = FilmInterpolator(model, tile_size=args.tiled_size, tile_overlap=0, precision="float32",
                                 device=device, log=lambda m: None)
        tiled = FilmInterpolator(model, tile_size=args.tile, precision="float32", device=device,
                                 log=lambda m: None)
        tw = timed(whole, [(a, b, [0.5])], 1)
        tt = timed(tiled, [(a, b, [0.5])], 1)
        ow = whole.interpolate_gaps([(a, b, [0.5])])[0][0]
        ot = tiled.interpolate_gaps([(a, b, [0.5])])[0][0]
        grid = TileGrid(args.tiled_size, args.tiled_size, tiled.tile_size, tiled.tile_overlap)
        cover = len(grid) * grid.tile_h * grid.tile_w / args.tiled_size ** 2
        print(f"| {label} | {len(grid)} x {grid.tile_h} | {tiled.tile_overlap} | {cover:.2f} | {tw:.2f} | {tt:.2f} | "
              f"{100 * tw / tt:.0f}% | {np.abs(ot - ow).max() / np.ptp(ow):.1e} |")


def linear_rows():
    from cryotiger_scipion.engine.interpolate import LinearInterpolator
    print("\n| linear interpolation | per pair (s) | GB/s (read 2 + write 1 image) | numpy copy of the same bytes (GB/s) "
          "| % of copy bandwidth |")
    print("|---|---|---|---|---|")
    li = LinearInterpolator()
    for s in (512, 2048):
        a, b = test_pair(s)
        li.interpolate_gaps([(a, b, [0.5])])
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            li.interpolate_gaps([(a, b, [0.5])])
            best = min(best, time.perf_counter() - t0)
        moved = 3 * a.nbytes
        rate = moved / best / 1e9
        bw = copy_bandwidth(moved // 2)      # a copy of moved/2 bytes moves ``moved`` bytes
        print(f"| {s}x{s} | {best:.4f} | {rate:.1f} | {bw:.1f} | {100 * rate / bw:.0f}% |")


def gpu_mode(args):
    import tensorflow as tf
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.film.network import FilmNet
    if not tf.config.list_physical_devices("GPU"):
        print("\n--gpu: TensorFlow sees no GPU on this machine; nothing measured.")
        return 1
    model = args.model or FilmNet(FilmConfig.published(), seed=0)
    fi = FilmInterpolator(model, device="gpu", precision=args.gpu_precision, batch_size=args.batch_size,
                          log=lambda m: None)
    a, b = test_pair(2048)
    gaps = [(a, np.roll(b, k, axis=0), [0.5]) for k in range(args.pairs)]
    t0 = time.perf_counter()
    fi.interpolate_gaps(gaps[:fi.batch_size])             # trace (XLA compile) + first batch
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(0, len(gaps), fi.batch_size):
        fi.interpolate_gaps(gaps[s:s + fi.batch_size])
    t = time.perf_counter() - t0
    gf = FLOP_PER_PIXEL * 2048 ** 2 * len(gaps) / t / 1e9
    print(f"\nGPU: {tf.config.experimental.get_device_details(tf.config.list_physical_devices('GPU')[0])}")
    print(f"| model | precision | XLA | batch | tile | traces | first batch incl. compile (s) | {args.pairs} pairs "
          f"2048x2048 (s) | pairs/s | GFLOP/s | % of float16 matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    peak = matmul_peak("float16", sizes=(4096, 8192), device="/GPU:0")
    print(f"| {'published' if args.model else 'published configuration, random weights'} | {fi.precision} | "
          f"{fi.jit_compile} | {fi.batch_size} | {fi.tile_size}/{fi.tile_overlap} | {fi.trace_count} | "
          f"{t_first:.1f} | {t:.1f} | {len(gaps) / t:.2f} | {gf:.0f} | {100 * gf / peak:.0f}% |")
    print(f"goal: 60 pairs in under 15 s on one H100 -> {'met' if t * 60 / len(gaps) < 15 else 'NOT met'} "
          f"({t * 60 / len(gaps):.1f} s for 60)")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="published model folder (default: the published "
                   "configuration with random weights)")
    p.add_argument("--trained-model", default=STARTER if os.path.isdir(STARTER) else None,
                   help="a model trained by cryotiger train (default: the shipped starter model)")
    p.add_argument("--size", type=int, default=256, help="edge of the timed pair (whole image)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs (best kept)")
    p.add_argument("--tiled-size", type=int, default=2048, help="edge of the tiled-vs-whole pair (0: skip)")
    p.add_argument("--tile", type=int, default=768, help="tile edge for the tiled run (768: what "
                   "--max-memory 6 gives the published network on CPU)")
    p.add_argument("--sections", default="precision,context,tiled,linear",
                   help="which tables (comma separated)")
    p.add_argument("--gpu", action="store_true", help="GPU mode: 2048x2048 pairs, float16 + XLA")
    p.add_argument("--pairs", type=int, default=60, help="pairs in the GPU run")
    p.add_argument("--batch-size", type=int, default=4, help="pairs per GPU call")
    p.add_argument("--gpu-precision", default="auto")
    args = p.parse_args(argv)

    import tensorflow as tf
    device = "gpu" if args.gpu else "cpu"
    print(header("FILM inference benchmark", tensorflow=True))
    if args.gpu:
        return gpu_mode(args)
    from cryotiger_scipion.engine.film.precision import cpu_has_bf16
    with tf.device("/CPU:0"):
        peaks = {"float32": matmul_peak("float32")}
        if cpu_has_bf16():
            peaks["bfloat16"] = matmul_peak("bfloat16")
    print("matmul peak at the start (1024^3 and 2048^3, best of 4): "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
          + ("" if cpu_has_bf16() else " (no AVX512-BF16/AMX: bfloat16 is emulated, not measured)"))
    models = load_models(args)
    if "precision" in args.sections.split(","):     # a shared machine: the best of two moments
        with tf.device("/CPU:0"):
            for k in list(peaks):
                peaks[k] = max(peaks[k], matmul_peak(k))
        print("matmul peak used for the ratios (best of the start and just before the table): "
              + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    sections = args.sections.split(",")
    if "precision" in sections:
        precision_rows(args, models, peaks, device)
    if "context" in sections:
        context_rows(args, models, device)
    if args.tiled_size and "tiled" in sections:
        tiled_rows(args, models, device)
    if "linear" in sections:
        linear_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
