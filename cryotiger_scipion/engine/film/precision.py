"""What ``--precision auto`` means on each device (issue 17 item 1).

The rule comes from measurements (bench/film_inference.py, docs/benchmarks.md
"FILM inference"): the error of a reduced precision against float32 is
compared with the std of the difference between neighbouring tilts of a
tilt series re-projected from a real tomogram (../shared/data cylindra 14pf_MT,
2-degree steps, no noise: a strict stand-in for the noise of real tilts, which
is larger), and a reduced precision is the default only where it is faster AND
its error stays below 1 % of that difference:

* CPU with AVX512-BF16 or AMX (``avx512_bf16`` / ``amx_bf16`` in
  /proc/cpuinfo), published-size network (>= ``LARGE_NETWORK`` parameters):
  bfloat16.  Measured: error 0.64 % (std) of the neighbouring-tilt
  difference (published configuration, random weights: no published weights
  here); 1.1x to 2.7x faster than float32 on a 2-core AVX512-BF16 EPYC shared
  with other jobs (the speed-up depended on the load).
* CPU, small networks (the ``small`` / fit configurations trained by
  ``cryotiger train``): float32.  The error of bfloat16 was 1.6 % of the
  neighbouring-tilt difference (the shipped starter model, trained by the
  product), above the bound; it was not reliably faster either (0.72x and
  1.47x float32's speed in two runs on the shared machine).
* CPU without BF16 instructions: float32 (TensorFlow emulates bfloat16 there,
  which is slower than float32).
* GPU: 'mixed' (float16 compute, XLA).  NOT measured on a GPU (none was lent);
  its agreement with float32 is checked on the CPU by the tests.
"""
from __future__ import annotations

from typing import Iterable, Optional

#: Parameter count from which bfloat16 pays on CPU (the published network has
#: 34,436,667; the small and fit configurations have < 1 M).
LARGE_NETWORK = 5_000_000
#: CPU flags (Linux /proc/cpuinfo) of native bfloat16 matrix arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: The accuracy bound of the rule: error std / std of the neighbouring-tilt difference.
ERROR_BOUND = 0.01


def cpu_flags() -> set:
    """The CPU feature flags of /proc/cpuinfo (an empty set where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16(flags: Optional[Iterable[str]] = None) -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    flags = cpu_flags() if flags is None else set(flags)
    return any(f in flags for f in BF16_FLAGS)


def auto_precision(device: str, parameters: int, flags: Optional[Iterable[str]] = None) -> str:
    """The precision ``--precision auto`` runs: 'mixed' on 'gpu'; on 'cpu'
    'bfloat16' for a network of ``parameters`` >= LARGE_NETWORK on a CPU with
    native bfloat16 (``flags``: CPU flags, default this machine's), else
    'float32'.  See the module doc for the measurements behind it."""
    if device == "gpu":
        return "mixed"
    if parameters >= LARGE_NETWORK and cpu_has_bf16(flags):
        return "bfloat16"
    return "float32"
