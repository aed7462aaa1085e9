#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite:
#   engine tests in the managed environment (.venv-engine, TensorFlow),
#   Scipion tests in a real headless project (.venv, Python 3.10).
# Extra arguments go to both pytest runs (e.g. -k linear, -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
status=0
echo "=== engine tests (managed environment) ==="
.venv-engine/bin/python -m pytest tests/engine -q -p no:cacheprovider "$@" || status=$?
echo "=== Scipion tests (headless project) ==="
.venv/bin/python -m pytest tests/scipion -q -p no:cacheprovider "$@" || status=$?
exit $status
