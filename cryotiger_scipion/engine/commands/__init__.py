"""Sub-commands of ``cryotiger`` (one module each, see engine/cli.py).

The options several sub-commands share are defined once here: each helper adds
one option (or one group that always travels together) to a sub-command's
parser.  Names, types and defaults live only here; a sub-command may pass its
own help text where its wording has always differed (the help output is part
of the command-line contract, see the README's "Command line").
"""
from __future__ import annotations

#: Help of --input for an aligned tilt series (interpolate, reconstruct).
ALIGNED_STACK_HELP = "aligned tilt-series stack (.mrc/.mrcs/.st/.ali)"
#: Help of --angles: a .tlt file, one angle (degrees) per image in stack order.
ANGLES_HELP = "tilt angles, one per image in stack order (.tlt)"
#: Help of --pixel-size (Angstrom) where it falls back to the stack's header.
PIXEL_SIZE_HELP = "pixel size in Angstrom (default: from the input header)"
#: Help of --voltage, --cs and --amp-contrast with their defaults spelt out (ctf, export).
MICROSCOPE_HELP = {"voltage": "acceleration voltage, kV (300)",
                   "cs": "spherical aberration, mm (2.7)",
                   "amp_contrast": "amplitude contrast fraction (0.07)"}
#: Help of --exclude (views numbered from 1, as IMOD's EXCLUDELIST).
EXCLUDE_HELP = "views to exclude, numbered from 1 (e.g. '1,40-41')"
#: Help of --xf where the transforms align an unaligned stack.
XF_HELP = "IMOD .xf transforms to apply first (if the stack is not aligned)"
#: Help of --quiet for the commands that report progress.
QUIET_HELP = "no progress output"


def add_input(p, help: str = ALIGNED_STACK_HELP) -> None:
    """Add the required ``--input`` option: the tilt-series stack (MRC, images
    (n, y, x)) a command reads.

    Args:
      p: an ``argparse.ArgumentParser`` (or argument group).
      help: the option's help text.
    """
    p.add_argument("--input", required=True, help=help)


def add_angles(p, required: bool = False, help: str = ANGLES_HELP) -> None:
    """Add ``--angles``: the tilt-angle file (degrees, one per image in stack order).

    Args:
      p: an ``argparse.ArgumentParser`` (or argument group).
      required: whether argparse refuses a command line without it (commands
        that also accept --mdoc leave it optional).
      help: the option's help text.
    """
    p.add_argument("--angles", required=required, help=help)


def add_output(p, help: str) -> None:
    """Add the required ``--output`` option (what it names differs per command:
    a stack, a tomogram, a CTF.json, a folder; ``help`` says which)."""
    p.add_argument("--output", required=True, help=help)


def add_pixel_size(p, help: str = PIXEL_SIZE_HELP) -> None:
    """Add ``--pixel-size`` (float, Angstrom per pixel; default None: the
    command takes the pixel size from the input's header)."""
    p.add_argument("--pixel-size", type=float, default=None, help=help)


def add_microscope(p, pixel_size_help: str = PIXEL_SIZE_HELP, **helps: str) -> None:
    """Add ``--pixel-size`` then the microscope options of a CTF: ``--voltage``
    (kV, default 300), ``--cs`` (spherical aberration, mm, default 2.7) and
    ``--amp-contrast`` (amplitude contrast fraction, default 0.07).

    Args:
      p: an ``argparse.ArgumentParser`` (or argument group).
      pixel_size_help: help text of --pixel-size.
      **helps: help texts by destination (``voltage``, ``cs``,
        ``amp_contrast``) replacing those of ``MICROSCOPE_HELP``.
    """
    text = {**MICROSCOPE_HELP, **helps}
    add_pixel_size(p, pixel_size_help)
    p.add_argument("--voltage", type=float, default=300.0, help=text["voltage"])
    p.add_argument("--cs", type=float, default=2.7, help=text["cs"])
    p.add_argument("--amp-contrast", type=float, default=0.07, help=text["amp_contrast"])


def add_exclude(p, help: str = EXCLUDE_HELP) -> None:
    """Add ``--exclude``: views to leave out, numbered from 1 ('1,40-41'; default
    '' for none), parsed by ``engine.interpolate.parse_view_list``."""
    p.add_argument("--exclude", default="", help=help)


def add_xf(p, help: str = XF_HELP) -> None:
    """Add ``--xf`` (an IMOD .xf file: one 2x3 transform per image, applied
    before any other work) and ``--aligned-size`` (see ``add_aligned_size``)."""
    p.add_argument("--xf", help=help)
    add_aligned_size(p)


def add_aligned_size(p) -> None:
    """Add ``--aligned-size NX,NY`` (pixels; with --xf): the frame of the aligned
    images, as IMOD newstack -size; parsed by ``engine.align.with_frame``."""
    p.add_argument("--aligned-size", default=None, metavar="NX,NY",
                   help="with --xf: size of the aligned images in pixels (as IMOD newstack "
                        "-size; default: the raw size, x and y swapped when the transforms "
                        "rotate by about 90 degrees)")


def add_quiet(p, help: str = QUIET_HELP) -> None:
    """Add ``--quiet`` (flag): no progress output on stdout."""
    p.add_argument("--quiet", action="store_true", help=help)
