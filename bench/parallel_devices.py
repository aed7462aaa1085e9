#!/usr/bin/env python
"""Several devices (issue 14 item 1): wall time of `cryotiger parallel` over
1, 2 and 4 device slots, same tasks.

Here there is no GPU: every slot is a CPU process (CUDA_VISIBLE_DEVICES set,
unused), so the measured speed-up is bounded by the CPU cores the machine
gives us, not by the number of slots. The table prints that limit (min(slots,
cores)) next to each measurement. Tasks: N tilt series of 41 tilts 512 x 512,
`cryotiger interpolate --method linear` (real engine processes, start-up
included).

    nice -n 10 .venv-engine/bin/python bench/parallel_devices.py [--series 8]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        lines = []
        for i in range(args.series):
            write_stack(f"{d}/TS_{i}.mrc", rng.normal(0, 1, (41, args.size, args.size)).astype(np.float32), 4.0)
            write_angles(f"{d}/TS_{i}.tlt", np.linspace(-60, 60, 41))
            lines.append(f"interpolate --input {d}/TS_{i}.mrc --angles {d}/TS_{i}.tlt "
                         f"--output {d}/out_SLOTS/TS_{i}.mrc --method linear --quiet")
        print(header("Several devices benchmark"))
        print(f"tasks: {args.series} x cryotiger interpolate --method linear, 41 tilts {args.size}^2\n")
        print("| slots (GPUs x procs) | wall time (s) | speed-up vs 1 slot | limit here min(slots, cores) |")
        print("|---|---|---|---|")
        base = None
        for slots in (1, 2, 4):
            os.makedirs(f"{d}/out_{slots}", exist_ok=True)
            tasks = f"{d}/tasks_{slots}.txt"
            with open(tasks, "w") as f:
                f.write("\n".join(l.replace("SLOTS", str(slots)) for l in lines) + "\n")
            ids = ",".join(str(i) for i in range(slots))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cryotiger_scipion.engine.cli", "parallel", tasks,
                            "--gpu-ids", ids, "--quiet"], check=True)
            wall = time.perf_counter() - t
            base = base or wall
            print(f"| {slots} ({slots} x 1) | {wall:.1f} | {base / wall:.2f} | {min(slots, cores)} |")


if __name__ == "__main__":
    main()
