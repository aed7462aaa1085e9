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
# The TensorFlow releases the engine is tested with (2.15 ... 2.21; Keras 3 from 2.16).
TF_RANGE = ">=2.15,<2.22"
TF_CPU = "tensorflow-cpu" + TF_RANGE
TF_GPU = "tensorflow[and-cuda]" + TF_RANGE


def is_source_tree(root: str = PACKAGE_ROOT) -> bool:
    """True when the plugin runs from a source checkout (setup.py beside the
    package), False for an installed wheel (site-packages)."""
    return os.path.exists(os.path.join(root, "setup.py"))


def install_engine_files(prefix: str) -> None:
    """Put this installed package (its own files: the engine and the
    constants, the Scipion layer stays inert without Scipion) into the venv at
    ``prefix`` and write its ``bin/cryotiger``.  For installs from a wheel:
    nothing is fetched, the engine is exactly the plugin's version."""
    import shutil
    py = os.path.join(prefix, "bin", "python")
    purelib = subprocess.check_output(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    target = os.path.join(purelib, "cryotiger_scipion")
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(os.path.join(PACKAGE_ROOT, "cryotiger_scipion"), tmp,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    script = os.path.join(prefix, "bin", "cryotiger")
    with open(script + ".tmp", "w") as f:
        f.write("#!%s\nimport sys\nfrom cryotiger_scipion.engine.cli import main\n"
                "sys.exit(main())\n" % py)
    os.chmod(script + ".tmp", 0o755)
    os.replace(script + ".tmp", script)


def install_commands(prefix: str, gpu: bool = False, python: str = None, editable: bool = True,
                     extra=()) -> list:
    """Shell commands that create the venv at ``prefix`` and fill it: the
    engine's requirements with TensorFlow in the tested range (:data:`TF_RANGE`)
    from PyPI, then the engine from this plugin's own files: ``pip install
    [-e] <checkout>`` from a source tree, else a copy of the installed package
    (:func:`install_engine_files`; nothing is fetched for the plugin itself)."""
    python = python or sys.executable
    pip = os.path.join(prefix, "bin", "pip")
    tf = TF_GPU if gpu else TF_CPU
    pkgs = " ".join(shlex.quote(p) for p in ENGINE_PACKAGES + [tf] + list(extra))
    if is_source_tree():
        own = f"{pip} install -qq --no-deps {'-e ' if editable else ''}{shlex.quote(PACKAGE_ROOT)}"
    else:
        own = (f"{shlex.quote(sys.executable)} -m cryotiger_scipion.environment "
               f"--engine-files-only --prefix {shlex.quote(prefix)}")
    return [
        # (re)uses an existing venv: installs are idempotent
        f"test -x {shlex.quote(os.path.join(prefix, 'bin', 'python'))} || "
        f"{shlex.quote(python)} -m venv {shlex.quote(prefix)}",
        f"{pip} install -qq --upgrade pip",
        f"{pip} install -qq {pkgs}",
        own,
    ]


def main(argv=None) -> int:
    """``python -m cryotiger_scipion.environment --prefix DIR [--gpu]``: make the
    managed environment at DIR (a venv with TensorFlow, CUDA build with
    ``--gpu``, and this package's engine), printing each command; with
    ``--engine-files-only``, only copy the engine into an existing one.  Returns
    0; a failing install command raises ``subprocess.CalledProcessError``."""
    p = argparse.ArgumentParser(description="Create the cryoTIGER managed environment (a venv "
                                            "with TensorFlow and the cryotiger engine).")
    p.add_argument("--prefix", required=True, help="folder of the new environment")
    p.add_argument("--gpu", action="store_true", help="CUDA build of TensorFlow (tensorflow[and-cuda])")
    p.add_argument("--python", default=sys.executable, help="python used to create the venv")
    p.add_argument("--extra", action="append", default=[], help="more pip packages (e.g. pytest)")
    p.add_argument("--engine-files-only", action="store_true",
                   help="only copy this installed package into the existing environment "
                        "(what a wheel install's defineBinaries runs last)")
    args = p.parse_args(argv)
    if args.engine_files_only:
        install_engine_files(os.path.abspath(args.prefix))
        print("engine files of %s installed into %s" % (PACKAGE_ROOT, args.prefix))
        return 0
    for cmd in install_commands(os.path.abspath(args.prefix), gpu=args.gpu, python=args.python,
                                extra=args.extra):
        print("+", cmd, flush=True)
        subprocess.check_call(cmd, shell=True)
    print(f"managed environment ready: activate with 'source {os.path.abspath(args.prefix)}/bin/activate'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
