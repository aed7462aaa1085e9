"""``cryotiger model``: make and inspect FILM SavedModel folders.

Contract (kept stable, used by checks outside the repository):
  cryotiger model init --config published|small --output DIR [--seed N]
      writes a randomly initialised FILM model with the published SavedModel
      interface (model({'x0','x1','time'}, training=False)['image']).
  cryotiger model info DIR
      prints 'parameters: N', 'time-aware: yes|no' (yes: the model makes the
      image at any fraction t of a gap; no: midpoints only, as the published
      models) and the configuration when known.
  cryotiger model download cryotiger|vimeo [--output DIR] [--url URL]
      downloads a published model from the cryoTIGER authors' public share,
      checks it and installs it as DIR/cryoTIGER_model or
      DIR/pre-trained_Vimeo-90K_data_model (DIR default: $CRYOTIGER_MODELS).
"""
from __future__ import annotations

from . import add_output, add_quiet


def register(subparsers):
    """Add the ``cryotiger model`` sub-parser and its actions ``init``, ``info``
    and ``download`` to ``subparsers`` (options: ``cryotiger model ACTION
    --help``); ``func`` is :func:`run_init`, :func:`run_info` or
    :func:`run_download`, and without an action the help is printed (exit 2).
    """
    p = subparsers.add_parser("model", help="make (random) or inspect FILM SavedModel folders",
                              description="Make a randomly initialised FILM SavedModel (for tests and "
                                          "benchmarks) or print the parameter count of a model folder.")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    init = sub.add_parser("init", help="write a randomly initialised FILM model")
    init.add_argument("--config", default="published", choices=["published", "small"],
                      help="published: the FILM/cryoTIGER network (34,436,667 parameters); "
                           "small: a tiny network for tests")
    add_output(init, "output SavedModel folder (new or empty)")
    init.add_argument("--seed", type=int, default=0, help="random seed of the initial weights")
    init.add_argument("--time-aware", action="store_true",
                      help="a time-conditioned network (issue 13; untrained: for tests and benchmarks)")
    init.set_defaults(func=run_init)
    info = sub.add_parser("info", help="print the parameter count of a model folder")
    info.add_argument("model", help="FILM SavedModel folder (also film_net/Style/saved_model layouts)")
    info.set_defaults(func=run_info)
    dl = sub.add_parser(
        "download", help="download, check and install a published model",
        description="Download a published FILM model from the cryoTIGER authors' public ownCloud "
                    "share, check it (SavedModel layout, variable names, 34,436,667 parameters) and "
                    "install it as DIR/cryoTIGER_model or DIR/pre-trained_Vimeo-90K_data_model. "
                    "An interrupted download resumes (run the command again); the model folder "
                    "appears only once checked.")
    dl.add_argument("name", choices=["cryotiger", "vimeo"],
                    help="cryotiger: the cryoTIGER cryo-ET model; vimeo: FILM's Vimeo-90K model")
    dl.add_argument("--output", default=None,
                    help="models folder (default: $CRYOTIGER_MODELS, the Plugin variable)")
    dl.add_argument("--url", default=None,
                    help="archive URL (zip or tar) instead of the public share (a mirror)")
    dl.add_argument("--retries", type=int, default=3,
                    help="automatic resumes after an interrupted transfer (default 3)")
    dl.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    dl.add_argument("--expect-config", default="published", choices=["published", "small"],
                    help="FILM configuration the model must have (default published; 'small' is "
                         "for tests of the install path with a tiny model)")
    add_quiet(dl)
    dl.set_defaults(func=run_download)
    p.set_defaults(func=_usage, parser=p)


def _usage(args):
    args.parser.print_help()
    return 2


def run_init(args) -> int:
    """Run ``cryotiger model init``: write a randomly initialised FILM SavedModel
    (configuration ``args.config``, seed ``args.seed``, time-aware with
    ``args.time_aware``) into the folder ``args.output``, replaced as a whole.

    Returns:
      0 (success).

    Raises:
      InputError: when --output cannot be replaced (engine/outputs.py,
        film/savedmodel.py checks).
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    from ..outputs import OutputSet
    with OutputSet("model init", folders=[(args.output, "--output", "replace")]):
        return _run_init(args)


def _run_init(args) -> int:
    from ..film.config import FilmConfig
    cfg = FilmConfig.named(args.config)
    if getattr(args, "time_aware", False):
        cfg = cfg.time_aware()
    from ..film.network import FilmNet
    from ..film.savedmodel import export_savedmodel
    net = FilmNet(cfg, seed=args.seed)
    path = export_savedmodel(net, args.output)
    print(f"wrote {path}: FILM '{args.config}'{' time-aware' if cfg.time_conditioning else ''} "
          f"configuration, {net.count_params()} parameters, "
          f"random weights (seed {args.seed})")
    return 0


def run_info(args) -> int:
    """Run ``cryotiger model info``: print the SavedModel folder, ``parameters:
    N``, ``time-aware: yes|no``, what it synthesises and its configuration
    when known (a contract, see the module docstring).

    Returns:
      0 (success).

    Raises:
      InputError: when ``args.model`` holds no SavedModel (film/savedmodel.py).
    """
    from ..film.savedmodel import count_parameters, find_saved_model_dir
    folder = find_saved_model_dir(args.model)
    n, cfg = count_parameters(folder)
    print(f"model: {folder}")
    print(f"parameters: {n}")
    aware = cfg is not None and cfg.time_conditioning
    print(f"time-aware: {'yes' if aware else 'no'}")
    print("synthesis: at any fraction t of a gap (--per-gap K, --at ANGLES)" if aware else
          "synthesis: midpoints only (t = 0.5; 1, 3 or 7 per gap by recursive midpoints)")
    if cfg is not None:
        print(f"config: {cfg.describe()}")
    return 0


def run_download(args) -> int:
    """Run ``cryotiger model download``: download, check and install the
    published model ``args.name`` into the models folder (--output or
    $CRYOTIGER_MODELS, made when missing and removed again on failure).

    Returns:
      0 (success).

    Raises:
      InputError: when there is no models folder or it cannot be made, or
        for bad options (engine/download.py).
      CryoTigerError: network, archive or model-check failures.
      OutputError: when an output cannot be written (read-only folder, full
        disk, locked by another run; engine/outputs.py).
    """
    import os
    from .. import InputError
    from ..download import MODELS, models_dir
    from ..outputs import OutputSet
    out = models_dir(args.output)
    created = []
    if not os.path.isdir(out) and not os.path.exists(out):
        try:
            os.makedirs(out)
        except OSError as exc:
            raise InputError(f"cannot create the models folder {out} ({exc.strerror}); give "
                             "another --output") from None
        created.append(out)
    try:
        with OutputSet("model download",
                       folders=[(os.path.join(out, MODELS[args.name]), "the installed model", "replace")]):
            return _run_download(args)
    except BaseException:
        for folder in created:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        raise


def _run_download(args) -> int:
    import sys
    from ..download import download_model

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)
    res = download_model(args.name, output=args.output, url=args.url, expect=args.expect_config,
                         retries=args.retries, progress=not args.quiet, timeout=args.timeout, log=log)
    print(f"installed {res['model']}: {res['parameters']:,} parameters, checked "
          f"({args.expect_config} FILM configuration); from {res['url']} (sha256 {res['sha256'][:16]}...) "
          f"in {res['seconds']:.0f} s")
    return 0
