"""Viewer of the confidence of synthetic tilts (issue 13): for the output of
ProtCryoTigerInterpolate with FILM, one panel per tilt series with the
per-tilt confidence against the tilt angle (synthetic tilts marked), and the
confidence map of the least confident synthetic tilt (from the
``_cryotigerConfidenceMap`` stack registered with the series).

:func:`writeConfidenceFigure` writes the PNG headless; the viewer shows the
same figure in a Scipion plot window.
"""
import os

from pyworkflow.viewer import DESKTOP_TKINTER, Viewer

from ..constants import ATTR_CONFIDENCE
from ..convert import isSynthetic
from ..protocols.protocol_interpolate import ProtCryoTigerInterpolate
from .viewer_base import plotsFolder, savePng


def confidenceOf(ts) -> list:
    """[(angle, confidence, synthetic, position)] of a tilt series' images
    (confidence None when the interpolation made none, e.g. linear)."""
    rows = []
    for ti in ts.iterItems(orderBy="_tiltAngle"):
        c = getattr(ti, ATTR_CONFIDENCE, None)
        rows.append((float(ti.getTiltAngle()), None if c is None else float(c.get()),
                     isSynthetic(ti), int(ti.getIndex())))
    return rows


def drawConfidence(fig, tsList) -> None:
    """Draw two panels per series into the matplotlib Figure ``fig``:
    per-tilt confidence (0..1) against tilt angle (degrees), and the
    confidence map of the least confident synthetic tilt.  ``tsList``: as
    :func:`seriesConfidence` returns."""
    import mrcfile
    n = max(1, len(tsList))
    for k, (tsId, rows, mapPath) in enumerate(tsList):
        ax = fig.add_subplot(n, 2, 2 * k + 1)
        real = [(a, c) for a, c, s, _ in rows if not s and c is not None]
        syn = [(a, c) for a, c, s, _ in rows if s and c is not None]
        if real:
            ax.plot(*zip(*real), "o", color="grey", label="real (1.0)")
        if syn:
            ax.plot(*zip(*syn), "s", color="tab:red", label="synthetic")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("tilt angle (deg)")
        ax.set_ylabel("confidence")
        ax.set_title("%s: per-tilt confidence" % tsId if syn else "%s: no confidence (linear?)" % tsId)
        ax.legend(fontsize=8)
        ax2 = fig.add_subplot(n, 2, 2 * k + 2)
        synRows = [r for r in rows if r[2] and r[1] is not None]
        if synRows and mapPath and os.path.exists(mapPath):
            worst = min(synRows, key=lambda r: r[1])
            with mrcfile.open(mapPath, permissive=True) as m:
                img = m.data[worst[3] - 1] if m.data.ndim == 3 else m.data
                im = ax2.imshow(img, vmin=0, vmax=1, cmap="viridis")
            fig.colorbar(im, ax=ax2)
            ax2.set_title("map at %.1f deg (confidence %.2f)" % (worst[0], worst[1]))
        else:
            ax2.set_title("no confidence map")
        ax2.set_xticks([])
        ax2.set_yticks([])


def seriesConfidence(prot) -> list:
    """[(tsId, rows, map path or None)] for every series of the output
    tilt series of ``prot`` (ProtCryoTigerInterpolate); rows as
    :func:`confidenceOf`.  Raises ValueError when there is no output yet."""
    out = []
    from ..constants import OUT_TILTSERIES
    outSet = getattr(prot, OUT_TILTSERIES, None)
    if outSet is None:
        raise ValueError("%s has no output tilt series yet" % prot.getRunName())
    for ts in outSet.iterItems():
        path = getattr(ts, "_cryotigerConfidenceMap", None)
        out.append((ts.getTsId(), confidenceOf(ts), path.get() if path is not None else None))
    return out


def writeConfidenceFigure(prot, outDir: str = None) -> str:
    """Write confidence.png (headless; :func:`drawConfidence`) for the
    interpolation protocol ``prot`` into ``outDir`` (default extra/plots);
    returns its path.  Raises ValueError when there is no output yet."""
    data = seriesConfidence(prot)
    outDir = plotsFolder(prot, outDir)
    return savePng(lambda fig: drawConfidence(fig, data), os.path.join(outDir, "confidence.png"),
                   figsize=(10, 3.5 * max(1, len(data))), dpi=90)


class CryoTigerConfidenceViewer(Viewer):
    """Per-tilt confidence and confidence maps of FILM-synthesised tilts."""
    _label = "cryoTIGER confidence of synthetic tilts"
    _targets = [ProtCryoTigerInterpolate]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        data = seriesConfidence(obj)
        writeConfidenceFigure(obj)
        p = Plotter(figsize=(10, 3.5 * max(1, len(data))), windowTitle="cryoTIGER: confidence")
        drawConfidence(p.figure, data)
        return [p]
