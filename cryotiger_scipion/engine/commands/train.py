"""``cryotiger train``: train or fine-tune FILM on aligned tilt series.

Contract (kept stable, used by checks outside the repository):
  cryotiger train --input TS.mrc --angles TS.tlt [--input TS2.mrc --angles TS2.tlt ...]
      --output MODEL_DIR --config small|published [--steps N] [--minutes M]
      [--init MODEL_DIR] [--spacing S] [--time-aware]
(--time-aware: a time-conditioned model trained on triplets at any fraction t;
'cryotiger model info MODEL_DIR' then prints 'time-aware: yes'; --config left
out: the --init model's configuration, else small)
MODEL_DIR is a SavedModel that ``cryotiger interpolate --method film --model MODEL_DIR``
accepts.  Running the same command again resumes from the last checkpoint in
the work folder (default MODEL_DIR.work).
"""
from __future__ import annotations

import os
import shutil
import time

from . import add_output, add_quiet


def register(subparsers):
    """Add the ``cryotiger train`` sub-parser to ``subparsers`` (an argparse
    sub-parsers action; options: ``cryotiger train --help``, the contract in
    this module's docstring) with ``func`` set to :func:`run`.
    """
    p = subparsers.add_parser(
        "train", help="train or fine-tune FILM on aligned tilt series",
        description="Train (or fine-tune with --init) a FILM network on triplets of ALIGNED tilt "
                    "series (tilts i-s, i, i+s: the outer two in, the middle one the target) and "
                    "export a SavedModel for 'cryotiger interpolate --method film --model DIR'. "
                    "Re-running the same command resumes from the last checkpoint. "
                    "Self-supervised: train on the series to be interpolated with --spacing 2, "
                    "then interpolate between neighbours.")
    p.add_argument("--input", action="append", required=True,
                   help="aligned tilt-series stack (.mrc/.st/.ali); repeat for more series")
    p.add_argument("--angles", action="append", default=[],
                   help="tilt angles of the preceding --input (.tlt), one per --input, same order")
    p.add_argument("--exclude", action="append", default=None,
                   help="views to exclude per --input, numbered from 1 ('1,40-41'; '' for none); "
                        "give it once per --input or not at all")
    p.add_argument("--xf", action="append", default=None,
                   help="IMOD .xf transforms per --input (applied first, for unaligned stacks; "
                        "'' for an aligned one); once per --input or not at all")
    add_output(p, "model folder to write (SavedModel)")
    p.add_argument("--config", default=None,
                   help="FILM configuration: small, published, or a FilmConfig .json (default: the "
                        "--init model's configuration, else small)")
    p.add_argument("--steps", type=int, default=2000, help="total training steps (default 2000)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="wall-clock budget of this run in minutes: stops, checkpoints and exports on time")
    p.add_argument("--init", default=None,
                   help="FILM SavedModel folder to start from (fine-tuning; same configuration)")
    p.add_argument("--spacing", default="1",
                   help="triplet spacing(s): 1 = neighbours, 2 = two tilts apart; list allowed ('1,2')")
    p.add_argument("--time-aware", action="store_true",
                   help="train a time-conditioned model (issue 13) on triplets at any fraction t "
                        "from non-adjacent tilts (spacing default 2,3,4: t = 1/4, 1/3, 1/2, ...); "
                        "the model then synthesises at any angle (interpolate --per-gap K, --at)")
    p.add_argument("--self-supervised", action="store_true",
                   help="train on the series to be interpolated: spacing 2 (pairs two tilts apart "
                        "predict the middle one), then interpolate neighbours with the model")
    d = p.add_argument_group("data")
    d.add_argument("--patch-size", type=int, default=256, help="patch size in pixels (default 256)")
    d.add_argument("--patch-stride", type=int, default=0, help="patch grid stride (default: patch size)")
    d.add_argument("--max-patches", type=int, default=0,
                   help="at most this many patches per triplet, chosen at random (default all)")
    d.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of tilt series held out for validation (default 0.2)")
    d.add_argument("--shards", type=int, default=4, help="TFRecord shards (default 4)")
    d.add_argument("--workdir", default=None,
                   help="work folder: database and checkpoints (default MODEL_DIR.work)")
    d.add_argument("--database", default=None, help="existing training database folder to use")
    t = p.add_argument_group("training")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-4, help="initial learning rate (default 1e-4)")
    t.add_argument("--decay-steps", type=int, default=750000, help="staircase decay period (steps)")
    t.add_argument("--decay-rate", type=float, default=0.464158)
    t.add_argument("--crop", type=int, default=0, help="random crop size in pixels (default: whole patch)")
    t.add_argument("--no-augment", action="store_true", help="no rotations/flips/swaps")
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--val-batches", type=int, default=8)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--vgg-weights", default="",
                   help="VGG-19 weights (.h5 without top, or a .keras network with layers "
                        "block1_conv2..block5_conv2): enables the perceptual loss")
    t.add_argument("--vgg-weight", type=float, default=1.0)
    t.add_argument("--style-weight", type=float, default=0.0, help="Gram (style) loss weight (FILM: 40)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="CPU threads for TensorFlow (0 = all)")
    t.add_argument("--restart", action="store_true", help="discard checkpoints in the work folder")
    t.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    t.add_argument("--gpu-ids", default=None, help="GPU ids to use, e.g. '0' (one GPU is used)")
    add_quiet(p)
    p.set_defaults(func=run)


def parse_spacings(text) -> tuple:
    """Parse --spacing ('1', '2' or '1,2'): triplet spacings in tilts.

    Raises:
      InputError: for non-integers, an empty list or a spacing < 1.
    """
    from .. import InputError
    try:
        out = tuple(int(s) for s in str(text).replace(" ", "").split(",") if s)
    except ValueError:
        raise InputError(f"--spacing '{text}': give whole numbers, e.g. 1, 2 or '1,2'") from None
    if not out or min(out) < 1:
        raise InputError(f"--spacing '{text}': give 1 or more (1 = neighbours, 2 = two tilts apart)")
    return out


def series_from_args(args) -> list:
    """One ``train.data.SeriesSpec`` per --input, with its --angles, --exclude
    (0-based views) and --xf.

    Raises:
      InputError: when --angles, --exclude or --xf are not given once per
        --input (--exclude and --xf may be left out), or for a bad --exclude.
    """
    from .. import InputError
    from ..interpolate import parse_view_list
    from ..train.data import SeriesSpec
    if len(args.angles) != len(args.input):
        raise InputError(f"{len(args.input)} --input but {len(args.angles)} --angles; give one "
                         "--angles TS.tlt after each --input TS.mrc")
    excl = args.exclude or [""] * len(args.input)
    if len(excl) != len(args.input):
        raise InputError(f"{len(excl)} --exclude for {len(args.input)} --input; give one per input "
                         "('' for none) or none at all")
    xfs = args.xf or [""] * len(args.input)
    if len(xfs) != len(args.input):
        raise InputError(f"{len(xfs)} --xf for {len(args.input)} --input; give one per input "
                         "('' for an aligned one) or none at all")
    return [SeriesSpec(stack=s, angles=a, exclude=parse_view_list(e), xf=x)
            for s, a, e, x in zip(args.input, args.angles, excl, xfs)]


def output_set(args):
    """What ``train`` writes (the model folder, replaced; its work folder with
    the database and checkpoints) and reads (stacks, angles, .xf, --init model,
    --database, --config file, --vgg-weights)."""
    from ..outputs import OutputSet
    out = os.path.abspath(args.output)
    workdir = os.path.abspath(args.workdir or out.rstrip("/") + ".work")
    inputs = [(p, "--input") for p in args.input] + [(p, "--angles") for p in args.angles]
    inputs += [(p, "--xf") for p in (args.xf or []) if p]
    if str(args.config).endswith(".json"):
        inputs.append((args.config, "--config"))
    inputs.append((args.vgg_weights or None, "--vgg-weights"))
    folders = [(out, "--output", "replace"), (workdir, "--workdir", "create"),
               (os.path.join(workdir, "checkpoints"), "the checkpoints in --workdir",
                "replace" if args.restart else "scratch")]
    if not args.database:
        folders.append((os.path.join(workdir, "database"), "the training database in --workdir",
                        "replace"))
    return OutputSet("train", inputs=inputs, folders=folders,
                     input_folders=[(args.init, "--init"), (args.database, "--database")])


def run(args) -> int:
    """Run ``cryotiger train``: build (or reuse) the training database of the
    --input series and train or fine-tune FILM, exporting the SavedModel
    ``args.output`` (resumes from the work folder's last checkpoint).

    Returns:
      0 (success).

    Raises:
      InputError: for bad spacings, inputs or --config, an --init model of
        the other kind (time-aware or not), a missing stack, an unusable
        --output folder, or a negative --minutes.
      CryoTigerError: TensorFlow or model problems (engine/train/).
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    with output_set(args):     # checks, locks: before any work
        return _run(args)


def training_config_of(args):
    """What ``--config`` means: as given, else (left out) the configuration of
    the --init model (read from its cryotiger_film.json, or inferred from the
    variables of a published model: ``fit.starting_point``), else 'small'.

    Raises:
      InputError: when --init holds no loadable FILM model.
    """
    if args.config is not None:
        return args.config
    if args.init:
        from ..fit import starting_point
        return starting_point(args.init)[1]
    return "small"


def _run(args) -> int:
    from .. import InputError
    from ..train.data import DatabaseParams, build_database
    from ..train.trainer import TrainConfig, train

    t0 = time.monotonic()
    from ..film.inference import configure_devices
    if args.threads:
        from ..train.trainer import _set_threads
        _set_threads(args.threads)      # before TensorFlow starts
    gpu_ids = ",".join(str(args.gpu_ids).replace(",", " ").split()) if args.gpu_ids else None
    configure_devices(args.device, gpu_ids)       # '0 1' (Scipion's %(GPU)s) or '0,1'
    spacings = (2,) if args.self_supervised and str(args.spacing) == "1" else parse_spacings(args.spacing)
    time_aware = bool(getattr(args, "time_aware", False))
    if time_aware and str(args.spacing) == "1":
        spacings = (2, 3, 4)
    series = series_from_args(args)
    from ..train.film_api import resolve_config
    film_config = resolve_config(training_config_of(args))      # a bad --config fails before any work
    if time_aware:
        from dataclasses import replace
        film_config = replace(film_config, time_conditioning=True)
    if args.init:
        from ..film.savedmodel import find_saved_model_dir, read_config
        theirs = read_config(find_saved_model_dir(args.init))
        theirs_aware = bool(theirs is not None and theirs.time_conditioning)
        if theirs_aware != time_aware:
            raise InputError(f"--init {args.init} is a {'time-aware' if theirs_aware else 'midpoint-only'} "
                             f"model but this training is {'' if time_aware else 'not '}--time-aware; "
                             "fine-tune a model of the same kind, or train from scratch")
    for sp in series:
        if not os.path.exists(sp.stack):
            raise InputError(f"{sp.stack}: input stack not found")
    out = os.path.abspath(args.output)
    from ..film.savedmodel import check_export_folder
    check_export_folder(out, create_parent=False)   # before the database and the training, not after
    workdir = os.path.abspath(args.workdir or out.rstrip("/") + ".work")
    if args.restart and os.path.isdir(os.path.join(workdir, "checkpoints")):
        shutil.rmtree(os.path.join(workdir, "checkpoints"))
    if args.minutes < 0:
        raise InputError(f"--minutes {args.minutes}: give a positive budget (or leave it out)")
    if args.database:
        database = args.database
    else:
        database = os.path.join(workdir, "database")
        params = DatabaseParams(patch_size=args.patch_size, patch_stride=args.patch_stride,
                                spacings=spacings, seed=args.seed, val_fraction=args.val_fraction,
                                shards=args.shards, max_patches_per_triplet=args.max_patches,
                                time_aware=time_aware)
        man = build_database(series, database, params, progress=not args.quiet)
        if not args.quiet:
            print(f"training database {database}: {man['counts']['train']} training, "
                  f"{man['counts'].get('val', 0)} validation patches "
                  f"(validation split: {man['validation_split']})", flush=True)
    minutes = args.minutes
    if minutes:   # the budget counts from the start of the command (database included)
        minutes = max(1e-3, minutes - (time.monotonic() - t0) / 60.0)
    cfg = TrainConfig(steps=args.steps, minutes=minutes, batch_size=args.batch_size,
                      learning_rate=args.lr, decay_steps=args.decay_steps, decay_rate=args.decay_rate,
                      checkpoint_every=args.checkpoint_every, val_every=args.val_every,
                      val_batches=args.val_batches, log_every=args.log_every, seed=args.seed,
                      crop=args.crop, augment=not args.no_augment, vgg_weights=args.vgg_weights,
                      vgg_weight=args.vgg_weight, style_weight=args.style_weight)
    summary = train(database, workdir, out, config=film_config, train_config=cfg, init=args.init,
                    progress=not args.quiet, threads=args.threads)
    if not args.quiet:
        val = summary.get("validation") or {}
        vtxt = (f"; validation PSNR {val['psnr']:.2f} dB (linear {val['linear_psnr']:.2f}), "
                f"SSIM {val['ssim']:.4f} (linear {val['linear_ssim']:.4f})") if val else ""
        print(f"wrote {out}: step {summary['step']} (stopped on {summary['stopped']}) in "
              f"{time.monotonic() - t0:.1f} s{vtxt}", flush=True)
    return 0
