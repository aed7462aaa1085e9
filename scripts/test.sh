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
# A single-node SLURM cluster for tests/scipion/test_slurm_queue.py (issue 14):
# started when possible (SLURM installed, or root with apt-get: it installs
# slurm-wlm and munge), stopped at the end if started here. Without it those
# tests skip and say why. CRYOTIGER_SLURM=0 leaves it out.
if [[ "${CRYOTIGER_SLURM:-1}" != 0 ]] && ! bash scripts/slurm_local.sh status >/dev/null 2>&1; then
  if slurm_out="$(bash scripts/slurm_local.sh start 2>&1)"; then
    trap 'bash scripts/slurm_local.sh stop >/dev/null 2>&1' EXIT
    echo "$slurm_out"
  else
    echo "test.sh: no local SLURM cluster, the queue tests will skip: ${slurm_out##*$'\n'}"
  fi
fi
echo "=== Scipion tests (headless project) ==="
.venv/bin/python -m pytest tests/scipion -q -p no:cacheprovider "$@" || status=$?
exit $status
