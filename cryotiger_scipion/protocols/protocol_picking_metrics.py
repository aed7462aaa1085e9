"""ProtCryoTigerPickingMetrics: picked 3D coordinates against ground truth.

Positions are compared in Angstrom (pixel coordinates times each set's
sampling rate) in ONE explicit convention, the form's "Coordinates relative
to": the tomogram's bottom-left corner (default; tomo's BOTTOM_LEFT_CORNER,
as IMOD, EMAN and crYOLO write them; needs each coordinate's tomogram) or the
tomogram's centre (Scipion's stored values; no tomogram needed).  A
coordinate that cannot be given in the chosen convention is an error naming
the fix, never silently read in the other one.  Tomogram by tomogram
(coordinates' tomoId).  Each prediction matches at most one true position and
vice versa (optimal assignment within the tolerance; engine/metrics.py).  With
a score attribute that varies, precision/recall/F1 are computed at every score
threshold (PR curve, PR-AUC = average precision); otherwise one point.
Results: extra/picking.json (``all``: pooled over tomograms, ``per_tomogram``);
figures from the viewer.

Ground truth: another SetOfCoordinates3D, or a text file of one position per
line (x y z or z y x, pixels in the same convention; commas or spaces),
used when the picked set covers one tomogram.
"""
import os
from typing import Dict

import numpy as np

import pyworkflow.protocol.params as params

from .evaluation_common import ProtCryoTigerEvaluation, fmt, writeJson
from ..constants import IN_COORDINATES

PICKING_JSON = "picking.json"
GT_COORDINATES = 0
GT_FILE = 1
COLUMNS = ["x y z", "z y x"]
ORIGIN_CORNER = "corner"
ORIGIN_CENTRE = "centre"
ORIGINS = [ORIGIN_CORNER, ORIGIN_CENTRE]
ORIGIN_LABELS = ["tomogram bottom-left corner", "tomogram centre (Scipion)"]


def coordinatesByTomo(coordSet, scoreAttr: str = "_score", sampling: float = None,
                      origin: str = ORIGIN_CORNER) -> Dict[str, dict]:
    """{tomoId: {'pos': (n, 3) Angstrom array (x, y, z), 'score': (n,) or None}}
    of a SetOfCoordinates3D, positions relative to ``origin``: 'corner' (the
    tomogram's bottom-left corner, tomo's BOTTOM_LEFT_CORNER; needs the
    coordinate's tomogram) or 'centre' (Scipion's stored values, relative to
    the tomogram's origin, by default its centre).  Raises ValueError naming
    the coordinate when 'corner' is asked and its tomogram is not known."""
    from tomo.constants import BOTTOM_LEFT_CORNER, SCIPION
    if origin not in ORIGINS:
        raise ValueError("coordinate origin %r: use one of %s" % (origin, ", ".join(ORIGINS)))
    sampling = float(sampling or coordSet.getSamplingRate() or 1.0)
    out: Dict[str, dict] = {}
    def corners():
        try:
            yield from coordSet.iterCoordinates()     # coordinates with their tomograms
        except Exception as e:
            raise ValueError(
                "%s: its coordinates cannot be referred to their tomograms' bottom-left corner "
                "(tomograms not found: %s): import the coordinates with their tomograms, or set "
                "'Coordinates relative to' to the tomogram centre for both sets"
                % (coordSet.getNameId() if hasattr(coordSet, "getNameId") else "the set", e)) from None
    items = coordSet.iterItems() if origin == ORIGIN_CENTRE else corners()
    for c in items:
        if origin == ORIGIN_CENTRE:
            x, y, z = c.getPosition(SCIPION)
        else:
            try:
                x, y, z = c.getPosition(BOTTOM_LEFT_CORNER)
            except Exception as e:
                raise ValueError(
                    "coordinate %s (tomogram '%s') of %s cannot be referred to its tomogram's "
                    "bottom-left corner (%s): import the coordinates with their tomograms, or "
                    "set 'Coordinates relative to' to the tomogram centre for both sets"
                    % (c.getObjId(), c.getTomoId(), coordSet.getNameId() if hasattr(
                        coordSet, "getNameId") else "the set", e)) from None
        d = out.setdefault(c.getTomoId() or "", {"pos": [], "score": []})
        d["pos"].append((x, y, z))
        s = getattr(c, scoreAttr, None) if scoreAttr else None
        d["score"].append(s.get() if hasattr(s, "get") else s)
    for d in out.values():
        d["pos"] = np.asarray(d["pos"], dtype=float).reshape(-1, 3) * sampling
        sc = d["score"]
        d["score"] = None if any(v is None for v in sc) else np.asarray(sc, dtype=float)
    return out


def readPositionsFile(path: str, columns: str = "x y z") -> np.ndarray:
    """(n, 3) x, y, z pixel positions from a text file (commas or spaces; '#' comments).

    ``columns``: the order of the three numbers on a line (e.g. "z y x").

    Raises:
        ValueError: a line without three numbers (names the file and line).
        OSError: the file cannot be read.
    """
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#")[0].replace(",", " ").split()
            if not text:
                continue
            try:
                v = [float(t) for t in text[:3]]
            except ValueError:
                raise ValueError("%s, line %d: expected three numbers (%s), found '%s'"
                                 % (path, lineno, columns, line.strip())) from None
            if len(v) < 3:
                raise ValueError("%s, line %d: expected three numbers (%s)" % (path, lineno, columns))
            rows.append(v)
    pos = np.asarray(rows, dtype=float).reshape(-1, 3)
    return pos[:, ::-1] if columns == "z y x" else pos


class ProtCryoTigerPickingMetrics(ProtCryoTigerEvaluation):
    """Precision, recall, F1 over score thresholds, PR curve and PR-AUC of picked
    3D coordinates against ground-truth positions (one-to-one matching within a
    distance tolerance)."""
    _label = "picking metrics"
    _possibleOutputs = {}    # results are files in extra/ shown by the viewer
    RESULTS_JSON = PICKING_JSON

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam(IN_COORDINATES, params.PointerParam, pointerClass="SetOfCoordinates3D",
                      important=True, label="Picked coordinates",
                      help="Coordinates to evaluate (e.g. template matching on a tomogram "
                           "reconstructed with interpolated tilts).")
        form.addParam("scoreAttribute", params.StringParam, default="_score",
                      label="Score attribute",
                      help="Coordinate attribute holding the picking score (tomo's Coordinate3D: "
                           "_score). When it is missing or constant, one precision/recall point "
                           "is computed instead of a curve.")
        form.addParam("gtSource", params.EnumParam, choices=["coordinates", "text file"],
                      default=GT_COORDINATES, display=params.EnumParam.DISPLAY_HLIST,
                      label="Ground truth from",
                      help="coordinates: a SetOfCoordinates3D (matched tomogram by tomogram). "
                           "text file: positions of one tomogram, one per line.")
        form.addParam("gtCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D",
                      allowsNull=True, condition="gtSource==%d" % GT_COORDINATES,
                      label="True coordinates", help="Matched tomogram by tomogram (tomoId).")
        form.addParam("gtFile", params.PathParam, condition="gtSource==%d" % GT_FILE,
                      label="True positions file",
                      help="One position per line in pixels, relative to the origin chosen in "
                           "'Coordinates relative to' (commas or spaces). Only when the picked "
                           "coordinates belong to one tomogram.")
        form.addParam("gtColumns", params.EnumParam, choices=COLUMNS, default=0,
                      condition="gtSource==%d" % GT_FILE, label="Column order",
                      help="Order of the three numbers on each line of the file (e.g. z y x as "
                           "numpy or cylindra write them).")
        form.addParam("gtPixelSize", params.FloatParam, default=0,
                      condition="gtSource==%d" % GT_FILE, label="Pixel size of the file (Å)",
                      help="0: the picked coordinates' sampling rate.")
        form.addParam("origin", params.EnumParam, choices=ORIGIN_LABELS, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Coordinates relative to",
                      help="The one convention both sets (and the ground-truth file) are compared "
                           "in. Bottom-left corner of the tomogram: as IMOD, EMAN, crYOLO write "
                           "positions; needs the tomograms of the coordinates (a coordinate "
                           "without one is an error). Centre: Scipion's stored values, no "
                           "tomogram needed; use it only when both sets come from tomograms of "
                           "the same size and origin.")
        form.addParam("tolerance", params.FloatParam, default=50.0, validators=[params.GT(0)],
                      label="Tolerance (Å)",
                      help="A pick within this distance of a true position can match it "
                           "(each true position at most once).")

    def computeStep(self):
        """Step: compute the precision/recall/F1/PR-AUC per tomogram with engine.metrics
        and write the results JSON (extra/)."""
        from ..engine import metrics as M
        pred = coordinatesByTomo(self.inputCoordinates.get(), self.scoreAttribute.get(),
                                 origin=self.getOrigin())
        truth = self._groundTruth(pred)
        tol = float(self.tolerance.get())
        keys = sorted(set(pred) | set(truth))
        useScores = all(pred.get(k, {}).get("score") is not None for k in pred) and \
            len(np.unique(np.concatenate([pred[k]["score"] for k in pred] or [[]]))) > 1
        per, allP, allT, allS = {}, [], [], []
        # Tomograms are pooled side by side along x, far apart (no cross matches).
        empty = np.zeros((0, 3))
        both = {k: np.concatenate([pred.get(k, {}).get("pos", empty), truth.get(k, empty)])
                for k in keys}
        span = max([np.ptp(b, axis=0).max() for b in both.values() if len(b)] + [0.0])
        shift = span + 10 * tol + 1.0
        for j, k in enumerate(keys):
            P = pred.get(k, {}).get("pos", empty)
            S = pred.get(k, {}).get("score") if useScores else None
            T = truth.get(k, empty)
            per[k] = M.detection_curve(P, T, tol, scores=S)
            self.info("%s: %d picked, %d true, F1 %s (all picks), best F1 %s, PR-AUC %s"
                      % (k or "(no tomoId)", len(P), len(T), fmt(per[k]["all"]["f1"]),
                         fmt(per[k]["best_f1"]), fmt(per[k]["pr_auc"])))
            if len(both[k]):
                origin = both[k].min(axis=0) - np.array([j * shift, 0.0, 0.0])
                allP.append(P - origin)
                allT.append(T - origin)
            if S is not None:
                allS.append(S)
        allP = allP or [empty]
        allT = allT or [empty]
        pooled = M.detection_curve(np.concatenate(allP), np.concatenate(allT), tol,
                                   scores=np.concatenate(allS) if useScores else None)
        writeJson(self.getResultsFile(), {"tolerance_A": tol, "scores": bool(useScores),
                                          "origin": self.getOrigin(),
                                          "all": pooled, "per_tomogram": per})

    def _groundTruth(self, pred) -> Dict[str, np.ndarray]:
        if self.gtSource.get() == GT_COORDINATES:
            return {k: v["pos"] for k, v in coordinatesByTomo(self.gtCoordinates.get(), None,
                                                              origin=self.getOrigin()).items()}
        if len(pred) > 1:
            raise ValueError("The picked coordinates cover %d tomograms but a ground-truth file "
                             "holds positions for one; import the true positions as coordinates "
                             "(tomo - import coordinates 3D) and select them instead." % len(pred))
        pixel = self.gtPixelSize.get() or self.inputCoordinates.get().getSamplingRate()
        pos = readPositionsFile(self.gtFile.get(), COLUMNS[self.gtColumns.get()]) * float(pixel)
        return {next(iter(pred)) if pred else "": pos}

    def getOrigin(self) -> str:
        """'corner' or 'centre' (the form's 'Coordinates relative to')."""
        return ORIGINS[self.origin.get() or 0]

    # -------------------------- INFO -----------------------------------------
    def _validate(self):
        errors = []
        if self.gtSource.get() == GT_COORDINATES and self.gtCoordinates.get() is None:
            errors.append("Select the true coordinates (or choose a ground-truth file).")
        if self.gtSource.get() == GT_FILE:
            f = self.gtFile.get()
            if not f or not os.path.exists(f):
                errors.append("Ground-truth file %s not found; give a text file with one position "
                              "per line." % f)
        return errors

    def _summary(self):
        r = self.getResults()
        if r is None:
            return ["Not computed yet."]
        a = r["all"]
        lines = ["Tolerance %s A; %d picked, %d true positions." % (fmt(r["tolerance_A"]), a["n_pred"],
                                                                  a["n_true"]),
                 "All picks: precision %s, recall %s, F1 %s."
                 % (fmt(a["all"]["precision"], ".3f"), fmt(a["all"]["recall"], ".3f"),
                    fmt(a["all"]["f1"], ".3f"))]
        if r["scores"]:
            lines.append("Best F1 %s at score >= %s; PR-AUC %s."
                         % (fmt(a["best_f1"], ".3f"), fmt(a["best_threshold"]), fmt(a["pr_auc"], ".3f")))
        return lines

    def _methods(self):
        r = self.getResults()
        if r is None:
            return []
        return ["Picks were matched one-to-one to ground-truth positions within %s A (optimal "
                "assignment); precision, recall, F1 and the area under the precision-recall curve "
                "(average precision) were computed [Majtner2025]." % fmt(r["tolerance_A"])]
