"""Pre-flight checks of command-line values shared by every ``cryotiger`` command.

:func:`preflight` runs in ``cli.main`` after parsing and before the command
starts, so a bad value is refused in one line before any file is read or
written.  The rules are listed in the README, section "Bad input".
"""
from __future__ import annotations

from . import InputError


#: Options naming a file or folder; an empty value is refused by :func:`preflight`.
PATH_OPTIONS = ("input", "angles", "mdoc", "output", "xf", "acquisition_json", "model", "report",
                "plot", "ctf", "plan", "exclude_synthetic", "record", "init", "database",
                "workdir", "work_dir", "volume", "gctf", "novactf",
                "log_dir")


def preflight(args) -> None:
    """Check the options every command shares, if the command has them.

    * ``--pixel-size``: a finite number > 0 (Angstrom); NaN, inf, 0 and
      negative values are refused (leave the option out to use the header).
    * path options (:data:`PATH_OPTIONS`): an empty value ('', e.g. from an
      unset shell variable) is refused instead of read as "left out" or as
      the current folder.
    * ``--exclude``: view lists as :func:`engine.interpolate.parse_view_list`
      reads them (one string, or a list of them for ``train``).
    * every other number option (``type=float``): NaN and inf are refused
      (``--voltage nan``, ``--max-memory inf`` ...); ranges are the commands' own.

    Args:
      args: the parsed options (argparse.Namespace) of any sub-command.

    Raises:
      InputError: (one line) for the first value refused above.
    """
    import math
    from .formats.mrc import check_pixel_size_option
    check_pixel_size_option(getattr(args, "pixel_size", None))
    for name in PATH_OPTIONS:           # '' (an unset shell variable) is not "left out"
        value = getattr(args, name, None)
        if isinstance(value, (list, tuple)) and name == "xf":
            continue                    # train: --xf '' per --input = an aligned series (a contract)
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, str) and not v.strip():
                raise InputError(f"--{name.replace('_', '-')} '{v}': an empty path; give a file "
                                 "or folder name, or leave the option out")
    for name, value in sorted(vars(args).items()):
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"--{name.replace('_', '-')} {value}: give a finite number")
    exclude = getattr(args, "exclude", None)
    if exclude:
        from .interpolate import parse_view_list
        for text in (exclude if isinstance(exclude, (list, tuple)) else [exclude]):
            parse_view_list(text)
