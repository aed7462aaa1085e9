"""Make the managed environment: a venv with TensorFlow and this package's engine.

Used by the Plugin's ``defineBinaries`` (scipion installp / installb) and on
its own, without scipion-app:

    python -m cryotiger_scipion.environment --prefix /path/to/cryotiger-env [--gpu]

Imports neither Scipion nor TensorFlow.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENGINE_PACKAGES = ["numpy>=1.23", "scipy>=1.10", "mrcfile>=1.4", "tifffile", "matplotlib",
                   "starfile>=0.5"]
TF_CPU = "tensorflow-cpu>=2.15"
TF_GPU = "tensorflow[and-cuda]>=2.15"


def install_commands(prefix: str, gpu: bool = False, python: str = None, editable: bool = True,
                     extra=()) -> list:
    """Shell commands that create the venv at ``prefix`` and fill it."""
    python = python or sys.executable
    pip = os.path.join(prefix, "bin", "pip")
    tf = TF_GPU if gpu else TF_CPU
    pkgs = " ".join(shlex.quote(p) for p in ENGINE_PACKAGES + [tf] + list(extra))
    src = PACKAGE_ROOT if os.path.exists(os.path.join(PACKAGE_ROOT, "setup.py")) else "scipion-em-cryotiger"
    own = f"{pip} install -qq --no-deps {'-e ' if editable and src == PACKAGE_ROOT else ''}{shlex.quote(src)}"
    return [
        # (re)uses an existing venv: installs are idempotent
        f"test -x {shlex.quote(os.path.join(prefix, 'bin', 'python'))} || "
        f"{shlex.quote(python)} -m venv {shlex.quote(prefix)}",
        f"{pip} install -qq --upgrade pip",
        f"{pip} install -qq {pkgs}",
        own,
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Create the cryoTIGER managed environment (a venv "
                                            "with TensorFlow and the cryotiger engine).")
    p.add_argument("--prefix", required=True, help="folder of the new environment")
    p.add_argument("--gpu", action="store_true", help="CUDA build of TensorFlow (tensorflow[and-cuda])")
    p.add_argument("--python", default=sys.executable, help="python used to create the venv")
    p.add_argument("--extra", action="append", default=[], help="more pip packages (e.g. pytest)")
    args = p.parse_args(argv)
    for cmd in install_commands(os.path.abspath(args.prefix), gpu=args.gpu, python=args.python,
                                extra=args.extra):
        print("+", cmd, flush=True)
        subprocess.check_call(cmd, shell=True)
    print(f"managed environment ready: activate with 'source {os.path.abspath(args.prefix)}/bin/activate'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
