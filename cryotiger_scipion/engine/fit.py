"""Fit FILM to one tilt series before interpolating it (``cryotiger interpolate
--method film --fit-minutes M``): self-supervised training on the series' own
acquired tilts.

What is trained on: the views the interpolation itself will use as inputs
(the plan's real, not excluded tilts: in ``add`` mode every usable view, in
``restore`` mode only the KEPT ones, never a tilt that will be synthesised and
scored).  Sorted by angle, each run of three of them is a triplet: the outer
two (two apart in that list) are the network inputs, the one between them the
target (``train.data.select_triplets`` with spacing 1 on the used views).  The
network thus learns, at twice the angular gap, the very task it then does
between neighbours.  Every 10th triplet is held out for validation
(train/data.py, single-series split).

Starting point: ``init`` (any FILM SavedModel folder: published, trained,
fitted earlier; its configuration is kept), else the model shipped in the
package when present: the time-aware one (``TIMEAWARE_DIR``) when the plan
needs tilts away from the midpoints of their gaps (``--per-gap`` other than 1,
3 or 7, ``--at``, restore over uneven steps), else the midpoint-only starter
(``STARTER_DIR``); else random weights of ``FIT_CONFIG`` (a small FILM, ~137k
parameters, that trains in minutes on a CPU; time-conditioned when needed).
The fitted model is a SavedModel folder reusable with ``--model``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

from ..constants import SHIPPED_MODELS_DIR, STARTER_MODEL, TIMEAWARE_MODEL
from . import InputError

#: The FILM configuration fitted from scratch (about 137k parameters): 4 pyramid
#: levels, 16 base filters (see docs/training.md).
FIT_CONFIG = {"pyramid_levels": 4, "fusion_pyramid_levels": 3, "specialized_levels": 1,
              "sub_levels": 2, "flow_convs": [2, 2], "flow_filters": [16, 32], "filters": 16}
#: Starter model shipped with the package (used when present and no --model is given).
STARTER_DIR = os.path.join(SHIPPED_MODELS_DIR, STARTER_MODEL)
#: Time-aware model shipped with the package (issue 13; bench/make_starter.py
#: --time-aware): the starting point of a fit whose plan needs tilts away from
#: the midpoints, and the model of ``--per-gap K`` / ``--at`` when no --model is given.
TIMEAWARE_DIR = os.path.join(SHIPPED_MODELS_DIR, TIMEAWARE_MODEL)
FIT_RECORD = "cryotiger_fit.json"


@dataclass
class FitOptions:
    """Options of ``--fit-minutes``: the wall-clock budget in minutes (database,
    training and export together), patch size and stride in pixels, and the
    training settings (batch, Adam learning rate with staircase decay, seed,
    CPU threads, a step limit that the time budget reaches first).  See
    ``train.trainer.TrainConfig`` for their meaning."""
    minutes: float = 5.0                # wall-clock budget (database + training + export)
    patch_size: int = 64                # pixels (reduced to fit small images)
    patch_stride: int = 32              # overlapping patches: more samples per triplet
    batch_size: int = 8
    learning_rate: float = 1e-3
    decay_steps: int = 1000
    decay_rate: float = 0.5
    seed: int = 0
    threads: int = 0
    max_steps: int = 1_000_000          # the time budget stops first


def fitted_model_path(output: str) -> str:
    """Where the fitted model of ``output`` (OUT.mrc) is kept: OUT_fitted_film/."""
    stem, _ = os.path.splitext(os.path.abspath(output))
    return stem + "_fitted_film"


def training_views(plan) -> List[int]:
    """0-based input indices the fit may use: the plan's real, not excluded tilts
    (restore mode: the kept ones only)."""
    return sorted(o.input_index for o in plan if not o.synthetic and not o.excluded)


def shipped(folder: str) -> bool:
    """True when ``folder`` (``STARTER_DIR``, ``TIMEAWARE_DIR``) holds a SavedModel."""
    return os.path.isfile(os.path.join(folder, "saved_model.pb"))


def starting_point(init: Optional[str], time_aware: bool = False):
    """(init folder or None, FilmConfig, description) for a fit: ``init`` (a FILM
    SavedModel folder, its configuration read or inferred from its variables),
    else the shipped time-aware model (``time_aware``: the plan needs tilts away
    from the midpoints) or starter model, else random weights of ``FIT_CONFIG``
    (time-conditioned when ``time_aware``).

    Raises:
        InputError: when ``init`` holds no loadable FILM model
            (``film.savedmodel.find_saved_model_dir`` / ``load_network``) or an
            invalid cryotiger_film.json.
    """
    from .film.config import FilmConfig
    from .film.savedmodel import find_saved_model_dir, read_config
    if init:
        folder = find_saved_model_dir(init)
        cfg = read_config(folder)
        if cfg is None:   # a published/foreign model: its variables tell the configuration
            from .film.savedmodel import load_network
            net, info = load_network(folder)
            cfg = info["config"]
            del net
        return folder, cfg, f"model {init}"
    if time_aware:
        if shipped(TIMEAWARE_DIR):
            return TIMEAWARE_DIR, read_config(TIMEAWARE_DIR), "the time-aware model shipped with the plugin"
        cfg = FilmConfig.from_json(FIT_CONFIG).aligned().time_aware()
        return None, cfg, "random weights (small time-aware FILM, no time-aware model shipped)"
    if shipped(STARTER_DIR):
        return STARTER_DIR, read_config(STARTER_DIR) or FilmConfig.from_json(FIT_CONFIG), \
            "the starter model shipped with the plugin"
    return None, FilmConfig.from_json(FIT_CONFIG), "random weights (small FILM, no starter model shipped)"


def fit_series(stack: str, angles: Sequence[float], plan, output_model: str, init: Optional[str] = None,
               options: Optional[FitOptions] = None, xf: str = "", progress: bool = True,
               log=print) -> dict:
    """Fit FILM to one tilt series (see the module doc) and export it to ``output_model``.

    ``stack``: aligned tilt series (n, y, x) on disk; ``angles``: n tilt angles in
    degrees (stack order); ``plan``: the interpolation plan (``plan.make_plan``)
    whose real, not excluded tilts are trained on; ``xf``: IMOD .xf applied first.
    Returns a summary dict: model, init, config, views, triplets, patches, steps,
    seconds, validation (PSNR/SSIM/L1 of FILM and linear on held-out triplets,
    normalised units), stopped.  The fit record ``cryotiger_fit.json`` is
    written into ``output_model``.

    Raises:
        InputError: when ``options.minutes`` is not positive, the starting model
            cannot be loaded (``starting_point``), the series gives fewer than 2
            triplets (too few usable views), the images are smaller than the
            network's size multiple, the stack or .xf cannot be read, or as
            ``train.data.build_database`` and ``train.trainer.Trainer``.
        CryoTigerError: when the training diverges (``Trainer.run``).
    """
    from .formats.mrc import open_stack
    from .train.data import DatabaseParams, SeriesSpec, build_database, select_triplets
    from .train.film_api import size_multiple
    from .train.trainer import TrainConfig, Trainer

    opt = options or FitOptions()
    if not opt.minutes or opt.minutes <= 0:
        raise InputError(f"--fit-minutes {opt.minutes}: give a positive number of minutes")
    t0 = time.monotonic()
    n = len(angles)
    views = training_views(plan)
    exclude = sorted(set(range(n)) - set(views))
    from .interpolate import needs_time_aware
    init_dir, cfg, init_text = starting_point(init, time_aware=needs_time_aware(plan))
    # A time-aware starting model (issue 13) keeps learning t: triplets at any
    # fraction from tilts 2 and 3 apart; midpoint-only models: neighbours.
    time_aware = bool(cfg.time_conditioning)
    spacings = (2, 3) if time_aware else (1,)
    triplets = select_triplets(angles, exclude, spacings, time_aware=time_aware)
    if len(triplets) < 2:
        raise InputError(f"{len(views)} usable tilts to fit on ({len(triplets)} triplets); fitting "
                         "needs at least 4 (use more tilts, or leave --fit-minutes out)")
    mult = size_multiple(cfg)
    with open_stack(stack) as m:
        ny, nx = m.data.shape[-2:]
    patch = min(opt.patch_size, min(ny, nx) // mult * mult)
    if patch < mult:
        raise InputError(f"images of {nx}x{ny} pixels are smaller than the {mult} pixels the FILM "
                         "network needs for fitting; leave --fit-minutes out")
    parent = os.path.dirname(os.path.abspath(output_model))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix="." + os.path.basename(output_model) + ".work-", suffix=".work",
                            dir=parent)     # a name engine.outputs cleans after a kill
    try:
        cfg_path = os.path.join(work, "film_config.json")
        cfg.save(cfg_path)
        spec = SeriesSpec(stack=stack, angle_values=list(map(float, angles)), exclude=exclude, xf=xf or "")
        params = DatabaseParams(patch_size=patch, patch_stride=min(opt.patch_stride, patch) or patch,
                                spacings=spacings, seed=opt.seed, val_fraction=0.2, shards=1,
                                time_aware=time_aware)
        man = build_database([spec], os.path.join(work, "database"), params, progress=False)
        log(f"fit: {len(views)} tilts used ({len(exclude)} left out: excluded or to be restored), "
            f"{len(triplets)} triplets, {man['counts']['train']} training / "
            f"{man['counts'].get('val', 0)} validation patches of {patch} px; starting from {init_text}")
        left = opt.minutes - (time.monotonic() - t0) / 60.0
        tc = TrainConfig(steps=opt.max_steps, minutes=max(0.05, left), batch_size=opt.batch_size,
                         learning_rate=opt.learning_rate, decay_steps=opt.decay_steps,
                         decay_rate=opt.decay_rate, checkpoint_every=0, val_every=0,
                         val_batches=16, log_every=50, seed=opt.seed, augment=True)
        tr = Trainer(os.path.join(work, "database"), os.path.join(work, "train"), cfg, tc,
                     init=init_dir, progress=progress, threads=opt.threads)
        summary = tr.run()
        tr.export(output_model, summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    val = summary.get("validation") or {}
    result = {"model": os.path.abspath(output_model), "init": init_dir or "", "init_text": init_text,
              "config": tr.film_config.to_json(), "parameters": int(tr.net.count_params()),
              "views": views, "left_out": exclude, "triplets": len(triplets),
              "patches": man["counts"], "patch_size": patch, "steps": summary["step"],
              "seconds": time.monotonic() - t0, "minutes": opt.minutes, "stopped": summary["stopped"],
              "validation": {k: float(v) for k, v in val.items()}, "options": asdict(opt)}
    with open(os.path.join(output_model, FIT_RECORD), "w") as f:
        json.dump({**result, "stack": os.path.abspath(stack)}, f, indent=1)
    return result


def describe_fit(res: dict) -> str:
    """One summary line of a fit: what, from what, how long, validation loss."""
    val = res.get("validation") or {}
    vtxt = (f"validation L1 {val['l1']:.4f}, PSNR {val['psnr']:.2f} dB (linear {val['linear_psnr']:.2f} dB) "
            f"on {int(val.get('patches', 0))} held-out patches" if val else "no validation patches")
    return (f"fitted FILM ({res['parameters']:,} parameters) on {len(res['views'])} tilts of this series "
            f"({res['triplets']} triplets, tilts two apart predict the one between) from "
            f"{res['init_text']}, {res['steps']} steps in {res['seconds'] / 60:.1f} min "
            f"(budget {res['minutes']:g} min); {vtxt}; model kept in {res['model']} (reuse with --model)")
