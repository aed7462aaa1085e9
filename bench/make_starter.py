#!/usr/bin/env python
"""Train the starter model of ``--fit-minutes`` (issue 12) from ../shared/data,
reproducibly, and optionally ship it.

Training data: simulated tilt series (bench/fit_film.py's simulator) of volumes
made from the 14pf_MT tomogram crop + ribosome maps (the held-out test series
of bench/fit_film.py use 13pf_MT and other seeds), -60..60 degrees every 2
degrees, Poisson dose noise at 1, 1.5 and 3 e/A^2 per tilt in turn.  Network:
the fit configuration (engine/fit.py FIT_CONFIG, ~137k parameters) with the
alignment fixes of ``FilmConfig.aligned()`` (centred fusion upsampling,
symmetric flows, symmetry-averaged inference; issue 10 item 2), which every
fit from the starter keeps.
``cryotiger train`` with triplet spacings 1 and 2 (4- and 8-degree outer gaps:
the scales a fit and a restore see), 64-px patches, Adam lr 1e-3 halved every
1000 steps, ``--minutes`` of wall time.

    nice .venv-engine/bin/python bench/make_starter.py --minutes 10 --workdir /tmp/starter [--install]

``--install`` copies the model to cryotiger_scipion/models/film_starter/ (the
default starting point of --fit-minutes).  Compare starting points with
``bench/fit_film.py --model DIR`` against the default.

``--time-aware`` (issue 13) trains the time-conditioned model shipped as
cryotiger_scipion/models/film_timeaware/ instead: the same network and data,
``cryotiger train --time-aware`` on triplets of tilts 2, 3 and 4 apart (the
target any tilt between them: t = 1/4 ... 3/4), from random weights.  It is
what ``--per-gap K`` and ``--at`` use when no ``--model`` is given, and the
starting point of ``--fit-minutes`` for them.  Score it with
``bench/timeaware_confidence.py --model DIR``.

    nice .venv-engine/bin/python bench/make_starter.py --time-aware --minutes 60 --workdir /tmp/timeaware --install
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--series", type=int, default=6)
    p.add_argument("--workdir", default="/tmp/cryotiger_starter")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-aware", action="store_true",
                   help="train the time-conditioned model (models/film_timeaware) instead")
    p.add_argument("--install", action="store_true",
                   help="copy into the package (models/film_starter, or models/film_timeaware)")
    a = p.parse_args(argv)
    from fit_film import simulate
    from machine import header
    from cryotiger_scipion.engine.fit import FIT_CONFIG, STARTER_DIR, TIMEAWARE_DIR
    print(header("make_starter" + (" --time-aware" if a.time_aware else ""), tensorflow=False), flush=True)
    install_dir = TIMEAWARE_DIR if a.time_aware else STARTER_DIR
    os.makedirs(a.workdir, exist_ok=True)
    doses = (1.0, 1.5, 3.0)
    args = []
    for k in range(a.series):
        *_, stem = simulate(a.workdir, k, doses[k % len(doses)], tomo="14pf_MT", base=1000, prefix="train")
        args += ["--input", stem + ".mrc", "--angles", stem + ".tlt"]
    cfg = os.path.join(a.workdir, "fit_config.json")
    from cryotiger_scipion.engine.film.config import FilmConfig
    # The aligned network (issue 10 item 2): a fit from the starter keeps the
    # starter's configuration, so the starter must carry the alignment fixes.
    with open(cfg, "w") as f:
        json.dump(FilmConfig.from_json(FIT_CONFIG).aligned().to_json(), f)
    model = os.path.join(a.workdir, os.path.basename(install_dir))
    exe = os.path.join(os.path.dirname(sys.executable), "cryotiger")
    cmd = [exe, "train", *args, "--output", model, "--config", cfg, "--minutes", str(a.minutes),
           "--steps", "1000000", "--spacing", "2,3,4" if a.time_aware else "1,2", "--patch-size", "64", "--patch-stride", "32",
           "--batch-size", "8", "--lr", "1e-3", "--decay-steps", "1000", "--decay-rate", "0.5",
           "--val-fraction", "0.17", "--val-every", "500", "--checkpoint-every", "500",
           "--log-every", "100", "--threads", str(a.threads), "--seed", "0", "--restart", "--quiet"]
    if a.time_aware:
        cmd.append("--time-aware")
    subprocess.run(cmd, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    with open(os.path.join(model, "cryotiger_train.json")) as f:
        info = json.load(f)
    print(f"{'time-aware' if a.time_aware else 'starter'} model {model}: {info['step']} steps in "
          f"{info.get('seconds', 0) / 60:.1f} min, validation {info.get('validation')}")
    if a.install:
        if os.path.exists(install_dir):
            shutil.rmtree(install_dir)
        shutil.copytree(model, install_dir, ignore=shutil.ignore_patterns("assets"))
        print(f"installed as {install_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
