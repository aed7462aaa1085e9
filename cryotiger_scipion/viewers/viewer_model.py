"""Viewer of a CryoTigerModel (output of ProtCryoTigerTrain): the training
loss and the validation PSNR/SSIM curves (with the linear baseline), the
network configuration, the parameter count and the training settings, read
from the ``cryotiger_train.json`` that the engine writes into the model folder.

:func:`writeModelFigures` writes the table and a PNG headless; the viewer
shows the same in a text window and a Scipion plot window.
"""
import os

from ..constants import OUT_MODEL
from ..convert import readTrainingRecord
from ..objects import CryoTigerModel
from ..protocols.protocol_train import ProtCryoTigerTrain
from .viewer_base import CryoTigerTableAndPlotViewer, savePng, writeText



def modelOf(obj):
    """The CryoTigerModel of ``obj`` (a CryoTigerModel, or a training
    protocol and its output ``Model``).  Raises ValueError when the protocol
    has no model yet."""
    if isinstance(obj, CryoTigerModel):
        return obj
    model = getattr(obj, OUT_MODEL, None)
    if model is None:
        raise ValueError("%s has no model yet" % obj.getRunName())
    return model


def trainingRecord(model) -> dict:
    """The training record (cryotiger_train.json) of ``model``; {} for a
    model the plugin did not train (e.g. a published one)
    (``convert.readTrainingRecord``)."""
    return readTrainingRecord(model.getAbsPath())


def modelTable(model) -> str:
    """Plain-text description: folder, parameters, configuration, training."""
    r = trainingRecord(model)
    lines = ["model folder: %s" % model.getAbsPath()]
    if not r:
        return "\n".join(lines + ["(no training record: not trained by this plugin)"])
    lines.append("parameters: %s" % ("{:,}".format(r["parameters"]) if "parameters" in r else "unknown"))
    lines.append("started from: %s" % (r.get("init") or "random weights"))
    lines.append("steps: %s (stopped on %s, %.0f s)" % (r.get("step"), r.get("stopped", "?"),
                                                        r.get("seconds", 0) or 0))
    db = r.get("database", {})
    if db:
        lines.append("training patches: %s px, triplet spacing %s, %d series"
                     % (db.get("patch_size"), db.get("spacings"), len(db.get("series", []))))
    val = r.get("validation") or {}
    if val:
        lines.append("final validation: PSNR %.2f dB (linear %.2f), SSIM %.4f (linear %.4f)"
                     % (val.get("psnr", float("nan")), val.get("linear_psnr", float("nan")),
                        val.get("ssim", float("nan")), val.get("linear_ssim", float("nan"))))
    lines += ["", "network configuration:"] + ["  %s: %s" % kv for kv in
                                               sorted((r.get("film_config") or {}).items())]
    lines += ["", "training settings:"] + ["  %s: %s" % kv for kv in sorted((r.get("train") or {}).items())]
    return "\n".join(lines)


def drawModelCurves(fig, record: dict) -> None:
    """Draw two panels into the matplotlib Figure ``fig``: training loss per
    step, and validation PSNR (dB) of the model and of linear interpolation,
    from a training ``record`` (:func:`trainingRecord`; {} draws empty panels)."""
    ax1 = fig.add_subplot(1, 2, 1)
    losses = record.get("losses") or []
    if losses:
        start = int(record.get("step", len(losses))) - len(losses) + 1
        ax1.plot(range(start, start + len(losses)), losses, lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.set_title("training loss" if losses else "training loss (not recorded)")
    ax2 = fig.add_subplot(1, 2, 2)
    hist = record.get("history") or []
    if hist:
        steps = [h["step"] for h in hist]
        ax2.plot(steps, [h.get("psnr") for h in hist], "o-", label="model")
        ax2.plot(steps, [h.get("linear_psnr") for h in hist], "s--", label="linear")
        ax2.legend()
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation PSNR (dB)")
    ax2.set_title("validation" if hist else "validation (none recorded)")


def writeModelFigures(obj, outDir: str = None) -> list:
    """model_table.txt and model_curves.png (headless) for a model or a
    training protocol; into ``outDir`` (default: the model folder's parent
    /plots).  Returns the paths."""
    model = modelOf(obj)
    outDir = outDir or os.path.join(os.path.dirname(model.getAbsPath()), "plots")
    os.makedirs(outDir, exist_ok=True)
    table = writeText(os.path.join(outDir, "model_table.txt"), modelTable(model))
    record = trainingRecord(model)
    png = savePng(lambda fig: drawModelCurves(fig, record),
                  os.path.join(outDir, "model_curves.png"), figsize=(10, 4), dpi=100)
    return [table, png]


class CryoTigerModelViewer(CryoTigerTableAndPlotViewer):
    """Loss and validation curves, configuration and size of a FILM model."""
    _label = "cryoTIGER model"
    _targets = [CryoTigerModel, ProtCryoTigerTrain]
    _figsize = (10, 4)
    _windowTitle = "cryoTIGER model: training curves"

    def _writeFiles(self, obj):
        return writeModelFigures(obj)

    def _draw(self, fig, obj):
        drawModelCurves(fig, trainingRecord(modelOf(obj)))
