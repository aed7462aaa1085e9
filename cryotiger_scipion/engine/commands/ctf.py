"""`cryotiger ctf` (not implemented yet)."""


def register(subparsers):
    p = subparsers.add_parser("ctf", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    from .. import CryoTigerError
    raise CryoTigerError("'cryotiger ctf' is not implemented yet")
