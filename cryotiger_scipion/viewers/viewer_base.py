"""What the cryoTIGER viewers share: the folder their files go to, headless
PNG and text writing, and :class:`CryoTigerTableAndPlotViewer`, the viewer
that shows a table in a text window and one figure in a Scipion plot window.

Figures are drawn by functions ``draw(fig, ...)`` that take a matplotlib
Figure, so that the same drawing serves the headless files (Figure with the
Agg canvas, no display needed; what the tests call) and the plot windows.

Text views get ``tkParent=self.formWindow`` (the pyworkflow Window that
opened the viewer, or None): pyworkflow's text viewer needs a Window, not a
Tk widget (PARENT_NOTE; tests/scipion/test_protocol_evaluation.py opens
every viewer in a real Tk window).
"""
import os
from typing import Callable, List, Optional, Tuple

from pyworkflow.viewer import DESKTOP_TKINTER, TextView, Viewer


def plotsFolder(prot, outDir: Optional[str] = None) -> str:
    """``outDir``, or the protocol's extra/plots folder when None; created.

    Args:
        prot: the protocol whose results are drawn.
        outDir: a folder chosen by the caller, or None.
    Returns the folder's path.  Raises OSError when it cannot be created.
    """
    outDir = outDir or prot._getExtraPath("plots")
    os.makedirs(outDir, exist_ok=True)
    return outDir


def writeText(path: str, text: str) -> str:
    """Write ``text`` and a final newline to ``path``; returns ``path``
    (OSError when it cannot be written)."""
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def savePng(draw: Callable, path: str, figsize: Tuple[float, float], dpi: int) -> str:
    """Draw a figure headless and save it as a PNG.

    Args:
        draw: ``draw(fig)`` fills a matplotlib Figure.
        path: the PNG to write.
        figsize: (width, height) in inches.
        dpi: dots per inch of the PNG.
    Returns ``path``.  Raises what ``draw`` or matplotlib raise.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    draw(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


class CryoTigerTableAndPlotViewer(Viewer):
    """Base of the viewers that show a table (a text file) in a text window
    and one figure in a Scipion plot window (not offered itself: no targets).

    Subclasses set ``_label``, ``_targets``, :attr:`_figsize`,
    :attr:`_windowTitle` and implement :meth:`_writeFiles` (headless files,
    the table first) and :meth:`_draw`.  The text window's title is
    :attr:`_textTitle`, by default the viewer's ``_label``.
    """
    _targets = []
    _environments = [DESKTOP_TKINTER]
    _figsize: Tuple[float, float] = (8, 4)
    _windowTitle = ""
    _textTitle: Optional[str] = None

    def _writeFiles(self, obj) -> List[str]:
        """Write the table and figures of ``obj``; returns their paths, the table first."""
        raise NotImplementedError

    def _draw(self, fig, obj) -> None:
        """Draw the figure of ``obj`` into the matplotlib Figure ``fig``."""
        raise NotImplementedError

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        paths = self._writeFiles(obj)
        p = Plotter(figsize=self._figsize, windowTitle=self._windowTitle)
        self._draw(p.figure, obj)
        return [TextView([paths[0]], title=self._textTitle or self._label,
                         tkParent=self.formWindow), p]
