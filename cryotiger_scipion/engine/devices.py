"""Several GPUs: engine runs fanned out over devices, one process per device
slot (issue 14 item 1).

A *slot* is one engine process that may run at a time on one device; a GPU
list of N devices with ``procs_per_gpu`` K gives N*K slots, ordered round-robin
(``0 1 0 1`` for N=2, K=2) so that the first N tasks land on N different
devices. Each task runs in its own process with ``CUDA_VISIBLE_DEVICES`` set
to its slot's device, so inside the process that GPU is device 0 and TensorFlow
sees nothing else (this is how SLURM and Scipion's queue jobs hand out GPUs
too). Tasks are ``cryotiger`` sub-command lines; they run concurrently, one
per slot, and a slot takes the next task as soon as its process ends.

Used by ``cryotiger parallel`` (engine/commands/parallel.py). In Scipion the
same fan-out is done by Scipion's own steps executor (one GPU slot per thread,
see protocols/protocol_base.py ``getGpuList``); this module is for running the
engine on a multi-GPU machine without Scipion.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

from . import InputError

WORKER_ENV = "CRYOTIGER_WORKER"     # "slot/device", set for every task process


def parse_gpu_ids(text) -> List[int]:
    """GPU ids from '0,1', '0 1' (Scipion's %(GPU)s) or a list.

    Returns:
      The ids as ints, in the order given.

    Raises:
      InputError: when a word is not an integer, the list is empty, an id is
        negative or listed twice.
    """
    if isinstance(text, (list, tuple)):
        words = [str(w) for w in text]
    else:
        words = str(text or "").replace(",", " ").split()
    try:
        ids = [int(w) for w in words]
    except ValueError:
        raise InputError(f"--gpu-ids '{text}': give GPU numbers separated by commas, e.g. '0,1'") from None
    if not ids or any(i < 0 for i in ids):
        raise InputError(f"--gpu-ids '{text}': give at least one GPU number (0, 1, ...)")
    if len(set(ids)) != len(ids):
        raise InputError(f"--gpu-ids '{text}': a GPU is listed twice; use --procs-per-gpu to run "
                         "several processes on one GPU")
    return ids


def device_slots(gpu_ids: Sequence[int], procs_per_gpu: int = 1) -> List[int]:
    """The device of every slot: ``gpu_ids`` repeated ``procs_per_gpu`` times,
    round-robin ([0, 1, 0, 1] for ids [0, 1] and 2 per GPU).

    Raises:
      InputError: when ``procs_per_gpu`` < 1.
    """
    if procs_per_gpu < 1:
        raise InputError(f"--procs-per-gpu {procs_per_gpu}: must be at least 1")
    return [g for _ in range(procs_per_gpu) for g in gpu_ids]


@dataclass
class TaskResult:
    """What happened to one task: ``slot`` (0-based), ``device`` (the GPU id
    given as CUDA_VISIBLE_DEVICES), ``pid``, ``start``/``end`` (seconds since
    the epoch), ``returncode`` and its ``log`` file (stdout and stderr)."""
    name: str
    argv: List[str]
    slot: int
    device: int
    pid: int
    start: float
    end: float
    returncode: int
    log: str


def engine_argv(args: Sequence[str]) -> List[str]:
    """The command that runs ``cryotiger <args>`` with this interpreter
    (``python -m cryotiger_scipion.engine.cli ARGS``), as a list for Popen.
    """
    return [sys.executable, "-m", "cryotiger_scipion.engine.cli", *args]


def run_on_devices(tasks: Sequence[Tuple[str, Sequence[str]]], gpu_ids: Sequence[int],
                   procs_per_gpu: int = 1, log_dir: str = ".", progress: bool = True,
                   env: Optional[dict] = None) -> List[TaskResult]:
    """Run ``tasks`` over the device slots of ``gpu_ids`` x ``procs_per_gpu``.

    At most one process per slot at a time, each with
    CUDA_VISIBLE_DEVICES=<its device> and CRYOTIGER_WORKER=<slot>/<device> in
    its environment; a slot takes the next task when its process ends.

    Args:
      tasks: (name, argv) pairs; argv a full command line (see :func:`engine_argv`).
      gpu_ids: GPU ids (see :func:`parse_gpu_ids`).
      procs_per_gpu: processes per GPU at the same time (>= 1).
      log_dir: folder for ``<name>.log`` (stdout and stderr of each task), made
        when missing.
      progress: print one line when a task starts and when it ends.
      env: base environment of the tasks (default: this process's).

    Returns:
      One TaskResult per task that was started, in task order (a task that
      failed has returncode != 0; the others still run).

    Raises:
      InputError: when ``procs_per_gpu`` < 1.
      OSError: when ``log_dir`` cannot be made.
    """
    slots = device_slots(gpu_ids, procs_per_gpu)
    os.makedirs(log_dir, exist_ok=True)
    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(len(tasks)):
        todo.put(i)
    results: List[Optional[TaskResult]] = [None] * len(tasks)
    lock = threading.Lock()
    base_env = dict(os.environ if env is None else env)

    def worker(slot: int, device: int) -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            name, argv = tasks[i]
            log = os.path.join(log_dir, f"{name}.log")
            penv = dict(base_env, CUDA_VISIBLE_DEVICES=str(device), **{WORKER_ENV: f"{slot}/{device}"})
            start = time.time()
            with open(log, "w") as out:
                p = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=penv)
                if progress:
                    with lock:
                        print(f"parallel: {name} started on GPU {device} (slot {slot}, pid {p.pid})",
                              flush=True)
                rc = p.wait()
            results[i] = TaskResult(name, list(argv), slot, device, p.pid, start, time.time(), rc, log)
            if progress:
                with lock:
                    print(f"parallel: {name} {'done' if rc == 0 else f'FAILED (exit {rc}), see {log}'}"
                          f" in {time.time() - start:.1f} s", flush=True)

    threads = [threading.Thread(target=worker, args=(s, d), daemon=True) for s, d in enumerate(slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


def overlapping(results: Sequence[TaskResult]) -> int:
    """Most tasks that ran at the same moment (from their start/end times)."""
    events = sorted([(r.start, 1) for r in results] + [(r.end, -1) for r in results],
                    key=lambda e: (e[0], e[1]))
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def results_json(results: Sequence[TaskResult]) -> List[dict]:
    """The task results as plain dicts (one per task, the fields of
    :class:`TaskResult`), for the JSON report of ``cryotiger parallel``."""
    return [asdict(r) for r in results]
