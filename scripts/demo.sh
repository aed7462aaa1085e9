#!/usr/bin/env bash
# Set up (if needed) and run the demo: simulate a tilt series from a real
# volume (../shared/data/cylindra_mt/14pf_MT.tif), build a headless Scipion
# project from templates/cryotiger_full_chain_builtin.json.template (import ->
# interpolate -> CTF -> 3D-CTF reconstruction, built-in back ends), run it and
# print a summary.  Everything goes to demo-output/.
# Extra arguments go to scripts/demo.py (e.g. --per-gap 3 --defocus 40000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
# A private Scipion user-data folder for the demo project, under demo-output/.
export SCIPION_USER_DATA="$ROOT/demo-output/scipion-user-data"
mkdir -p "$SCIPION_USER_DATA"
exec .venv/bin/python scripts/demo.py "$@"
