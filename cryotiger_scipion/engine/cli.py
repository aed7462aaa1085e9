"""The ``cryotiger`` command line.

Each sub-command lives in ``engine/commands/<name>.py`` with a
``register(subparsers)`` function that adds its parser and sets ``func``.
Contracts used by checks outside the repository are listed in the README
(section "Command line"); extend them, never rename.

Errors end the command with ONE line ``cryotiger SUB: error: ...`` on stderr:
bad input (exit 2), other known problems (exit 1: full disk, read-only
folder, locked output, TensorFlow missing, out of memory).  TensorFlow's
start-up lines (oneDNN, cpu_feature_guard, absl) are kept off the terminal
unless ``--verbose``, so that line is the last and only one to read.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import CryoTigerError, InputError

COMMANDS = ["interpolate", "simulate", "model", "train", "ctf", "reconstruct", "holdout", "export",
            "parallel"]

# What to lower when a command runs out of memory.
MEMORY_HINTS = {
    "interpolate": "lower --max-memory (GiB) or give a smaller --tile-size (e.g. 256)",
    "holdout": "lower --max-memory (GiB) or give a smaller --tile-size (e.g. 256)",
    "train": "lower --batch-size or --patch-size",
    "reconstruct": "lower --max-memory (GiB) or use --binning 2",
    "ctf": "give a smaller --tile-size",
    "model": "use --config small, or free memory",
}


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """--verbose on every (sub-)command parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_verbose(sub)
    if not any("--verbose" in a.option_strings for a in parser._actions):
        parser.add_argument("--verbose", action="store_true",
                            help="show TensorFlow's own log lines and full tracebacks")


def build_parser() -> argparse.ArgumentParser:
    """The ``cryotiger`` argument parser: ``--version`` and one sub-parser per
    name of ``COMMANDS`` (registered by ``engine/commands/<name>.py``), each with
    ``--verbose``.

    Returns:
      An ``argparse.ArgumentParser``; its parsed namespace has ``command`` and
      the sub-command's ``func``.
    """
    from ..constants import VERSION
    parser = argparse.ArgumentParser(
        prog="cryotiger",
        description="cryoTIGER engine: tilt interpolation (linear, FILM), training, CTF, "
                    "reconstruction and evaluation of cryo-ET tilt series.")
    parser.add_argument("--version", action="version", version=f"cryotiger {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    for name in COMMANDS:
        _add_verbose(sub.choices[name])
    return parser


def needs_tensorflow(args) -> bool:
    """True for the commands (and options) that run FILM, so TensorFlow is
    imported (quietly) before the command starts: ``train``, ``model
    init|info|download``, ``interpolate --method film``, ``holdout`` with a
    ``--method film``.
    """
    if args.command in ("train",):
        return True
    if args.command == "model":
        return getattr(args, "model_command", None) in ("init", "info", "download")
    if args.command == "interpolate":
        return getattr(args, "method", None) == "film"
    if args.command == "holdout":
        return any(d == "method" and v == "film" for d, v in (getattr(args, "method_tokens", None) or []))
    return False


def environment_help() -> str:
    """The hint appended to a TensorFlow import error: run cryotiger in its
    managed environment (naming this one, ``sys.prefix``) and how to rebuild it.
    """
    prefix = sys.prefix
    return (f"run cryotiger in its managed environment (this one is {prefix}) and rebuild it if "
            f"needed: 'scipion3 installb cryotiger' in Scipion, or 'python -m "
            f"cryotiger_scipion.environment --prefix {prefix}' (in a checkout: 'bash scripts/setup.sh')")


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow once, quietly (unless ``verbose``: its C++ and Python
    log lines stay on).

    Returns:
      The ``tensorflow`` module.

    Raises:
      CryoTigerError: (one line, with :func:`environment_help`) when it cannot
        be imported: ImportError, missing shared libraries, version clashes.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except Exception as exc:    # ImportError, missing shared libraries, version clashes
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CryoTigerError(f"TensorFlow cannot be imported ({type(exc).__name__}: {first}); "
                             + environment_help()) from None
    if not verbose:
        import logging
        import warnings
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl)(\..*)?")
    return tf


def out_of_memory_cause(exc: BaseException):
    """The exception in ``exc``'s chain (``__cause__``, ``__context__``) that
    says memory ran out (MemoryError, TensorFlow's ResourceExhaustedError,
    std::bad_alloc, "OOM when allocating"), or None; a full disk, which
    TensorFlow also reports as ResourceExhaustedError, is None.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return None     # TensorFlow reports a full disk as ResourceExhaustedError too
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError" \
                or "bad_alloc" in text or "OOM when allocating" in text:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _NativeStderr:
    """Sends what native libraries write to file descriptor 2 (TensorFlow's
    start-up lines) to an unlinked temporary file; Python's sys.stderr keeps the
    terminal.  ``tail()`` returns the captured lines (shown with tracebacks)."""

    def __init__(self):
        import tempfile
        sys.stderr.flush()
        self.log = tempfile.TemporaryFile(prefix="cryotiger-native-")
        self.saved = os.dup(2)
        self.old_stderr = sys.stderr
        os.dup2(self.log.fileno(), 2)
        sys.stderr = open(os.dup(self.saved), "w", buffering=1, errors="replace")

    def tail(self, n: int = 20) -> str:
        self.log.flush()
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def restore(self) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        sys.stderr.close()
        sys.stderr = self.old_stderr
        self.log.close()


def main(argv=None) -> int:
    """Run ``cryotiger`` with ``argv`` (default: ``sys.argv[1:]``).

    Parses, runs the shared pre-flight checks (engine/inputs.py), imports
    TensorFlow when the command needs it, then the sub-command.  Every error
    ends in one line ``cryotiger SUB: error: ...`` on stderr (see the module
    docstring); TensorFlow's native start-up lines are kept off the terminal
    for the console script unless ``--verbose``.

    Returns:
      The exit code: 0 success, 1 a known problem (CryoTigerError, OSError,
      out of memory, full disk, a failed ``parallel`` task), 2 bad input
      (InputError) or no sub-command, 130 interrupted.

    Raises:
      SystemExit: from argparse (bad options, --help, --version).
      Exception: any other (unexpected) error is re-raised (a traceback), after
        the captured native stderr lines are printed.
    """
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
    verbose = bool(getattr(args, "verbose", False))
    native = None
    if argv is None and not verbose and needs_tensorflow(args):
        native = _NativeStderr()      # the console script only (tests call main(argv) in-process)
    try:
        return _dispatch(args, verbose, native)
    finally:
        if native is not None:
            native.restore()


def _dispatch(args, verbose: bool, native) -> int:
    name = args.command          # 'cryotiger model: error: ...' for every model action (a contract)

    def fail(message: str, code: int) -> int:
        print(f"cryotiger {name}: error: {message}", file=sys.stderr)
        return code

    try:
        from .inputs import preflight
        preflight(args)                  # shared option checks, before any file is read
        if needs_tensorflow(args):
            import_tensorflow(verbose)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"cryotiger {name}: interrupted; no complete output was written", file=sys.stderr)
        return 130
    except BaseException as exc:     # noqa: B902 (every error ends in one line)
        if isinstance(exc, SystemExit):
            raise
        oom = out_of_memory_cause(exc)
        if oom is not None:
            detail = (str(oom).strip().splitlines() or [""])[0][:120]
            code = fail(f"out of memory ({type(oom).__name__}{': ' + detail if detail else ''}); "
                        f"{MEMORY_HINTS.get(args.command, 'free memory')}", 1)
            if needs_tensorflow(args):  # TensorFlow may abort while unwinding after an allocation failure
                sys.stderr.flush()
                sys.stdout.flush()
                os._exit(code)
            return code
        if isinstance(exc, InputError):
            return fail(str(exc), 2)
        if isinstance(exc, CryoTigerError):
            return fail(str(exc), 1)
        from .outputs import os_error_line
        if isinstance(exc, OSError):
            return fail(os_error_line(exc), 1)
        text = str(exc)
        if "No space left on device" in text or "Read-only file system" in text:
            first = text.strip().splitlines()[0][:300]
            what = "no space left on device" if "No space" in text else "read-only file system"
            return fail(f"{what} ({first}); write the output elsewhere", 1)
        if native is not None:
            tail = native.tail()
            if tail:
                print(tail, file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
