"""Viewer of ProtCryoTigerHoldout: table, box plots (as the paper's Fig. 2),
metrics against tilt angle, and paired tests between methods.

:func:`writeHoldoutFigures` makes the files headless (matplotlib Figure with
the Agg canvas, no display needed) and is what the tests call; the viewer
shows the table and draws the same figures in Scipion plot windows.

Text views get ``tkParent=self.formWindow`` (the pyworkflow Window that
opened the viewer, or None): pyworkflow's text viewer needs a Window, not a
Tk widget (PARENT_NOTE; tests/scipion/test_protocol_evaluation.py opens
every viewer in a real Tk window).
"""
import os

from pyworkflow.viewer import DESKTOP_TKINTER, TextView, Viewer

from ..protocols.evaluation_common import fmt, testsLines
from ..protocols.protocol_holdout import ProtCryoTigerHoldout
from .viewer_base import plotsFolder

TABLE_FILE = "holdout_table.txt"


def holdoutTable(report: dict) -> str:
    """Plain-text table of a pooled hold-out report (engine.holdout.combine_reports)."""
    dz = "defocus_diff" in report.get("metrics", [])
    lines = ["%-20s %6s %12s %12s %12s%s" % ("method", "tilts", "median PSNR", "median RMSE",
                                              "median SSIM", "  median |ddz| A" if dz else "")]
    for n, e in report["methods"].items():
        lines.append("%-20s %6d %12s %12s %12s%s" % (
            n, len(e["psnr"]), fmt(e["median_psnr"], ".3f"), fmt(e["median_rmse"], ".4g"),
            fmt(e["median_ssim"], ".4f"),
            " %16s" % fmt(e.get("median_defocus_diff"), ".0f") if dz else ""))
    if report.get("per_series"):
        lines += ["", "Per tilt series (medians):"]
        for tsId, methods in report["per_series"].items():
            for n, e in methods.items():
                lines.append("  %-12s %-20s n=%-4d PSNR %s  RMSE %s  SSIM %s"
                             % (tsId, n, e["n"], fmt(e["median_psnr"], ".3f"),
                                fmt(e["median_rmse"], ".4g"), fmt(e["median_ssim"], ".4f")))
    if report.get("paired_tests"):
        lines += ["", "Paired tests (all held-out tilts):"] + \
                 ["  " + l for l in testsLines(report["paired_tests"])]
    return "\n".join(lines) + "\n"


def writeHoldoutFigures(prot, outDir: str = None) -> list:
    """Write the table and figures of a finished hold-out protocol into
    ``outDir`` (default extra/plots): holdout_table.txt, holdout_boxplots.png,
    holdout_psnr/rmse/ssim.png, holdout_per_tilt.png.  Returns the paths, the
    table first.  Raises ValueError when the protocol has no results yet."""
    from ..engine.plots import holdout_figures
    report = prot.getSummaryReport()
    if report is None:
        raise ValueError("The hold-out protocol has no results yet (%s missing)"
                         % prot.getSummaryFile())
    outDir = plotsFolder(prot, outDir)
    table = os.path.join(outDir, TABLE_FILE)
    with open(table, "w") as f:
        f.write(holdoutTable(report))
    return [table] + holdout_figures(report, outDir, title="%d tilt series" % len(report["series"]))


class CryoTigerHoldoutViewer(Viewer):
    """Table, box plots and paired tests of a hold-out evaluation."""
    _label = "hold-out results"
    _targets = [ProtCryoTigerHoldout]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        from ..engine.plots import draw_holdout_boxplots, draw_holdout_per_tilt
        prot = obj
        paths = writeHoldoutFigures(prot)
        report = prot.getSummaryReport()
        box = Plotter(figsize=(12, 4.2), windowTitle="cryoTIGER hold-out: box plots")
        draw_holdout_boxplots(box.figure, report, title="%d tilt series" % len(report["series"]))
        perTilt = Plotter(figsize=(12, 3.8), windowTitle="cryoTIGER hold-out: per tilt")
        draw_holdout_per_tilt(perTilt.figure, report)
        return [TextView([paths[0]], title="cryoTIGER hold-out: table", tkParent=self.formWindow),
                box, perTilt]
