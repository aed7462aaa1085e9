"""ProtCryoTigerSegmentationMetrics: overlap of two segmentations.

Two sets of masks (SetOfTomoMasks, or SetOfTomograms read as masks) paired by
tsId (or position); a voxel is foreground when its value is above the
threshold of its set.  Per pair: Dice, Jaccard, symmetric Hausdorff distance
(all foreground voxels, Euclidean) in pixels and Angstrom (the first set's
sampling rate).  Results: extra/segmentation.json; figures from the viewer.
"""
import pyworkflow.protocol.params as params

from ..convert import readVolume
from .evaluation_common import ProtCryoTigerEvaluation, fmt, pairItems, writeJson
from ..constants import IN_MASKS_A, IN_MASKS_B

SEGMENTATION_JSON = "segmentation.json"


class ProtCryoTigerSegmentationMetrics(ProtCryoTigerEvaluation):
    """Compare two segmentations (e.g. from tomograms with and without
    interpolated tilts, or against a reference): Dice, Jaccard and Hausdorff."""
    _label = "segmentation metrics"
    _possibleOutputs = {}    # results are files in extra/ shown by the viewer
    RESULTS_JSON = SEGMENTATION_JSON

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam(IN_MASKS_A, params.PointerParam, pointerClass="SetOfTomoMasks,SetOfTomograms",
                      important=True, label="Masks A",
                      help="Segmentation to evaluate (tomo masks, or tomograms used as masks).")
        form.addParam("thresholdA", params.FloatParam, default=0.5, label="Threshold A",
                      help="Voxels above this value are foreground.")
        form.addParam(IN_MASKS_B, params.PointerParam, pointerClass="SetOfTomoMasks,SetOfTomograms",
                      important=True, label="Masks B (reference)",
                      help="The segmentation to compare with. Paired with A by tsId.")
        form.addParam("thresholdB", params.FloatParam, default=0.5, label="Threshold B",
                      help="Voxels of masks B above this value are foreground.")

    def computeStep(self):
        """Step: compute the Dice/Jaccard/Hausdorff per tomogram pair with engine.metrics
        and write the results JSON (extra/).

        Raises:
            ValueError: a pair of masks whose sizes differ.
        """
        from ..engine import metrics as M
        setA, setB = self.inputMasksA.get(), self.inputMasksB.get()
        pixelSize = float(setA.getSamplingRate() or 0) or None
        results = {}
        for key, a, b in pairItems(setA, setB, "masks A", "masks B"):
            va = readVolume(a) > self.thresholdA.get()
            vb = readVolume(b) > self.thresholdB.get()
            if va.shape != vb.shape:
                raise ValueError("%s: mask A is %s voxels (z, y, x) but mask B is %s; compare masks "
                                 "of tomograms of the same size" % (key, va.shape, vb.shape))
            results[key] = M.segmentation_scores(va, vb, pixel_size=pixelSize)
            self.info("%s: Dice %s, Jaccard %s, Hausdorff %s px"
                      % (key, fmt(results[key]["dice"]), fmt(results[key]["jaccard"]),
                         fmt(results[key]["hausdorff_px"])))
        summary = {m: M.summarize([r[m] for r in results.values()])
                   for m in ("dice", "jaccard", "hausdorff_px", "hausdorff_A")}
        writeJson(self.getResultsFile(), {"pixel_size": pixelSize, "per_tomogram": results,
                                          "summary": summary,
                                          "thresholds": [self.thresholdA.get(), self.thresholdB.get()]})

    def _validate(self):
        errors = []
        a, b = self.inputMasksA.get(), self.inputMasksB.get()
        if a is not None and b is not None and a.getSamplingRate() and b.getSamplingRate() and \
                abs(a.getSamplingRate() - b.getSamplingRate()) > 1e-3 * a.getSamplingRate():
            errors.append("Masks A are at %.3f Å/px and masks B at %.3f Å/px; compare masks at the "
                          "same sampling (rescale one set first)."
                          % (a.getSamplingRate(), b.getSamplingRate()))
        return errors

    def _summary(self):
        r = self.getResults()
        if r is None:
            return ["Not computed yet."]
        lines = []
        for key, s in r["per_tomogram"].items():
            lines.append("%s: Dice %s, Jaccard %s, Hausdorff %s px (%s A)"
                         % (key, fmt(s["dice"]), fmt(s["jaccard"]), fmt(s["hausdorff_px"]),
                            fmt(s["hausdorff_A"])))
        return lines

    def _methods(self):
        return ["Segmentations were compared with the Dice coefficient, the Jaccard index and "
                "the symmetric Hausdorff distance [Majtner2025]."] if self.getResults() else []
