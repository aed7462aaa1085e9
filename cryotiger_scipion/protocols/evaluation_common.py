"""Helpers shared by the evaluation protocols, and their base class
:class:`ProtCryoTigerEvaluation` (not shown in the GUI: no _label).

The maths lives in ``cryotiger_scipion.engine.metrics`` (numpy/scipy only,
safe to import in Scipion's Python); the figures in ``engine.plots``
(matplotlib Figure + Agg canvas, headless).  Volumes are read as (z, y, x)
float32 arrays; pixel sizes in Angstrom.
"""
import json
import os
from typing import Dict, List, Tuple

import pyworkflow as pw
from pwem.protocols import EMProtocol



def itemsById(objSet) -> List[Tuple[str, object]]:
    """[(key, clone)] of the enabled items of a set of volumes (SetOfTomograms,
    SetOfTomoMasks), in set order.  The key is the tsId, or "#<position>"
    (1-based) when an item has none."""
    out = []
    for k, item in enumerate(objSet.iterItems(orderBy="id"), 1):
        if hasattr(item, "isEnabled") and not item.isEnabled():
            continue
        tsId = item.getTsId() if hasattr(item, "getTsId") else None
        out.append((tsId or "#%d" % k, item.clone()))
    return out


def pairItems(setA, setB, labelA="first set", labelB="second set") -> List[Tuple[str, object, object]]:
    """[(key, itemA, itemB)]: the items of two sets of volumes paired by tsId
    (or by position when either set lacks tsIds; see :func:`itemsById`).
    ``labelA``/``labelB`` name the sets in messages.  Raises ValueError naming
    the problem when no tsId is shared, or when sets without tsIds differ in
    size."""
    a, b = itemsById(setA), itemsById(setB)
    if all(not k.startswith("#") for k, _ in a) and all(not k.startswith("#") for k, _ in b):
        db = dict(b)
        pairs = [(k, x, db[k]) for k, x in a if k in db]
        if not pairs:
            raise ValueError("no tomogram id (tsId) is shared by the %s (%s) and the %s (%s); "
                             "select sets made from the same tilt series"
                             % (labelA, ", ".join(k for k, _ in a[:5]), labelB,
                                ", ".join(k for k, _ in b[:5])))
        return pairs
    if len(a) != len(b):
        raise ValueError("the %s has %d items and the %s %d, and they have no tsIds to pair them; "
                         "select sets of the same size" % (labelA, len(a), labelB, len(b)))
    return [(ka, x, y) for (ka, x), (_, y) in zip(a, b)]


def writeJson(path: str, data) -> None:
    """Write ``data`` (numpy values made plain, NaN/inf as null:
    metrics.json_safe) as JSON to ``path``, atomically (a reader never sees
    half a file).  OSError when it cannot be written."""
    from ..engine.outputs import atomic_path
    from ..engine.metrics import json_safe
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=1)


def readJson(path: str):
    """The JSON at ``path`` (OSError/ValueError when missing or invalid)."""
    with open(path) as f:
        return json.load(f)


def readJsonIfExists(path: str):
    """The JSON at ``path``, or None when there is no such file (a protocol
    whose step has not run yet).  Raises ValueError when the file is not
    valid JSON, OSError when it cannot be read."""
    return readJson(path) if os.path.exists(path) else None


def fmt(v, spec=".4g") -> str:
    """``v`` formatted with ``spec`` (e.g. '.3f'); str(v) when it is not a
    number (None); 'nan'/'inf' as Python writes them."""
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def testsLines(tests: List[Dict]) -> List[str]:
    """One summary line per paired test: ``tests`` are dicts from
    engine.metrics.paired_tests plus the names ``a``, ``b`` and ``metric``
    (n, mean difference, t-test and Wilcoxon p-values)."""
    return ["%s vs %s, %s: n=%d, mean diff %s, paired t p=%s, Wilcoxon p=%s"
            % (t["a"], t["b"], t["metric"], t["n"], fmt(t["mean_diff"]), fmt(t["t_pvalue"], ".3g"),
               fmt(t["wilcoxon_pvalue"], ".3g")) for t in tests]


class ProtCryoTigerEvaluation(EMProtocol):
    """Base of the evaluation protocols whose result is one JSON file in
    extra/ (tomogram contrast, picking and segmentation metrics), shown by
    their viewers: one step, ``computeStep`` (each subclass's), no Scipion
    output objects.  Subclasses set :attr:`RESULTS_JSON`, the file name, and
    declare ``_possibleOutputs = {}`` themselves (Scipion's convention, checked
    by tests/scipion/test_discovery.py)."""
    _devStatus = pw.BETA
    #: Name of the results file in extra/ (set by each subclass).
    RESULTS_JSON = None

    def _insertAllSteps(self):
        self._insertFunctionStep(self.computeStep)

    def computeStep(self):
        """Step: compute the metrics and write :meth:`getResultsFile` (subclasses).

        Raises:
            NotImplementedError: always here; every evaluation protocol defines it.
        """
        raise NotImplementedError

    def getResultsFile(self) -> str:
        """Path of the results JSON (extra/<RESULTS_JSON>)."""
        return self._getExtraPath(self.RESULTS_JSON)

    def getResults(self):
        """The results as a dict, or None before the compute step ran
        (ValueError when the file is not valid JSON)."""
        return readJsonIfExists(self.getResultsFile())

    def _citations(self):
        return ["Majtner2025"]
