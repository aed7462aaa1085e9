"""`cryotiger train` (not implemented yet)."""


def register(subparsers):
    p = subparsers.add_parser("train", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    from .. import CryoTigerError
    raise CryoTigerError("'cryotiger train' is not implemented yet")
