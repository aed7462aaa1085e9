"""`cryotiger holdout` (not implemented yet)."""


def register(subparsers):
    p = subparsers.add_parser("holdout", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    from .. import CryoTigerError
    raise CryoTigerError("'cryotiger holdout' is not implemented yet")
