"""`cryotiger reconstruct` (not implemented yet)."""


def register(subparsers):
    p = subparsers.add_parser("reconstruct", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    from .. import CryoTigerError
    raise CryoTigerError("'cryotiger reconstruct' is not implemented yet")
