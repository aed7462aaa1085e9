"""ProtCryoTigerHoldout: compare interpolation methods on real tilts.

For each aligned tilt series, ``cryotiger holdout`` drops every second tilt,
synthesises it back from its neighbours with each selected method (linear,
published FILM models, trained models, model folders) and compares it with
the real tilt: PSNR, RMSE, SSIM per held-out tilt (engine/holdout.py; data
range: see its module doc).  Results:

* extra/<tsId>/holdout.json: the engine's report for that series, and
  extra/<tsId>/plots/ its box plots;
* extra/holdout_summary.json: all series pooled (``methods`` -> name ->
  ``psnr``/``rmse``/``ssim`` lists, medians, ``series``), per-series medians
  and paired tests (t-test, Wilcoxon) between every two methods.

The viewer (viewers/viewer_holdout.py) shows the table, box plots and tests.
"""
import os
import re

import pyworkflow.protocol.params as params

from .. import Plugin
from tomo.objects import SetOfTiltSeries

from ..constants import MODEL_CRYOTIGER, MODEL_VIMEO, MODELS_INSTALL_HINT, OUT_FAILED
from .evaluation_common import fmt, readJson, readJsonIfExists, testsLines, writeJson
from ..convert import EngineInputs, validateTiltSeriesFiles
from .forms import addInputTiltSeriesParam, validateAlignedInput
from .protocol_base import ProtCryoTigerBase, findSavedModel

SUMMARY_JSON = "holdout_summary.json"
DATA_RANGES = ["tilt", "robust", "stack"]


def _safeName(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text or "").strip("_") or "model"


class ProtCryoTigerHoldout(ProtCryoTigerBase):
    """Evaluate interpolation methods side by side: every second tilt is held
    out, synthesised back from its neighbours by each method and compared with
    the real one (PSNR, RMSE, SSIM; box plots and paired tests in the viewer)."""
    _label = "hold-out evaluation"
    # results: extra/holdout_summary.json (viewer); series that failed: FailedTiltSeries
    _possibleOutputs = {OUT_FAILED: SetOfTiltSeries}

    def _defineParams(self, form):
        form.addSection(label="Input")
        addInputTiltSeriesParam(form, help="Aligned (or with transforms, then applied) tilt "
                                           "series, ideally with small angular steps (e.g. 2 "
                                           "degrees: held-out tilts are restored across a "
                                           "4-degree gap).")
        form.addParam("useLinear", params.BooleanParam, default=True, label="Linear interpolation?",
                      help="Pixel-wise mean of the neighbours weighted by angular distance (the "
                           "paper's baseline).")
        form.addParam("useCryoTiger", params.BooleanParam, default=False,
                      label="FILM, published cryoTIGER model?",
                      help="Looked up as %s/ in the plugin's models folder (CRYOTIGER_MODELS)."
                           % MODEL_CRYOTIGER)
        form.addParam("useVimeo", params.BooleanParam, default=False,
                      label="FILM, published Vimeo-90K model?",
                      help="Looked up as %s/ in the plugin's models folder." % MODEL_VIMEO)
        form.addParam("trainedModels", params.MultiPointerParam, pointerClass="CryoTigerModel",
                      allowsNull=True, label="FILM, trained models",
                      help="Models trained with the plugin (each evaluated as its own method).")
        form.addParam("modelFolders", params.StringParam, default="", label="FILM, model folders",
                      help="Other FILM SavedModel folders, separated by ';' (each its own method, "
                           "named after the folder).")
        form.addParam("dataRange", params.EnumParam, choices=DATA_RANGES, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Data range (PSNR, SSIM)",
                      help="From the REAL tilt only, the same for every method. tilt: max - min "
                           "of the real tilt; robust: its 0.5-99.5 percentile range (ignores "
                           "hot pixels, gold); stack: max - min of the whole series.")
        form.addParam("defocusDiff", params.BooleanParam, default=False,
                      label="Defocus difference?",
                      help="Also estimate the defocus of every real and synthetic held-out tilt "
                           "with the built-in CTF estimator (voltage, Cs and amplitude contrast "
                           "from the tilt series' acquisition) and report |difference| in "
                           "Angstrom, as the paper's Fig. 2 (linear ~50 nm).")
        form.addParam("defocusRange", params.StringParam, default="5000 80000",
                      condition="defocusDiff", label="Defocus search range (Å)",
                      help="Two numbers, underfocus positive.")
        group = form.addGroup("FILM options")
        group.addParam("tileSize", params.IntParam, default=0, label="Tile size (px)",
                       help="0: chosen from the memory budget.")
        group.addParam("maxMemory", params.FloatParam, default=0, label="Max memory (GiB)",
                       help="0: the engine's default.")
        self._defineGpuParams(form)
        form.addParallelSection(threads=1, mpi=0)

    # -------------------------- methods --------------------------------------
    def getMethodList(self):
        """The selected methods as [(name, method, model folder or None)] in
        the order shown: name unique (suffix -2, -3... on a clash), method
        'linear' or 'film', the SavedModel folder of a FILM method (None when
        it is not found; the validation says so)."""
        out, used = [], set()

        def add(name, method, model):
            base, k = name, 2
            while name in used:
                name = "%s-%d" % (base, k)
                k += 1
            used.add(name)
            out.append((name, method, model))

        if self.useLinear.get():
            add("linear", "linear", None)
        for flag, label, sub in ((self.useCryoTiger.get(), "cryoTIGER", MODEL_CRYOTIGER),
                                 (self.useVimeo.get(), "Vimeo-90K", MODEL_VIMEO)):
            if flag:
                add(label, "film", findSavedModel(os.path.join(Plugin.getModelsDir(), sub)))
        for k, p in enumerate(self.trainedModels or [], 1):
            model = p.get()
            if model is None:
                continue
            label = model.getObjLabel() or "trained-%d" % k
            add(_safeName(label), "film", findSavedModel(model.getAbsPath()))
        for folder in [f.strip() for f in (self.modelFolders.get() or "").split(";") if f.strip()]:
            add(_safeName(os.path.basename(os.path.normpath(folder))), "film", findSavedModel(folder))
        return out

    def _methodArgs(self):
        args = []
        for name, method, model in self.getMethodList():
            if method == "film" and model is None:
                raise ValueError("method %s: no FILM SavedModel found (see the validation)" % name)
            args.append('--method %s%s --name "%s"'
                        % (method, ' --model "%s"' % os.path.abspath(model) if model else "", name))
        anyFilm = any(m == "film" for _, m, _ in self.getMethodList())
        if anyFilm:
            if self.tileSize.get():
                args.append("--tile-size %d" % self.tileSize.get())
            if self.maxMemory.get():
                args.append("--max-memory %s" % self.maxMemory.get())
            args.append(self.engineDeviceArgs(True))
        return " ".join(args)

    def _defocusArgs(self, pixelSize):
        acq = self.inputSetOfTiltSeries.get().getAcquisition()
        lo, hi = self._defocusRange()
        args = "--defocus --pixel-size %s --defocus-min %s --defocus-max %s" % (pixelSize, lo, hi)
        for flag, getter in (("--voltage", "getVoltage"), ("--cs", "getSphericalAberration"),
                             ("--amp-contrast", "getAmplitudeContrast")):
            value = getattr(acq, getter)() if acq is not None else None
            if value:
                args += " %s %s" % (flag, value)
        return args

    def _defocusRange(self):
        try:
            lo, hi = [float(v) for v in (self.defocusRange.get() or "").replace(",", " ").split()]
        except ValueError:
            raise ValueError("Defocus search range '%s' must be two numbers in Angstrom "
                             "(e.g. 5000 80000)" % self.defocusRange.get()) from None
        return lo, hi

    def _warnings(self):
        return self.gpuWarnings(self._usesFilm(), "FILM")

    def _usesFilm(self):
        return any(m == "film" for _, m, _ in self.getMethodList())

    # -------------------------- steps ----------------------------------------
    def _insertAllSteps(self):
        self.insertPerTsSteps(self.inputSetOfTiltSeries.get(), self.holdoutStep,
                              processNeedsGPU=self.stepNeedsGpu(self._usesFilm()),
                              finalStep=self.summaryStep)

    def holdoutStep(self, tsId):
        """Step: ``cryotiger holdout`` on series ``tsId`` (report in extra/<tsId>/)."""
        self.forItem(tsId, self._holdout, tsId)

    def _holdout(self, tsId):
        folder = self.getTsFolder(tsId, tmp=True)
        inputs = EngineInputs.load(os.path.join(folder, "%s_inputs.json" % tsId))
        out = self.getTsFolder(tsId)
        args = '%s %s --data-range %s --report "%s" --plot "%s"' % (
            inputs.engineArgs(), self._methodArgs(), DATA_RANGES[self.dataRange.get()],
            self.getReportFile(tsId), os.path.join(out, "plots"))
        if self.defocusDiff.get():
            args += " " + self._defocusArgs(inputs.pixelSize)
        self.runEngine("holdout", args)

    def summaryStep(self):
        """Step: pool the per-series reports into the summary JSON
        (engine.holdout.combine_reports).  Raises RuntimeError, listing the
        reasons, when no series could be evaluated."""
        from ..engine.holdout import combine_reports
        reports = {}
        for tsId in self.getTsIds(self.inputSetOfTiltSeries.get()):
            f = self.getReportFile(tsId)
            if not self.isFailedItem(tsId) and os.path.exists(f):
                reports[tsId] = readJson(f)
        if not reports:
            raise RuntimeError("No tilt series could be evaluated (%s)"
                               % "; ".join("%s: %s" % kv for kv in sorted(self.getFailedItems().items())))
        writeJson(self.getSummaryFile(), combine_reports(reports))

    # -------------------------- files ----------------------------------------
    def getReportFile(self, tsId):
        """extra/<tsId>/holdout.json: the engine's hold-out report of one series."""
        return os.path.join(self._getExtraPath(tsId), "holdout.json")

    def getSummaryFile(self):
        """Path of the pooled report of every series (extra/holdout_summary.json)."""
        return self._getExtraPath(SUMMARY_JSON)

    def getSummaryReport(self):
        """The pooled report as a dict, or None before the summary step ran
        (ValueError when the file is not valid JSON)."""
        return readJsonIfExists(self.getSummaryFile())

    # -------------------------- INFO -----------------------------------------
    def _validate(self):
        errors = validateAlignedInput(self.inputSetOfTiltSeries.get())
        errors += validateTiltSeriesFiles(self.inputSetOfTiltSeries.get()) if not errors else []
        methods = self.getMethodList()
        if not methods:
            errors.append("Select at least one method (linear and/or a FILM model).")
        if self.defocusDiff.get():
            try:
                lo, hi = self._defocusRange()
                if not 0 < lo < hi:
                    errors.append("Defocus search range %g..%g A is empty; give min < max, "
                                  "underfocus positive." % (lo, hi))
            except ValueError as e:
                errors.append(str(e))
        for name, method, model in methods:
            if method == "film" and model is None:
                errors.append("%s: no FILM SavedModel (saved_model.pb) found; install the model "
                              "or give the folder that holds saved_model.pb. %s"
                              % (name, MODELS_INSTALL_HINT))
        return errors

    def _summary(self):
        r = self.getSummaryReport()
        if r is None:
            return ["Methods: %s." % ", ".join(n for n, _, _ in self.getMethodList())] + \
                self._failedSummary()
        lines = ["%d tilt series, %d held-out tilts (data range: %s)."
                 % (len(r["series"]), r["n_tilts"], DATA_RANGES[self.dataRange.get()]),
                 "%d tilt series done, %d failed." % (len(r["series"]), len(self.getFailedItems()))]
        for n, e in r["methods"].items():
            lines.append("%s: median PSNR %s dB, RMSE %s, SSIM %s%s"
                         % (n, fmt(e["median_psnr"], ".2f"), fmt(e["median_rmse"]),
                            fmt(e["median_ssim"], ".4f"),
                            ", |defocus diff| %s Å" % fmt(e["median_defocus_diff"], ".0f")
                            if "median_defocus_diff" in e else ""))
        return lines + testsLines(r["paired_tests"]) + self._failedSummary()

    def _methods(self):
        r = self.getSummaryReport()
        if r is None:
            return []
        return ["Interpolation methods (%s) were compared by restoring every second tilt of %d "
                "tilt series from its neighbours and comparing it with the acquired tilt (PSNR, "
                "RMSE, SSIM; paired t-test and Wilcoxon signed-rank test), as in [Majtner2025]."
                % (", ".join(r["methods"]), len(r["series"]))]

    def _citations(self):
        return ["Majtner2025"]
