"""The interface of the interpolation methods, and the linear method.

``Interpolator`` is what the driver (``interpolate.run_interpolation``) calls
gap by gap; ``LinearInterpolator`` is the pixel-wise linear blend; the FILM
inference driver (``film/inference.py`` ``FilmInterpolator``) subclasses
``Interpolator`` from here, so that the FILM package never imports the driver
module (no import cycle).  Method names are those of ``constants.METHODS``.
numpy only.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..constants import METHOD_FILM, METHOD_LINEAR

LINEAR = METHOD_LINEAR     # "linear"
FILM = METHOD_FILM         # "film"


def recursive_midpoints(fractions: Sequence[float]) -> List[float]:
    """The fractions a midpoint-only method makes when asked for ``fractions``
    (one gap, K of them): the recursive midpoints k/(K+1), k = 1..K, wherever
    they were asked for."""
    k = len(fractions)
    return [(j + 1) / (k + 1) for j in range(k)]


class Interpolator:
    """Makes the synthetic images of gaps.  Subclasses override ``interpolate_gaps``.

    ``time_aware``: True when the method synthesises the image at any fraction t
    of a gap it is asked for (linear); False when it only makes midpoints
    (FILM's published models: t = 0.5, recursive midpoints for 3 or 7 per gap).
    The driver refuses targets a midpoint-only method cannot make
    (:func:`check_fractions`); a time-aware FILM model (issue 13) sets it True.
    """
    name = "base"
    time_aware = True
    #: True when ``interpolate_gaps_with_confidence`` returns confidence maps
    #: (FILM: engine/film/confidence.py); the driver then writes OUT_confidence.mrc.
    has_confidence = False
    # How many gaps the driver hands over at once (FILM batches pairs).
    gaps_per_call = 1

    def fractions_made(self, fractions: Sequence[float]) -> List[float]:
        """The fractions of the images this method returns when asked for
        ``fractions`` (one gap): the same for a time-aware method, else the
        recursive midpoints k/(K+1)."""
        if self.time_aware:
            return [float(t) for t in fractions]
        return recursive_midpoints(fractions)

    def interpolate_gaps(self, gaps: Sequence[tuple]) -> List[np.ndarray]:
        """Synthesise the images of ``gaps``.

        Args:
          gaps: a list of (image_a, image_b, fractions): the two real images of a
            gap, each (y, x) float32 in the stack's intensity units, and the K
            fractions t in (0, 1) of the images wanted (0: a, 1: b; the angular
            position between the two tilts).

        Returns:
          One (K, y, x) float32 array per gap, image k at fractions[k] from a to b.

        Raises:
          NotImplementedError: always here; subclasses override it.
        """
        raise NotImplementedError

    def interpolate_gaps_with_confidence(self, gaps):
        """(images, confidences): the result of :meth:`interpolate_gaps` and, when
        ``has_confidence``, one (K, y, x) float32 confidence map in [0, 1] per gap
        (else None).  Raises what :meth:`interpolate_gaps` raises.
        """
        return self.interpolate_gaps(gaps), None

    def describe(self) -> dict:
        """What the logs and the record say about this method: ``{"method":
        name}`` (subclasses add their settings)."""
        return {"method": self.name}


class LinearInterpolator(Interpolator):
    """Pixel-wise weighted mean by angular distance: (1 - t) a + t b, float32,
    in the input's intensity units (the baseline of the cryoTIGER paper,
    Majtner et al. 2025)."""
    name = LINEAR

    def interpolate_gaps(self, gaps):
        """The linear blend (1 - t) a + t b of each gap, pixel by pixel.

        Args:
          gaps: (image_a, image_b, fractions) per gap; images (y, x), any real
            dtype (computed in float32), fractions t in [0, 1].

        Returns:
          One (K, y, x) float32 array per gap, K = len(fractions).
        """
        out = []
        for a, b, fractions in gaps:
            a = np.asarray(a, dtype=np.float32)
            b = np.asarray(b, dtype=np.float32)
            res = np.empty((len(fractions),) + a.shape, dtype=np.float32)
            for k, t in enumerate(fractions):
                t = np.float32(t)
                np.multiply(a, np.float32(1.0) - t, out=res[k])
                res[k] += t * b
            out.append(res)
        return out
