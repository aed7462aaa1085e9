"""What every benchmark table states about the machine, and the limits measured in the same run.

A time means little without the machine and what that machine can do at best
*at the moment of the run* (a shared machine, turbo, another process): every
bench script prints ``header(...)`` (CPU model from /proc/cpuinfo, usable
threads, load average, TensorFlow version and threads) and quotes its times
as a ratio to a limit measured in the same process:

* ``matmul_peak``: the best GFLOP/s of square TensorFlow matrix multiplies
  (the compute limit of a convolution network: FILM);
* ``copy_bandwidth``: the best GB/s of a numpy copy of the same number of
  bytes (read + write counted; the limit of memory-bound work: linear
  interpolation, back-projection).

Run as a script for the limits alone: ``python bench/machine.py``.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Iterable, Optional

import numpy as np


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC 9654 96-Core Processor'), from
    /proc/cpuinfo (``model name``), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none): the
    engine's reader, the one ``--precision auto`` decides on."""
    from cryotiger_scipion.engine.film.precision import cpu_flags as engine_cpu_flags
    return engine_cpu_flags()


def usable_threads() -> int:
    """CPUs this process may run on (affinity; what a container or taskset allows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def header(title: str, tensorflow: bool = False) -> str:
    """Markdown lines naming the run: title, UTC time, CPU model and relevant
    flags, usable threads, load average at the start, optionally TensorFlow's
    version and thread settings, and the GPUs TensorFlow sees."""
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags]
    lines = [f"# {title}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"machine: {cpu_model()} ({platform.machine()}; flags: {' '.join(shown) or 'none of note'}), "
             f"{usable_threads()} usable threads of {os.cpu_count()}, load average at start "
             f"{os.getloadavg()[0]:.1f} (above {usable_threads()} means the machine was shared: "
             "absolute times are then upper bounds, quote the ratios)"]
    if tensorflow:
        import tensorflow as tf
        lines.append(f"TensorFlow {tf.__version__}, intra-op threads "
                     f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default (all usable)'}, "
                     f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    return "\n".join(lines)


def matmul_peak(dtype: str = "float32", sizes: Iterable[int] = (1024, 2048), repeats: int = 4,
                device: Optional[str] = None) -> float:
    """Best GFLOP/s (2 n^3 per product) of square TensorFlow matmuls of ``dtype``
    ('float32', 'bfloat16', 'float16'), best of ``repeats`` per size, on
    ``device`` ('/CPU:0', '/GPU:0'; default TensorFlow's choice)."""
    import tensorflow as tf
    dt = getattr(tf, dtype)
    best = 0.0
    with tf.device(device) if device else _null():
        f = tf.function(lambda x: tf.linalg.matmul(x, x))
        for n in sizes:
            m = tf.cast(tf.random.uniform((n, n)), dt)
            f(m).numpy()
            for _ in range(repeats):
                t0 = time.perf_counter()
                f(m).numpy()
                best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Best GB/s (1e9 bytes; read + write counted, 2 * nbytes per copy) of
    ``np.copyto`` between two float32 arrays of ``nbytes`` bytes."""
    n = max(1, int(nbytes) // 4)
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description="Print this machine's header and limits (matmul peak, "
                                        "copy bandwidth) that the benchmark tables quote ratios to."
                            ).parse_args()
    print(header("Machine limits", tensorflow=True))
    print(f"matmul peak float32 {matmul_peak('float32'):.0f} GFLOP/s, bfloat16 {matmul_peak('bfloat16'):.0f} GFLOP/s")
    for mb in (16, 256):
        print(f"numpy copy {mb} MB: {copy_bandwidth(mb * 2 ** 20):.1f} GB/s")
