"""`cryotiger model` (not implemented yet)."""


def register(subparsers):
    p = subparsers.add_parser("model", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    from .. import CryoTigerError
    raise CryoTigerError("'cryotiger model' is not implemented yet")
