"""ProtCryoTigerCompareTomograms: contrast of tomograms reconstructed in
different ways (e.g. from the acquired tilts, linear-densified, FILM-densified).

For every tomogram of every input set: the central slab of N z-slices, the
standard-deviation contrast (std of each slice, averaged over the slab) and
the gradient contrast (mean Sobel gradient magnitude per slice, averaged),
as in the cryoTIGER paper.  Tomograms are paired across sets by tsId (or by
position when the sets have no tsIds); paired t-test and two-sided Wilcoxon
signed-rank test between every two sets.  Results: extra/contrast.json
(see docs/evaluation.md); figures from the viewer.

Contrast values are in the tomograms' intensity units: compare tomograms made
by the same reconstruction program and settings, so the scales agree.
"""
import itertools

import pyworkflow.protocol.params as params

from ..convert import readVolume
from .evaluation_common import ProtCryoTigerEvaluation, fmt, itemsById, testsLines, writeJson
from ..constants import IN_TOMOGRAMS

CONTRAST_JSON = "contrast.json"
CONTRAST_METRICS = ("std", "gradient")


def setLabels(pointers):
    """Unique display names (list of str) for the selected sets
    (``pointers``: the Pointers of a MultiPointerParam, in order): the
    producing protocol's run name and output name, else 'set N'; repeated
    names get ' (2)', ' (3)'..."""
    names = []
    for k, p in enumerate(pointers, 1):
        name = None
        try:
            prot = p.getObjValue()
            ext = p.getExtended()
            if prot is not None and hasattr(prot, "getRunName"):
                name = prot.getRunName() + ("." + ext if ext else "")
        except Exception:
            name = None
        name = name or "set %d" % k
        base, j = name, 2
        while name in names:
            name = "%s (%d)" % (base, j)
            j += 1
        names.append(name)
    return names


class ProtCryoTigerCompareTomograms(ProtCryoTigerEvaluation):
    """Compare the contrast of two or more sets of tomograms (e.g. reconstructed
    without and with interpolated tilts): standard-deviation and gradient
    contrast of the central slab of each tomogram, with paired tests."""
    _label = "compare tomogram contrast"
    _possibleOutputs = {}    # results are files in extra/ shown by the viewer
    RESULTS_JSON = CONTRAST_JSON

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam(IN_TOMOGRAMS, params.MultiPointerParam, pointerClass="SetOfTomograms",
                      important=True, label="Sets of tomograms (2 or more)",
                      help="Tomograms of the same tilt series reconstructed in different ways. "
                           "They are paired by tsId (or by position when they have none).")
        form.addParam("slabThickness", params.IntParam, default=10, validators=[params.GE(1)],
                      label="Central slab (slices)",
                      help="Number of central z slices used (each slice's contrast is averaged).")

    def computeStep(self):
        """Step: compute the std and gradient contrast of each tomogram with engine.metrics
        and write the results JSON (extra/).

        Raises:
            ValueError: the sets share no tomogram (by tsId) and differ in size.
        """
        from ..engine import metrics as M
        pointers = list(self.inputTomograms)
        names = setLabels(pointers)
        items = [dict(itemsById(p.get())) for p in pointers]
        keys = [k for k in items[0] if all(k in d for d in items[1:])]
        if not keys and all(len(d) == len(items[0]) for d in items):
            # no common tsIds: pair by position
            items = [dict(("#%d" % i, v) for i, v in enumerate(d.values(), 1)) for d in items]
            keys = list(items[0])
        if not keys:
            raise ValueError("The sets share no tomogram (by tsId) and differ in size; select "
                             "tomograms of the same tilt series.")
        thickness = self.slabThickness.get()
        per = {}
        values = {n: {m: [] for m in CONTRAST_METRICS} for n in names}
        for key in keys:
            per[key] = {}
            for n, d in zip(names, items):
                c = M.tomogram_contrast(readVolume(d[key]), thickness)
                per[key][n] = c
                for m in CONTRAST_METRICS:
                    values[n][m].append(c[m])
                self.info("%s, %s: std %s, gradient %s" % (key, n, fmt(c["std"]), fmt(c["gradient"])))
        tests = [{"a": a, "b": b, "metric": m, **M.paired_tests(values[a][m], values[b][m])}
                 for a, b in itertools.combinations(names, 2) for m in CONTRAST_METRICS]
        medians = {n: {m: M.summarize(values[n][m])["median"] for m in CONTRAST_METRICS}
                   for n in names}
        writeJson(self.getResultsFile(), {"sets": names, "slab": thickness, "tsIds": keys,
                                          "tomograms": per, "values": values, "median": medians,
                                          "paired_tests": tests})

    # -------------------------- INFO -----------------------------------------
    def _validate(self):
        errors = []
        if len([p for p in self.inputTomograms if p.get() is not None]) < 2:
            errors.append("Select at least two sets of tomograms to compare.")
        return errors

    def _summary(self):
        r = self.getResults()
        if r is None:
            return ["Not computed yet."]
        lines = ["%d tomogram(s) per set, central slab of %d slices." % (len(r["tsIds"]), r["slab"])]
        for n in r["sets"]:
            lines.append("%s: median std contrast %s, median gradient contrast %s"
                         % (n, fmt(r["median"][n]["std"]), fmt(r["median"][n]["gradient"])))
        return lines + testsLines(r["paired_tests"])

    def _methods(self):
        r = self.getResults()
        if r is None:
            return []
        return ["Tomogram contrast was measured on the central %d slices as the standard deviation "
                "and the mean Sobel gradient magnitude of each slice [Majtner2025]; sets were "
                "compared with paired t-tests and two-sided Wilcoxon signed-rank tests." % r["slab"]]
