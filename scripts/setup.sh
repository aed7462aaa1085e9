#!/usr/bin/env bash
# Set up everything in this checkout (idempotent):
#   .venv         Python 3.10 with Scipion (pyworkflow, pwem, tomo) and this plugin (editable)
#   .venv-engine  the managed environment: TensorFlow (CPU; --gpu for CUDA) + the engine
#   .scipion      a private SCIPION_HOME (hosts.conf) for headless projects
# Usage: bash scripts/setup.sh [--gpu]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GPU=""
[[ "${1:-}" == "--gpu" ]] && GPU="--gpu"

find_python310() {
  for c in "${CRYOTIGER_PYTHON:-}" python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10; do
    [[ -n "$c" ]] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
PY="$(find_python310)" || {
  echo "setup: Python 3.10 not found. Install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv')," >&2
  echo "       or point CRYOTIGER_PYTHON at a python3.10. (Scipion's tomo import hangs on 3.11+, see README.)" >&2
  exit 1
}

STAMP_SRC="$(cat setup.py cryotiger_scipion/environment.py | sha1sum | cut -c1-12)"
if [[ ! -f .venv/.cryotiger-stamp || "$(cat .venv/.cryotiger-stamp)" != "$STAMP_SRC" ]]; then
  echo "setup: installing .venv (Scipion side) with $PY"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  .venv/bin/pip install -qq --upgrade pip
  .venv/bin/pip install -qq -e ".[test]"
  echo "$STAMP_SRC" > .venv/.cryotiger-stamp
fi
if [[ ! -f .venv-engine/.cryotiger-stamp || "$(cat .venv-engine/.cryotiger-stamp)" != "$STAMP_SRC$GPU" ]]; then
  echo "setup: installing .venv-engine (managed environment: TensorFlow + engine)"
  .venv/bin/python -m cryotiger_scipion.environment --prefix .venv-engine --python "$PY" $GPU \
      --extra pytest --extra scikit-image --extra astra-toolbox  # astra: bench/reconstruct.py
  echo "$STAMP_SRC$GPU" > .venv-engine/.cryotiger-stamp
fi

# Xvfb: the Scipion tests open the viewers in real Tk windows (tests/scipion/common.py
# ensureDisplay starts a private Xvfb when there is no DISPLAY). Install it where we can.
if ! command -v Xvfb >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Xvfb (Debian package xvfb) for the viewer tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null 2>&1 || \
      echo "setup: could not install xvfb; the viewer tests will be skipped (they say why)" >&2
  else
    echo "setup: Xvfb not found; install the package xvfb to run the viewer tests" >&2
  fi
fi

# Private Scipion home for headless projects (tests, demo).
mkdir -p .scipion/config .scipion/data .scipion/tests
if [[ ! -f .scipion/config/hosts.conf ]]; then
  .venv/bin/python -c "from pyworkflow.protocol import HostConfig; HostConfig.writeBasic('.scipion/config/hosts.conf')"
fi
echo "setup: done (Scipion side: .venv, managed environment: .venv-engine, SCIPION_HOME: .scipion)"
