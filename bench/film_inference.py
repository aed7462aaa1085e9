#!/usr/bin/env python
"""FILM inference benchmark (issue 3): per-pair time, peak memory and achieved GFLOP/s.

Prints a markdown table: one row per image size (256, 512, 1024 whole; 2048
and 4096 tiled under a --max-memory budget), on the CPU, with the published
configuration (34,436,667 parameters, random weights: timing does not depend
on the weights).  Achieved GFLOP/s counts 4.2 MFLOP per OUTPUT pixel (so tile
overlaps and padding count as overhead), next to the machine's float32
matrix-multiply peak measured with TensorFlow (2048^3/4096^3 matmuls, best of 6).
Also: bfloat16 speed and error at 512 (CPUs with AVX512-BF16/AMX), and linear
interpolation throughput for comparison.

Each size runs in its own process, so the peak memory (max RSS) is that of one
pair at that size, including TensorFlow and the weights.

    nice python bench/film_inference.py [--sizes 256,512] [--max-memory 6] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLOP_PER_PIXEL = 4.2e6
TILED_FROM = 2048


def test_pair(size: int, seed: int = 0):
    """A smooth random image and a copy shifted by 3 pixels (float32, mean ~0)."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), 2)
    a += 0.3 * rng.normal(0, 1, a.shape).astype(np.float32)
    return a, np.roll(a, 3, axis=1)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def child(args) -> dict:
    """One size in this process; prints one JSON line."""
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.interpolator import FilmInterpolator
    from cryotiger_scipion.engine.film.network import FilmNet

    size = args.child
    net = FilmNet(FilmConfig.published(), seed=0)
    tiled = size >= args.tiled_from
    kw = dict(max_memory=args.max_memory) if tiled else dict(tile_size=-(-size // 64) * 64, tile_overlap=0)
    fi = FilmInterpolator(net, precision=args.precision, **kw)
    a, b = test_pair(size)
    if tiled:  # warm up (trace) on one tile of the shape the grid will use
        from cryotiger_scipion.engine.film.tiling import TileGrid
        p = -(-size // 64) * 64
        th, tw = TileGrid(p, p, fi.tile_size, fi.tile_overlap).shape
        warm = (a[:th, :tw], b[:th, :tw])
    else:
        warm = (a, b)
    fi.interpolate_gaps([(warm[0], warm[1], [0.5])])          # trace + first run
    times = []
    out = None
    for _ in range(1 if tiled else (args.repeats if size <= 512 else min(2, args.repeats))):
        t0 = time.perf_counter()
        out = fi.interpolate_gaps([(a, b, [0.5])])[0][0]
        times.append(time.perf_counter() - t0)
    from cryotiger_scipion.engine.film.tiling import TileGrid
    p = -(-size // 64) * 64
    grid = TileGrid(p, p, fi.tile_size, fi.tile_overlap)
    res = {"size": size, "tiled": tiled, "tile": grid.shape[0], "overlap": fi.tile_overlap, "tiles": len(grid),
           "time": min(times), "peak_gib": peak_gib(), "traces": fi.trace_count,
           "precision": fi.precision}
    if args.compare_float32 and args.precision != "float32":
        ref = FilmInterpolator(net, tile_size=fi.tile_size, tile_overlap=fi.tile_overlap)
        r = ref.interpolate_gaps([(a, b, [0.5])])[0][0]
        scale = float(np.percentile(np.concatenate([a, b]), 99.5) - np.percentile(np.concatenate([a, b]), 0.5))
        res["err_max"] = float(np.abs(out - r).max()) / scale      # in [0,1] network units
        res["err_mean"] = float(np.abs(out - r).mean()) / scale
        res["err_vs_std"] = float(np.abs(out - r).mean() / r.std())
    return res


def matmul_peak(dtype_name: str, sizes=(2048, 4096), repeats: int = 6) -> float:
    """Best GFLOP/s of square TensorFlow matmuls (best of ``repeats`` per size)."""
    import tensorflow as tf
    dt = getattr(tf, dtype_name)
    f = tf.function(lambda x: tf.linalg.matmul(x, x))
    best_rate = 0.0
    for n in sizes:
        m = tf.cast(tf.random.uniform((n, n)), dt)
        f(m).numpy()
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(m).numpy()
            best_rate = max(best_rate, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best_rate


def linear_throughput(size: int, repeats: int = 5) -> float:
    from cryotiger_scipion.engine.interpolate import LinearInterpolator
    a, b = test_pair(size)
    li = LinearInterpolator()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        li.interpolate_gaps([(a, b, [0.5])])
        best = min(best, time.perf_counter() - t0)
    return best


def run_child(size: int, args, precision: str = "float32", compare: bool = False) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(size), "--max-memory", str(args.max_memory),
           "--repeats", str(args.repeats), "--precision", precision, "--tiled-from", str(args.tiled_from)]
    if compare:
        cmd.append("--compare-float32")
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        return {"size": size, "error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512,1024,2048,4096", help="image edges, comma separated")
    p.add_argument("--max-memory", type=float, default=6.0, help="GiB budget for the tiled sizes")
    p.add_argument("--tiled-from", type=int, default=TILED_FROM, help="sizes >= this run tiled")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per untiled size (best is kept)")
    p.add_argument("--bf16-size", type=int, default=512, help="size of the bfloat16 row (0: none)")
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--compare-float32", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    import tensorflow as tf
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"# FILM inference benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
          f"(affinity {len(os.sched_getaffinity(0))}), TensorFlow {tf.__version__}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    peak32 = matmul_peak("float32")
    peak16 = matmul_peak("bfloat16")
    print(f"matmul peak (2048^3 and 4096^3, best of 6 each): float32 {peak32:.0f} GFLOP/s, bfloat16 {peak16:.0f} GFLOP/s\n")
    rows = [run_child(s, args) for s in sizes]
    if args.bf16_size:
        rows.append(run_child(args.bf16_size, args, precision="bfloat16", compare=True))
    print("| size | mode | precision | per pair (s) | peak memory (GiB) | GFLOP/s | % of f32 matmul peak | traces |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['size']} | failed: {r['error']} | | | | | | |")
            continue
        gf = FLOP_PER_PIXEL * r["size"] ** 2 / r["time"] / 1e9
        mode = f"{r['tiles']} tiles {r['tile']}/{r['overlap']}" if r["tiled"] else "whole"
        print(f"| {r['size']}x{r['size']} | {mode} | {r['precision']} | {r['time']:.2f} | {r['peak_gib']:.2f} | "
              f"{gf:.0f} | {100 * gf / peak32:.0f}% | {r['traces']} |")
    for r in rows:
        if "err_max" in r:
            print(f"\nbfloat16 vs float32 at {r['size']}x{r['size']} (random weights): max |diff| "
                  f"{r['err_max']:.2e}, mean |diff| {r['err_mean']:.2e} of the [0,1] input range; "
                  f"mean |diff| / output std {r['err_vs_std']:.2e}")
    print("\n| linear interpolation | per pair (s) | pairs/s | Mpixel/s |")
    print("|---|---|---|---|")
    for s in (512, 4096):
        t = linear_throughput(s)
        print(f"| {s}x{s} | {t:.4f} | {1 / t:.0f} | {s * s / t / 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
