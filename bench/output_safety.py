#!/usr/bin/env python
"""Cost of the output safety (issue 9, engine/outputs.py).

1. The training-database cache key: SHA-256 of every input's bytes
   (engine/train/data.py file_digest) against reading the same file without
   hashing (the limit: the key can never be cheaper than reading the bytes).
2. An OutputSet of three files (OUT.mrc, OUT.tlt, OUT.json): identity checks,
   locks, stale-temporary clean-up and commit, against writing the three files
   without it (one atomic rename each, as before; the stack is preallocated
   with posix_fallocate in both).

    nice -n 10 .venv-engine/bin/python bench/output_safety.py [--mb 256]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402


def best(fn, repeat=3):
    t_best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256, help="size of the hashed file in MB (256)")
    args = ap.parse_args()
    from cryotiger_scipion.engine.formats.mrc import StackWriter
    from cryotiger_scipion.engine.formats.tlt import write_angles
    from cryotiger_scipion.engine.outputs import OutputSet
    from cryotiger_scipion.engine.train.data import file_digest

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible, 1 thread used")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        big = os.path.join(d, "stack.mrc")
        with open(big, "wb") as f:
            f.write(np.random.default_rng(0).bytes(args.mb * 1_000_000))

        def read_only():
            with open(big, "rb") as f:
                while f.read(1 << 22):
                    pass
        t_read = best(read_only)
        t_hash = best(lambda: file_digest(big))
        print("\n| step | seconds | MB/s | ratio to the limit |")
        print("|---|---|---|---|")
        print(f"| read {args.mb} MB (page cache; the limit) | {t_read:.3f} | {args.mb / t_read:.0f} | 1.00 |")
        print(f"| SHA-256 cache key of {args.mb} MB | {t_hash:.3f} | {args.mb / t_hash:.0f} | "
              f"{t_hash / t_read:.2f} |")

        n, ny, nx = 41, 512, 512
        data = np.random.default_rng(1).normal(size=(ny, nx)).astype(np.float32)
        inp = os.path.join(d, "TS.mrc")
        with StackWriter(inp, 3, (ny, nx), 5.0) as w:
            for i in range(3):
                w[i] = data

        def write_set(out, use_set):
            def body():
                with StackWriter(out, n, (ny, nx), 5.0) as w:
                    for i in range(n):
                        w[i] = data
                write_angles(os.path.splitext(out)[0] + ".tlt", np.arange(n, dtype=float))
                with open(os.path.splitext(out)[0] + ".json.tmp", "w") as f:
                    f.write("[]")
                os.replace(os.path.splitext(out)[0] + ".json.tmp", os.path.splitext(out)[0] + ".json")
            if not use_set:
                return body()
            stem = os.path.splitext(out)[0]
            with OutputSet("bench", files=[(out, "--output"), (stem + ".tlt", "tlt"),
                                           (stem + ".json", "json")],
                           inputs=[(inp, "--input")]):
                body()
        out = os.path.join(d, "OUT.mrc")
        t_plain = best(lambda: write_set(out, False))
        t_set = best(lambda: write_set(out, True))
        mb = n * ny * nx * 4 / 1e6
        print(f"| write OUT.mrc ({mb:.0f} MB) + .tlt + .json, one rename each (the limit) | "
              f"{t_plain:.3f} | {mb / t_plain:.0f} | 1.00 |")
        print(f"| the same through an OutputSet (checks, locks, commit) | {t_set:.3f} | "
              f"{mb / t_set:.0f} | {t_set / t_plain:.2f} |")


if __name__ == "__main__":
    main()
