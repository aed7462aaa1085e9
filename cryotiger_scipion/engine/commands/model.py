"""``cryotiger model``: make and inspect FILM SavedModel folders.

Contract (kept stable, used by checks outside the repository):
  cryotiger model init --config published|small --output DIR [--seed N]
      writes a randomly initialised FILM model with the published SavedModel
      interface (model({'x0','x1','time'}, training=False)['image']).
  cryotiger model info DIR
      prints 'parameters: N' (and the configuration when known).
"""
from __future__ import annotations


def register(subparsers):
    p = subparsers.add_parser("model", help="make (random) or inspect FILM SavedModel folders",
                              description="Make a randomly initialised FILM SavedModel (for tests and "
                                          "benchmarks) or print the parameter count of a model folder.")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    init = sub.add_parser("init", help="write a randomly initialised FILM model")
    init.add_argument("--config", default="published", choices=["published", "small"],
                      help="published: the FILM/cryoTIGER network (34,436,667 parameters); "
                           "small: a tiny network for tests")
    init.add_argument("--output", required=True, help="output SavedModel folder (new or empty)")
    init.add_argument("--seed", type=int, default=0, help="random seed of the initial weights")
    init.set_defaults(func=run_init)
    info = sub.add_parser("info", help="print the parameter count of a model folder")
    info.add_argument("model", help="FILM SavedModel folder (also film_net/Style/saved_model layouts)")
    info.set_defaults(func=run_info)
    p.set_defaults(func=_usage, parser=p)


def _usage(args):
    args.parser.print_help()
    return 2


def run_init(args) -> int:
    from ..film.config import FilmConfig
    cfg = FilmConfig.named(args.config)
    from ..film.network import FilmNet
    from ..film.savedmodel import export_savedmodel
    net = FilmNet(cfg, seed=args.seed)
    path = export_savedmodel(net, args.output)
    print(f"wrote {path}: FILM '{args.config}' configuration, {net.count_params()} parameters, "
          f"random weights (seed {args.seed})")
    return 0


def run_info(args) -> int:
    from ..film.savedmodel import count_parameters, find_saved_model_dir
    folder = find_saved_model_dir(args.model)
    n, cfg = count_parameters(folder)
    print(f"model: {folder}")
    print(f"parameters: {n}")
    if cfg is not None:
        print(f"config: {cfg.describe()}")
    return 0
