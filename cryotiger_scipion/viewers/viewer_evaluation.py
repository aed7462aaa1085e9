"""Viewers of the evaluation protocols: tomogram contrast, picking metrics,
segmentation metrics.

Each ``write*Figures(prot, outDir=None)`` function writes a text table and
PNG figures headless (matplotlib Figure + Agg canvas) into extra/plots and
returns the paths; the viewers show the table and draw the same figures in
Scipion plot windows.

Text views get ``tkParent=self.formWindow`` (the pyworkflow Window that
opened the viewer, or None): pyworkflow's text viewer needs a Window, not a
Tk widget (PARENT_NOTE; tests/scipion/test_protocol_evaluation.py opens
every viewer in a real Tk window).
"""
import os

from pyworkflow.viewer import DESKTOP_TKINTER, TextView, Viewer

from ..protocols.evaluation_common import fmt, testsLines
from ..protocols.protocol_compare_tomograms import CONTRAST_METRICS, ProtCryoTigerCompareTomograms
from ..protocols.protocol_picking_metrics import ProtCryoTigerPickingMetrics
from ..protocols.protocol_segmentation_metrics import ProtCryoTigerSegmentationMetrics


def _results(prot):
    r = prot.getResults()
    if r is None:
        raise ValueError("%s has no results yet (%s missing)" % (prot.getRunName(),
                                                                 prot.getResultsFile()))
    return r


def _out(prot, outDir):
    outDir = outDir or prot._getExtraPath("plots")
    os.makedirs(outDir, exist_ok=True)
    return outDir


def _writeText(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


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
    """contrast_table.txt and contrast_boxplots.png (std and gradient, one box per set)."""
    from ..engine.plots import boxplots_figure
    r, outDir = _results(prot), _out(prot, outDir)
    return [_writeText(os.path.join(outDir, "contrast_table.txt"), contrastTable(r)),
            boxplots_figure(_contrastPanels(r), os.path.join(outDir, "contrast_boxplots.png"),
                            title="tomogram contrast (central %d slices)" % r["slab"])]


class CryoTigerCompareTomogramsViewer(Viewer):
    """The table and bar chart of ProtCryoTigerCompareTomograms."""
    _label = "tomogram contrast"
    _targets = [ProtCryoTigerCompareTomograms]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        from ..engine.plots import draw_boxplots
        paths = writeContrastFigures(obj)
        r = _results(obj)
        p = Plotter(figsize=(9, 4.2), windowTitle="cryoTIGER: tomogram contrast")
        draw_boxplots(p.figure, _contrastPanels(r))
        return [TextView([paths[0]], title="tomogram contrast", tkParent=self.formWindow), p]


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
    """picking_table.txt, pr_curve.png and (with scores) f1_threshold.png."""
    from ..engine.plots import f1_threshold_figure, pr_curve_figure
    r, outDir = _results(prot), _out(prot, outDir)
    paths = [_writeText(os.path.join(outDir, "picking_table.txt"), pickingTable(r)),
             pr_curve_figure(_curves(r), os.path.join(outDir, "pr_curve.png"),
                             title="tolerance %s A" % fmt(r["tolerance_A"]))]
    if r["scores"]:
        paths.append(f1_threshold_figure(_curves(r), os.path.join(outDir, "f1_threshold.png")))
    return paths


class CryoTigerPickingMetricsViewer(Viewer):
    """The table and precision-recall curves of ProtCryoTigerPickingMetrics."""
    _label = "picking metrics"
    _targets = [ProtCryoTigerPickingMetrics]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        from ..engine.plots import draw_pr_curves
        paths = writePickingFigures(obj)
        p = Plotter(figsize=(5.5, 5), windowTitle="cryoTIGER: precision-recall")
        draw_pr_curves(p.figure, _curves(_results(obj)))
        return [TextView([paths[0]], title="picking metrics", tkParent=self.formWindow), p]


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
    """segmentation_table.txt and segmentation_overlap.png (Dice, Jaccard per tomogram)."""
    from ..engine.plots import bar_figure
    r, outDir = _results(prot), _out(prot, outDir)
    return [_writeText(os.path.join(outDir, "segmentation_table.txt"), segmentationTable(r)),
            bar_figure(_bars(r), os.path.join(outDir, "segmentation_overlap.png"),
                       title="segmentation overlap")]


class CryoTigerSegmentationMetricsViewer(Viewer):
    """The table and bar chart of ProtCryoTigerSegmentationMetrics."""
    _label = "segmentation metrics"
    _targets = [ProtCryoTigerSegmentationMetrics]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        from pyworkflow.gui.plotter import Plotter
        from ..engine.plots import draw_bars
        paths = writeSegmentationFigures(obj)
        p = Plotter(figsize=(6, 4), windowTitle="cryoTIGER: segmentation overlap")
        draw_bars(p.figure, _bars(_results(obj)))
        return [TextView([paths[0]], title="segmentation metrics", tkParent=self.formWindow), p]
