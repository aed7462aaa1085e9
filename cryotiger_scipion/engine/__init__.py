"""The cryoTIGER engine: tilt-series science with no Scipion imports.

Runs inside the managed environment (a venv with TensorFlow) and on its own
from the shell through the ``cryotiger`` command.  Arrays are numpy, stacks
are (n_tilts, y, x) float32, angles are degrees, pixel sizes Angstrom.
"""


class CryoTigerError(Exception):
    """A user-facing error: the message names the problem and the fix."""


class InputError(CryoTigerError, ValueError):
    """Bad input (files, angles, sizes, values)."""
