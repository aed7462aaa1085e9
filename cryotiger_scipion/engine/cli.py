"""The ``cryotiger`` command line.

Each sub-command lives in ``engine/commands/<name>.py`` with a
``register(subparsers)`` function that adds its parser and sets ``func``.
Contracts used by checks outside the repository are listed in the README
(section "Command line"); extend them, never rename.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import CryoTigerError, InputError

COMMANDS = ["interpolate", "simulate", "model", "train", "ctf", "reconstruct", "holdout", "export",
            "parallel"]


def build_parser() -> argparse.ArgumentParser:
    from ..constants import VERSION
    parser = argparse.ArgumentParser(
        prog="cryotiger",
        description="cryoTIGER engine: tilt interpolation (linear, FILM), training, CTF, "
                    "reconstruction and evaluation of cryo-ET tilt series.")
    parser.add_argument("--version", action="version", version=f"cryotiger {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    worker = os.environ.get("CRYOTIGER_WORKER")     # set by 'cryotiger parallel' (devices.py)
    if worker:
        print(f"cryotiger {args.command}: worker slot/GPU {worker}, pid {os.getpid()}, "
              f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}",
              file=sys.stderr, flush=True)
    try:
        from .inputs import preflight
        preflight(args)                  # shared option checks, before any file is read
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"cryotiger {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CryoTigerError as exc:
        print(f"cryotiger {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"cryotiger {args.command}: error: out of memory; lower --max-memory or use "
              "smaller tiles / binned data", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cryotiger {args.command}: interrupted; no complete output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
