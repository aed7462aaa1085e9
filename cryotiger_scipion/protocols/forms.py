"""Form fields and input checks that several cryoTIGER protocols share.

Same name, class and behaviour in every protocol that uses them; each protocol
gives its own help text.  Saved workflow templates and users' projects refer to
the names (constants ``IN_*``, ``PARAM_*``), which therefore never change.

Alignment: a series must be ``interpolated()`` or carry per-image transforms
(applied by the engine through ``--xf``; see convert.py "Alignment"); a series
with neither is refused by :func:`validateAlignedInput` with a message saying
what to run first.
"""
import re
from typing import List, Optional, Tuple

import pyworkflow.protocol.params as params

from ..constants import IN_CTFS, IN_TILTSERIES


def validateAlignedInput(tsSet, label: str = "Input tilt series") -> List[str]:
    """Validation messages (list of str; empty when fine) when ``tsSet``
    (SetOfTiltSeries, or None when nothing is selected) is not aligned: the
    set must be ``interpolated()`` (resampled with its alignment) or carry
    per-image transforms.  ``label`` names the input in the messages."""
    errors = []
    if tsSet is None:
        return ["%s: no input selected" % label]
    if tsSet.interpolated() or tsSet.hasAlignment():
        return errors
    errors.append("%s are not aligned: they are neither resampled with their alignment "
                  "(interpolated) nor carry per-image transforms. Align them first (e.g. IMOD "
                  "'fiducial alignment' or AreTomo, then use their output), or, if the files are "
                  "already aligned stacks, import them with 'Have images been aligned?' = Yes."
                  % label)
    return errors



def addInputTiltSeriesParam(form, help: str, label: str = "Aligned tilt series") -> None:
    """Add the main input field ``inputSetOfTiltSeries`` (constants.IN_TILTSERIES):
    an important pointer to a SetOfTiltSeries.

    Args:
        form: the protocol's pyworkflow Form (inside the current section).
        help: the protocol's help text (what it needs of the series).
        label: the field's label ("Aligned tilt series" for the protocols that
            need aligned input; "Tilt series" for CTF estimation).
    """
    form.addParam(IN_TILTSERIES, params.PointerParam, pointerClass="SetOfTiltSeries",
                  important=True, label=label, help=help)


def addInputCtfParam(form, help: str) -> None:
    """Add the optional field ``inputSetOfCtfTomoSeries`` (constants.IN_CTFS),
    labelled "CTF estimation": a pointer to a SetOfCTFTomoSeries that may be
    left empty.

    Args:
        form: the protocol's pyworkflow Form (inside the current section).
        help: the protocol's help text (what the CTF is used for).
    """
    form.addParam(IN_CTFS, params.PointerParam, pointerClass="SetOfCTFTomoSeries",
                  allowsNull=True, label="CTF estimation", help=help)


def addAlignedSizeParam(form) -> None:
    """Add the advanced field ``alignedSize`` (constants.PARAM_ALIGNED_SIZE),
    "Aligned image size (px)": text 'NX,NY' in pixels for the engine's
    --aligned-size, empty by default (see :func:`parseAlignedSize`)."""
    from ..constants import ALIGNED_SIZE_HELP, PARAM_ALIGNED_SIZE
    form.addParam(PARAM_ALIGNED_SIZE, params.StringParam, default="",
                  expertLevel=params.LEVEL_ADVANCED, label="Aligned image size (px)",
                  help=ALIGNED_SIZE_HELP)


def parseAlignedSize(text) -> Optional[Tuple[int, int]]:
    """Parse the "Aligned image size" field.

    Args:
        text: 'NX,NY' in pixels (also 'NX NY' or 'NXxNY'), or empty/None.
    Returns (nx, ny), both >= 1, or None when empty.
    Raises ValueError (one line naming the fix) for anything else.
    """
    text = (text or "").strip()
    if not text:
        return None
    parts = [p for p in re.split(r"[,\sxX]+", text) if p]
    try:
        nx, ny = (int(p) for p in parts)
    except ValueError:
        raise ValueError("Aligned image size '%s': give two whole numbers of pixels NX,NY "
                         "(e.g. 1024,1440) or leave it empty." % text) from None
    if nx < 1 or ny < 1:
        raise ValueError("Aligned image size '%s': both sizes must be at least 1 pixel." % text)
    return nx, ny


def alignedSizeArgs(text, inputs) -> str:
    """Engine argument `` --aligned-size NX,NY`` (pixels) when ``text`` gives
    a size and the engine applies transforms (``inputs.xf`` set; inputs: the
    series' :class:`EngineInputs`), else ''.  Raises ValueError for bad text
    (:func:`parseAlignedSize`)."""
    size = parseAlignedSize(text)
    if size is None or not inputs.xf:
        return ""
    return " --aligned-size %d,%d" % size
