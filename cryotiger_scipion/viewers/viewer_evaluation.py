"""Viewers of the evaluation protocols: tomogram contrast, picking metrics,
segmentation metrics.

Each ``write*Figures(prot, outDir=None)`` function writes a text table and
PNG figures headless (matplotlib Figure + Agg canvas) into extra/plots and
returns the paths; the viewers show the table and draw the same figures in
Scipion plot windows (viewer_base.CryoTigerTableAndPlotViewer).
"""
import os

from ..protocols.evaluation_common import fmt, testsLines
from ..protocols.protocol_compare_tomograms import CONTRAST_METRICS, ProtCryoTigerCompareTomograms
from ..protocols.protocol_picking_metrics import ProtCryoTigerPickingMetrics
from ..protocols.protocol_segmentation_metrics import ProtCryoTigerSegmentationMetrics
from .viewer_base import CryoTigerTableAndPlotViewer, plotsFolder, writeText


def _results(prot):
    r = prot.getResults()
    if r is None:
        raise ValueError("%s has no results yet (%s missing)" % (prot.getRunName(),
                                                                 prot.getResultsFile()))
    return r


# --- contrast ------------------------------------------------------------------
def contrastTable(r) -> str:
    """Plain-text table of a tomogram-contrast result (the protocol's JSON dict):
    std and gradient contrast (intensity units) per tomogram and set."""
    lines = ["central slab: %d slices" % r["slab"],
             "%-14s %-30s %14s %14s" % ("tomogram", "set", "std", "gradient")]
    for key in r["tsIds"]:
        for n in r["sets"]:
            c = r["tomograms"][key][n]
            lines.append("%-14s %-30s %14s %14s" % (key, n, fmt(c["std"], ".5g"),
                                                    fmt(c["gradient"], ".5g")))
    lines += ["", "Medians:"] + ["  %s: std %s, gradient %s" % (n, fmt(r["median"][n]["std"], ".5g"),
                                                                 fmt(r["median"][n]["gradient"], ".5g"))
                                 for n in r["sets"]]
    return "\n".join(lines + ["", "Paired tests:"] + ["  " + l for l in testsLines(r["paired_tests"])])


def _contrastPanels(r):
    return {m: {n: r["values"][n][m] for n in r["sets"]} for m in CONTRAST_METRICS}


def writeContrastFigures(prot, outDir=None) -> list:
    """Write contrast_table.txt and contrast_boxplots.png (std and gradient,
    one box per set) of ProtCryoTigerCompareTomograms ``prot`` into
    ``outDir`` (default extra/plots of ``prot``); returns the paths, the
    table first.  Raises ValueError when the protocol has no results yet."""
    from ..engine.plots import boxplots_figure
    r, outDir = _results(prot), plotsFolder(prot, outDir)
    return [writeText(os.path.join(outDir, "contrast_table.txt"), contrastTable(r)),
            boxplots_figure(_contrastPanels(r), os.path.join(outDir, "contrast_boxplots.png"),
                            title="tomogram contrast (central %d slices)" % r["slab"])]


class CryoTigerCompareTomogramsViewer(CryoTigerTableAndPlotViewer):
    """The table and bar chart of ProtCryoTigerCompareTomograms."""
    _label = "tomogram contrast"
    _targets = [ProtCryoTigerCompareTomograms]
    _figsize = (9, 4.2)
    _windowTitle = "cryoTIGER: tomogram contrast"

    def _writeFiles(self, obj):
        return writeContrastFigures(obj)

    def _draw(self, fig, obj):
        from ..engine.plots import draw_boxplots
        draw_boxplots(fig, _contrastPanels(_results(obj)))


# --- picking -------------------------------------------------------------------
def pickingTable(r) -> str:
    """Plain-text table of a picking-metrics result: picked/true/TP counts,
    precision, recall, F1, best F1 and PR-AUC per tomogram (tolerance in A)."""
    lines = ["tolerance %s A, scores %s" % (fmt(r["tolerance_A"]), "used" if r["scores"] else "absent"),
             "%-14s %6s %6s %6s %9s %7s %7s %8s %7s" % ("tomogram", "picked", "true", "TP",
                                                        "precision", "recall", "F1", "best F1",
                                                        "PR-AUC")]
    rows = list(r["per_tomogram"].items()) + [("ALL", r["all"])]
    for key, c in rows:
        a = c["all"]
        lines.append("%-14s %6d %6d %6d %9s %7s %7s %8s %7s"
                     % (key or "-", c["n_pred"], c["n_true"], a["tp"], fmt(a["precision"], ".3f"),
                        fmt(a["recall"], ".3f"), fmt(a["f1"], ".3f"), fmt(c["best_f1"], ".3f"),
                        fmt(c["pr_auc"], ".3f")))
    return "\n".join(lines)


def _curves(r):
    curves = {"all": r["all"]}
    if len(r["per_tomogram"]) > 1:
        curves.update(r["per_tomogram"])
    return curves


def writePickingFigures(prot, outDir=None) -> list:
    """Write picking_table.txt, pr_curve.png and (with scores)
    f1_threshold.png of ProtCryoTigerPickingMetrics ``prot`` into
    ``outDir`` (default extra/plots of ``prot``); returns the paths, the
    table first.  Raises ValueError when the protocol has no results yet."""
    from ..engine.plots import f1_threshold_figure, pr_curve_figure
    r, outDir = _results(prot), plotsFolder(prot, outDir)
    paths = [writeText(os.path.join(outDir, "picking_table.txt"), pickingTable(r)),
             pr_curve_figure(_curves(r), os.path.join(outDir, "pr_curve.png"),
                             title="tolerance %s A" % fmt(r["tolerance_A"]))]
    if r["scores"]:
        paths.append(f1_threshold_figure(_curves(r), os.path.join(outDir, "f1_threshold.png")))
    return paths


class CryoTigerPickingMetricsViewer(CryoTigerTableAndPlotViewer):
    """The table and precision-recall curves of ProtCryoTigerPickingMetrics."""
    _label = "picking metrics"
    _targets = [ProtCryoTigerPickingMetrics]
    _figsize = (5.5, 5)
    _windowTitle = "cryoTIGER: precision-recall"

    def _writeFiles(self, obj):
        return writePickingFigures(obj)

    def _draw(self, fig, obj):
        from ..engine.plots import draw_pr_curves
        draw_pr_curves(fig, _curves(_results(obj)))


# --- segmentation -------------------------------------------------------------
def segmentationTable(r) -> str:
    """Plain-text table of a segmentation-metrics result: Dice, Jaccard and
    Hausdorff distance (pixels and Angstrom) per tomogram."""
    lines = ["%-14s %8s %8s %12s %12s" % ("tomogram", "Dice", "Jaccard", "Hausdorff px", "Hausdorff A")]
    for key, s in r["per_tomogram"].items():
        lines.append("%-14s %8s %8s %12s %12s" % (key, fmt(s["dice"], ".4f"), fmt(s["jaccard"], ".4f"),
                                                  fmt(s["hausdorff_px"], ".3f"),
                                                  fmt(s["hausdorff_A"], ".1f")))
    return "\n".join(lines)


def _bars(r):
    return {k: {"Dice": s["dice"], "Jaccard": s["jaccard"]} for k, s in r["per_tomogram"].items()}


def writeSegmentationFigures(prot, outDir=None) -> list:
    """Write segmentation_table.txt and segmentation_overlap.png (Dice,
    Jaccard per tomogram) of ProtCryoTigerSegmentationMetrics ``prot`` into
    ``outDir`` (default extra/plots of ``prot``); returns the paths, the
    table first.  Raises ValueError when the protocol has no results yet."""
    from ..engine.plots import bar_figure
    r, outDir = _results(prot), plotsFolder(prot, outDir)
    return [writeText(os.path.join(outDir, "segmentation_table.txt"), segmentationTable(r)),
            bar_figure(_bars(r), os.path.join(outDir, "segmentation_overlap.png"),
                       title="segmentation overlap")]


class CryoTigerSegmentationMetricsViewer(CryoTigerTableAndPlotViewer):
    """The table and bar chart of ProtCryoTigerSegmentationMetrics."""
    _label = "segmentation metrics"
    _targets = [ProtCryoTigerSegmentationMetrics]
    _figsize = (6, 4)
    _windowTitle = "cryoTIGER: segmentation overlap"

    def _writeFiles(self, obj):
        return writeSegmentationFigures(obj)

    def _draw(self, fig, obj):
        from ..engine.plots import draw_bars
        draw_bars(fig, _bars(_results(obj)))
