"""``cryotiger parallel``: run engine commands over several GPUs at once.

  cryotiger parallel TASKS --gpu-ids 0,1 [--procs-per-gpu K] [--log-dir DIR] [--report R.json]

TASKS: a text file, one ``cryotiger`` command line per line (the word
``cryotiger`` may be left out; ``#`` starts a comment), e.g.
``interpolate --input TS_01.mrc --angles TS_01.tlt --output out/TS_01.mrc --method film --model M --device gpu``.
Each line runs as its own process with CUDA_VISIBLE_DEVICES set to one GPU of
the list (so ``--device gpu`` uses that GPU; do not give ``--gpu-ids`` in the
lines), one process per GPU at a time (K with --procs-per-gpu when the
GPU's memory allows). Logs: DIR/<name>.log (name: the --output file's stem,
else task<N>). Exit 0 when every line succeeded, else 1 with one line per
failed task. See engine/devices.py.
"""
from __future__ import annotations

import json
import os
import shlex

from . import add_quiet


def register(subparsers):
    """Add the ``cryotiger parallel`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger parallel --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "parallel", help="run cryotiger commands over several GPUs (one process per GPU)",
        description="Run the cryotiger command lines of TASKS concurrently, one process per GPU "
                    "of --gpu-ids (CUDA_VISIBLE_DEVICES set to that GPU), --procs-per-gpu "
                    "processes per GPU.")
    p.add_argument("tasks", help="file with one cryotiger command line per line")
    p.add_argument("--gpu-ids", required=True, help="GPUs to use, e.g. '0,1' (or '0 1')")
    p.add_argument("--procs-per-gpu", type=int, default=1,
                   help="engine processes per GPU at the same time (default 1; more when "
                        "the GPU memory holds several)")
    p.add_argument("--log-dir", default=None, help="folder for the per-task logs "
                                                   "(default: TASKS_logs beside TASKS)")
    p.add_argument("--report", default=None,
                   help="JSON file: per task its GPU, slot, pid, start/end time and exit code")
    add_quiet(p)
    p.set_defaults(func=run)


def read_tasks(path: str) -> list:
    """Read a tasks file: one ``cryotiger`` command line per line (the word
    ``cryotiger`` optional, ``#`` comments, blank lines skipped).

    Returns:
      [(name, words)]: ``words`` the line without 'cryotiger'; ``name`` the
      --output file's stem (made unique with '_'), else task<N>.

    Raises:
      InputError: when the file cannot be read, a line cannot be split (bad
        quotes), does not start with a cryotiger command or gives --gpu-ids,
        or there is no command line at all.
    """
    from .. import InputError
    from ..cli import COMMANDS
    from ..formats.text import read_text_lines
    lines = read_text_lines(path, "tasks file")   # missing, folder, binary: one line
    tasks, names = [], set()
    for n, line in enumerate(lines, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InputError(f"{path} line {n}: {exc}") from None
        if not words:
            continue
        if words[0] == "cryotiger":
            words = words[1:]
        if not words or words[0] not in COMMANDS:
            raise InputError(f"{path} line {n}: '{line.strip()}' is not a cryotiger command; start "
                             f"each line with one of {', '.join(COMMANDS)}")
        if "--gpu-ids" in words:
            raise InputError(f"{path} line {n}: leave --gpu-ids out; each line gets one GPU of "
                             "'cryotiger parallel --gpu-ids' through CUDA_VISIBLE_DEVICES")
        name = f"task{len(tasks) + 1}"
        if "--output" in words and words.index("--output") + 1 < len(words):
            name = os.path.splitext(os.path.basename(words[words.index("--output") + 1]))[0]
        while name in names:
            name += "_"
        names.add(name)
        tasks.append((name, words))
    if not tasks:
        raise InputError(f"{path}: no command lines in it")
    return tasks


def run(args) -> int:
    """Run ``cryotiger parallel``: the command lines of ``args.tasks``
    concurrently over the GPUs of --gpu-ids (engine/devices.py); one log per
    task in --log-dir, the JSON report with --report.

    Returns:
      0 when every task succeeded, else 1 (one stderr line per failed task).

    Raises:
      InputError: for bad --gpu-ids, a bad tasks file, or --procs-per-gpu < 1.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..devices import engine_argv, overlapping, parse_gpu_ids, results_json, run_on_devices
    gpu_ids = parse_gpu_ids(args.gpu_ids)
    tasks = read_tasks(args.tasks)
    if args.procs_per_gpu < 1:
        from .. import InputError
        raise InputError(f"--procs-per-gpu {args.procs_per_gpu}: must be at least 1")
    log_dir = args.log_dir or os.path.splitext(args.tasks)[0] + "_logs"
    from ..outputs import atomic_path
    from ..outputs import OutputSet
    # The report and the log folder are this command's outputs (engine/outputs.py);
    # each task checks its own outputs.
    with OutputSet("parallel", files=[(args.report, "--report")], inputs=[(args.tasks, "TASKS")],
                   folders=[(log_dir, "--log-dir", "scratch")]):
        results = run_on_devices([(name, engine_argv(words)) for name, words in tasks], gpu_ids,
                                 args.procs_per_gpu, log_dir=log_dir, progress=not args.quiet)
        if args.report:
            with atomic_path(args.report) as tmp, open(tmp, "w") as f:
                json.dump(results_json(results), f, indent=1)
    failed = [r for r in results if r.returncode != 0]
    if not args.quiet:
        print(f"parallel: {len(results) - len(failed)}/{len(results)} tasks done on GPUs "
              f"{','.join(map(str, gpu_ids))} x {args.procs_per_gpu}, at most {overlapping(results)} "
              "at once")
    for r in failed:
        print(f"cryotiger parallel: error: {r.name} failed (exit {r.returncode}) on GPU {r.device}; "
              f"see {r.log}", file=__import__("sys").stderr)
    return 1 if failed else 0
