"""ProtCryoTigerInterpolate: synthesise tilts between the acquired tilts of
aligned tilt series (linear or FILM), one engine run per tilt series.

What the output is (docs/scipion.md, "Interpolate tilt series"):
* a new SetOfTiltSeries with one .mrcs stack per series (extra/<tsId>/),
  all tilts sorted by angle, ``interpolated()`` True (aligned images; the
  input's transforms are applied when it was not resampled yet);
* every TiltImage carries ``_cryotigerSynthetic`` (True for made tilts) and
  ``_cryotigerSources`` (1-based positions, in the input's stack order, of the
  tilts it comes from);
* synthetic tilts get unique acquisition orders after the real ones and a
  dose by the engine's rule (weighted like their pixels; engine/plan.py);
* excluded (disabled) views stay disabled and are never used as anchors
  (mode add; mode restore leaves them out);
* the acquisition's angle range and step and the angle count are updated;
* FILM (issue 13): every TiltImage carries ``_cryotigerConfidence`` (the
  engine's per-tilt confidence, 0..1; real tilts 1.0) and every tilt series
  ``_cryotigerConfidenceMap`` (the OUT_confidence stack beside its images);
  the confidence viewer plots both.
"""
import json
import os

import pyworkflow.object as pwobj
import pyworkflow.protocol.params as params
from pyworkflow.protocol import STEPS_PARALLEL
from tomo.objects import SetOfTiltSeries

from .. import Plugin
from ..constants import (ATTR_CONFIDENCE, OUT_FAILED, METHODS, MIDPOINT_PER_GAP, MODES, MODEL_CRYOTIGER,
                         MODEL_VIMEO, MODELS_INSTALL_HINT, OUT_TILTSERIES, PUBLISHED_MODELS,
                         SHIPPED_MODELS_DIR, TIMEAWARE_MODEL)
from ..convert import EngineInputs, recordDoses
from .forms import (addAlignedSizeParam, addInputTiltSeriesParam, alignedSizeArgs, parseAlignedSize,
                    validateAlignedInput)
from .protocol_base import ProtCryoTigerBase, findSavedModel
from ..objects import CryoTigerModel

# Form choices (order matters: stored as indices).
METHOD_CHOICES = list(METHODS)
METHOD_LABELS = ["linear", "FILM"]
MODE_CHOICES = list(MODES)
MODEL_SOURCE_CRYOTIGER = 0
MODEL_SOURCE_VIMEO = 1
MODEL_SOURCE_TRAINED = 2
MODEL_SOURCE_FOLDER = 3
MODEL_SOURCE_STARTER = 4          # only with fitting: the engine's starter model (or random weights)
MODEL_SOURCE_TIMEAWARE = 5        # the time-aware model shipped with the plugin (issue 13)
MODEL_SOURCE_LABELS = ["cryoTIGER model (published)", "Vimeo-90K model (published)",
                       "model trained by the plugin", "other model folder", "starter model (fit to each series)",
                       "time-aware model (shipped; any angle)"]
FILM_PER_GAP = MIDPOINT_PER_GAP
TIMEAWARE_DIR = os.path.join(SHIPPED_MODELS_DIR, TIMEAWARE_MODEL)


class ProtCryoTigerInterpolate(ProtCryoTigerBase):
    """Make tilt series denser: synthesise K new tilts between every two
    neighbouring tilts of aligned tilt series, by linear interpolation or with
    the FILM frame-interpolation network (published cryoTIGER or Vimeo-90K
    models, or a model trained with this plugin).

    Mode *restore* drops every (K+1)-th tilt and synthesises it back at its
    real angle, to compare synthetic with real tilts.
    """
    _label = "interpolate tilt series"
    _possibleOutputs = {OUT_TILTSERIES: SetOfTiltSeries, OUT_FAILED: SetOfTiltSeries}
    stepsExecutionMode = STEPS_PARALLEL

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        addInputTiltSeriesParam(form, help="Tilt series resampled with their alignment "
                                           "(interpolated), or with per-image transforms, which "
                                           "are then applied (IMOD .xf convention, bilinear). "
                                           "Excluded (disabled) views are not used to "
                                           "interpolate.")
        form.addParam("method", params.EnumParam, choices=METHOD_LABELS, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Method",
                      help="linear: weighted mean of the two neighbouring tilts by angular "
                           "distance (fast, CPU). FILM: the frame-interpolation network "
                           "(cryoTIGER); runs on a GPU when one is selected.")
        form.addParam("modelSource", params.EnumParam, choices=MODEL_SOURCE_LABELS,
                      default=MODEL_SOURCE_CRYOTIGER, condition="method==1", label="FILM model",
                      help="Published models are looked up in the plugin's models folder "
                           "(variable CRYOTIGER_MODELS, default <EM_ROOT>/cryotiger-models): "
                           "%s/ and %s/ (each a TensorFlow SavedModel folder). They, and the "
                           "starter model, make only midpoints (1, 3 or 7 new tilts per gap). The "
                           "time-aware model shipped with the plugin (trained on simulated tilt "
                           "series) makes a tilt at any angle: any number per gap, 'Synthesise at "
                           "these angles', restore over uneven steps; fit it to each series for "
                           "real data. With the starter model and fitting, such plans start from "
                           "the time-aware model." % (MODEL_CRYOTIGER, MODEL_VIMEO))
        form.addParam("trainedModel", params.PointerParam, pointerClass="CryoTigerModel",
                      allowsNull=True, condition="method==1 and modelSource==%d" % MODEL_SOURCE_TRAINED,
                      label="Trained model", help="Output of 'cryotiger - train FILM model'.")
        form.addParam("modelFolder", params.FolderParam, allowsNull=True,
                      condition="method==1 and modelSource==%d" % MODEL_SOURCE_FOLDER,
                      label="Model folder",
                      help="A FILM SavedModel folder (holding saved_model.pb and variables/).")
        form.addParam("fitMinutes", params.FloatParam, default=0, condition="method==1",
                      label="Fit to each tilt series first (minutes)", validators=[params.GE(0)],
                      help="0: use the model as it is. Otherwise FILM is first trained for this "
                           "many minutes on each tilt series' own tilts (self-supervised: tilts two "
                           "apart predict the one between; excluded views never used; in restore "
                           "mode only the kept tilts), starting from the model chosen above, then "
                           "used on that series. The fitted model of each series is an output "
                           "(FittedModel_<tsId>), reusable as 'a model trained by the plugin'.")
        form.addParam("tiltsPerGap", params.IntParam, default=1, label="New tilts per gap",
                      validators=[params.GE(1)],
                      help="Tilts synthesised between two neighbouring tilts, at evenly spaced "
                           "angles. FILM: 1, 3 or 7 (recursive midpoints); any number with a "
                           "time-aware model (trained with --time-aware). Not used when angles "
                           "are given below.")
        form.addParam("atAngles", params.StringParam, default="", label="Synthesise at these angles",
                      help="Tilt angles in degrees, separated by commas or spaces (e.g. "
                           "-12.5, 17): one new tilt at each, made from the two acquired tilts "
                           "around it, instead of 'New tilts per gap'. Mode add only; each angle "
                           "inside the series' angle range and not an acquired angle. Linear, or "
                           "FILM with a time-aware model (trained with --time-aware; midpoint-only "
                           "models make only midpoints). Empty: 'New tilts per gap'.")
        form.addParam("mode", params.EnumParam, choices=MODE_CHOICES, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Mode",
                      help="add: new tilts between all acquired tilts. restore: keep one tilt in "
                           "every (K+1) and synthesise the dropped ones back at their real "
                           "angles (to compare with the real ones).")

        group = form.addGroup("FILM options", condition="method==1")
        group.addParam("tileSize", params.IntParam, default=0, label="Tile size (px)",
                       help="Images are processed in overlapping tiles of this size; 0: chosen "
                            "from the memory budget.")
        group.addParam("tileOverlap", params.IntParam, default=0, label="Tile overlap (px)",
                       help="0: the engine's default.")
        group.addParam("maxMemory", params.FloatParam, default=0, label="Max memory (GiB)",
                       expertLevel=params.LEVEL_NORMAL,
                       help="Memory budget used to choose the tile size; 0: the engine's default.")
        group.addParam("batchSize", params.IntParam, default=0, label="Batch size",
                       expertLevel=params.LEVEL_ADVANCED,
                       help="Image pairs (tiles) per network call; 0: the engine's default.")
        group.addParam("normalization", params.EnumParam, choices=["robust", "notebook"],
                       default=0, expertLevel=params.LEVEL_ADVANCED, label="Normalization",
                       help="robust: percentile scaling per pair, float. notebook: the public "
                            "notebook's global min/max and 8-bit path (for comparison only).")
        group.addParam("precision", params.EnumParam,
                       choices=["auto", "float32", "mixed", "bfloat16"], default=0,
                       expertLevel=params.LEVEL_ADVANCED, label="Precision",
                       help="auto: the fastest precision measured accurate on the device: mixed float16 + XLA on GPU; "
                            "bfloat16 for the published network on CPUs with AVX512-BF16/AMX; float32 otherwise.")
        addAlignedSizeParam(form)
        self._defineGpuParams(form, perSeries=True)
        form.addParallelSection(threads=2, mpi=0)

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        self.insertPerTsSteps(self.inputSetOfTiltSeries.get(), self.interpolateStep,
                              processNeedsGPU=self.stepNeedsGpu(self.isFilm()),
                              outputStep=self.createOutputStep)

    # -------------------------- STEPS functions ------------------------------
    def interpolateStep(self, tsId):
        """Step: ``cryotiger interpolate`` on series ``tsId`` (output stack and
        its OUT.json record in extra/<tsId>/); a failure marks the series failed."""
        self.forItem(tsId, self._interpolate, tsId)

    def createOutputStep(self, tsId):
        """Step: the output TiltSeries of ``tsId`` (and, when fitting, its fitted model)."""
        self.forItem(tsId, self._createOutputTs, tsId)
        if self.isFitting():
            self.forItem(tsId, self._registerFittedModel, tsId)

    def _registerFittedModel(self, tsId):
        """The model fitted to this series (OUT_fitted_film/ beside its output stack)."""
        folder = os.path.splitext(self._getOutputStack(tsId))[0] + "_fitted_film"
        if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
            raise RuntimeError("%s: the fitted model %s is missing" % (tsId, folder))
        model = CryoTigerModel(path=folder)
        model.setBaseModel(self.getModelPath() or "starter model")
        with self._lock:
            self._defineOutputs(**{fittedModelOutput(tsId): model})
            self._defineSourceRelation(self.inputSetOfTiltSeries, model)

    def _interpolate(self, tsId):
        inputs = self._loadInputs(tsId)
        args = "%s --output \"%s\" %s" % (inputs.engineArgs(),
                                         os.path.abspath(self._getOutputStack(tsId)),
                                         self._getMethodArgs())
        args += " --pixel-size %s" % inputs.pixelSize
        args += alignedSizeArgs(self.alignedSize.get(), inputs)
        self.runEngine("interpolate", args)

    # -------------------------- output --------------------------------------
    def _createOutputTs(self, tsId):
        outStack = self._getOutputStack(tsId)
        with open(os.path.splitext(outStack)[0] + ".json") as f:
            plan = sorted(json.load(f), key=lambda e: e["index"])
        inputs = self._loadInputs(tsId)
        objIdOf = {r.position - 1: r.objId for r in inputs.records}   # engine index -> TiltImage id
        with self._lock:
            inSet = self.inputSetOfTiltSeries.get()
            inTs = self.getTiltSeries(inSet, tsId)
            srcById = {ti.getObjId(): ti.clone() for ti in inTs.iterItems()}
            outSet = self.getOutputSet(OUT_TILTSERIES, inSet)
            newTs = self.newOutputTs(inTs, interpolated=True)
            confMap = confidenceMapOf(outStack)
            if os.path.exists(confMap):     # set before the series is stored (its columns)
                newTs._cryotigerConfidenceMap = pwobj.String(confMap)
            outTs = self.appendOutputItem(outSet, newTs)
            angles, accumDoses = [], []
            for e in plan:
                sources = ",".join(str(s + 1) for s in e["sources"])
                src = srcById[objIdOf[e["sources"][0]]]
                if e["synthetic"]:
                    ti = self.newTiltImage(src, outStack, e["index"] + 1, synthetic=True,
                                           sources=sources, angle=e["angle"],
                                           acqOrder=e["acquisition_order"], enabled=True)
                    dose, before, after = recordDoses(e)
                    acq = src.getAcquisition().clone()
                    acq.setDosePerFrame(dose)
                    acq.setDoseInitial(before)
                    acq.setAccumDose(after)
                    ti.setAcquisition(acq)
                else:
                    ti = self.newTiltImage(src, outStack, e["index"] + 1, synthetic=False,
                                           sources=sources, enabled=not e.get("excluded", False))
                ti.setSamplingRate(inputs.pixelSize)
                if "confidence" in e:       # FILM: every entry has one (real tilts 1.0)
                    setattr(ti, ATTR_CONFIDENCE, pwobj.Float(float(e["confidence"])))
                outTs.append(ti)
                angles.append(float(e["angle"]))
                accumDoses.append(recordDoses(e)[2])
            self.updateTsAcquisition(outTs, angles, accumDose=max(accumDoses))
            outTs.setAnglesCount(len(plan))
            if outSet.getSize() <= 1:
                # The first series sets the set's angle count and acquisition;
                # without this a longer output is flagged heterogeneous.
                outSet.setAnglesCount(len(plan))
                self.updateTsAcquisition(outSet, angles, accumDose=max(accumDoses))
            outSet.update(outTs)
            outTs.write()
            self.storeOutput(outSet)

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = []
        inSet = self.inputSetOfTiltSeries.get()
        errors += validateAlignedInput(inSet)
        if errors:
            return errors
        k = self.tiltsPerGap.get()
        try:
            parseAlignedSize(self.alignedSize.get())
        except ValueError as e:
            errors.append(str(e))
        if self.atAngles.get():
            try:
                at = self.getAtAngles()
            except ValueError as e:
                return errors + [str(e)]
            if not at:
                errors.append("Synthesise at these angles: no angle given; give degrees "
                              "such as -12.5, 17 or leave the field empty.")
            if self.mode.get() != 0:
                errors.append("Synthesise at these angles adds tilts (mode add); set Mode to add "
                              "or leave the angles empty.")
            if self.isFilm() and not self.isTimeAwareModel():
                errors.append("Synthesise at these angles with FILM needs a time-aware model "
                              "(trained with --time-aware; 'cryotiger model info' says so): the "
                              "chosen model makes only midpoints. Choose a time-aware model, the "
                              "linear method, or 'New tilts per gap'.")
            k = 1           # not used: only the model and the input checks below apply
        if k is None or k < 1:
            errors.append("New tilts per gap must be at least 1 (got %s)." % k)
        elif self.isFilm() and k not in FILM_PER_GAP and not self.isTimeAwareModel():
            errors.append("FILM makes 1, 3 or 7 tilts per gap (recursive midpoints); got %d. "
                          "Choose 1, 3 or 7, a time-aware model (any number), or the linear "
                          "method." % k)
        if self.isFilm():
            errors += self._validateModel()
            if self.tileSize.get() and self.tileSize.get() < 64:
                errors.append("Tile size %d px is too small; use at least 64 (or 0 for automatic)."
                              % self.tileSize.get())
            if self.tileSize.get() and self.tileOverlap.get() and \
                    self.tileOverlap.get() >= self.tileSize.get() // 2:
                errors.append("Tile overlap %d px must be less than half the tile size (%d px)."
                              % (self.tileOverlap.get(), self.tileSize.get()))
            if self.maxMemory.get() is not None and self.maxMemory.get() < 0:
                errors.append("Max memory must be positive (or 0 for the default).")
        if not errors and k:
            errors += self._validateTiltSeries(inSet, k)
        return errors

    def _validateModel(self):
        """Messages when the FILM model cannot be found."""
        source = self.modelSource.get()
        if source == MODEL_SOURCE_STARTER:
            return [] if self.isFitting() else [
                "The starter model is a starting point for fitting: set 'Fit to each tilt series "
                "first (minutes)' above 0, or choose another FILM model."]
        if source == MODEL_SOURCE_TIMEAWARE:
            if findSavedModel(TIMEAWARE_DIR) is None:
                return ["The time-aware model is not shipped in this installation: no SavedModel in "
                        "%s. Reinstall the plugin, or choose another FILM model." % TIMEAWARE_DIR]
        elif source in (MODEL_SOURCE_CRYOTIGER, MODEL_SOURCE_VIMEO):
            name = MODEL_CRYOTIGER if source == MODEL_SOURCE_CRYOTIGER else MODEL_VIMEO
            folder = os.path.join(Plugin.getModelsDir(), name)
            if findSavedModel(folder) is None:
                return ["The %s is not installed: no SavedModel (saved_model.pb) in %s. Put the "
                        "model folder there as '%s' (or point the plugin variable CRYOTIGER_MODELS "
                        "to the folder that holds it). It is the %s. %s"
                        % (MODEL_SOURCE_LABELS[source].replace(" (published)", ""), folder, name,
                           PUBLISHED_MODELS[name], MODELS_INSTALL_HINT)]
        elif source == MODEL_SOURCE_TRAINED:
            model = self.trainedModel.get()
            if model is None:
                return ["FILM needs a model: select a trained model (output of the cryoTIGER "
                        "training protocol) or choose another model source."]
            if findSavedModel(model.getAbsPath()) is None:
                return ["The trained model folder %s holds no SavedModel (saved_model.pb); run "
                        "the training protocol again." % model.getAbsPath()]
        else:
            folder = self.modelFolder.get()
            if not folder:
                return ["FILM needs a model: give the model folder (a SavedModel with "
                        "saved_model.pb) or choose a published or trained model."]
            if findSavedModel(folder) is None:
                return ["%s holds no FILM SavedModel (saved_model.pb); give the folder of a "
                        "SavedModel." % folder]
        return []

    def _validateTiltSeries(self, inSet, k):
        """Per-series checks of angles, image counts and sizes (headers only)."""
        import mrcfile  # noqa: F401
        from ..convert import MRC_SUFFIXES, imageFileName, stackCountErrors
        errors = []
        restore = self.mode.get() == 1
        for ts in inSet.iterItems():
            if not ts.isEnabled():
                continue
            tsId = ts.getTsId()
            angles, usable, files, usableAngles = [], 0, {}, []
            for ti in ts.iterItems():
                a = ti.getTiltAngle()
                if a is None:
                    errors.append("%s: image %s has no tilt angle; import the series with its "
                                  "angles (.tlt or .mdoc)." % (tsId, ti.getIndex()))
                    break
                angles.append(round(float(a), 4))
                usable += bool(ti.isEnabled())
                if ti.isEnabled():
                    usableAngles.append(float(a))
                files.setdefault(imageFileName(ti), []).append(ti.getIndex() or 1)
            else:
                if len(set(angles)) != len(angles):
                    errors.append("%s: two images share a tilt angle; every image needs its own "
                                  "angle (check the .tlt)." % tsId)
                outside = [a for a in self.getAtAngles()
                           if usableAngles and not min(usableAngles) < a < max(usableAngles)]
                if outside:
                    errors.append("%s: angle(s) %s to synthesise at lie outside the usable tilts "
                                  "(%g to %g degrees); give angles between two acquired tilts."
                                  % (tsId, ", ".join("%g" % a for a in outside),
                                     min(usableAngles), max(usableAngles)))
                need = k + 2 if restore else 2
                if usable < need:
                    errors.append("%s: %d usable (not excluded) tilts; mode %s with %d per gap "
                                  "needs at least %d." % (tsId, usable, MODE_CHOICES[self.mode.get()],
                                                          k, need))
                sizes = set()
                for fn, indices in files.items():
                    if not os.path.exists(fn):
                        errors.append("%s: image file %s is missing." % (tsId, fn))
                        continue
                    if os.path.splitext(fn)[1].lower() not in MRC_SUFFIXES:
                        continue
                    with mrcfile.open(fn, mode="r", permissive=True, header_only=True) as m:
                        nx, ny, nz = int(m.header.nx), int(m.header.ny), int(m.header.nz)
                    sizes.add((nx, ny))
                    errors += stackCountErrors(tsId, fn, indices, nz)
                if len(sizes) > 1:
                    errors.append("%s: images of different sizes (%s); all images of a tilt "
                                  "series must have the same size." % (
                                      tsId, ", ".join("%dx%d" % s for s in sorted(sizes))))
            if len(errors) >= 10:
                break
        return errors

    def _warnings(self):
        if not self.isFilm():
            return []
        return self.gpuWarnings(True, "FILM") + self.gpuSlotWarnings()

    def _summary(self):
        summary = []
        inSet = self.inputSetOfTiltSeries.get()
        method = self._methodLabel()
        if self.atAngles.get():
            summary.append("Method: *%s*, new tilts at %s degrees." % (method, self.atAngles.get()))
        else:
            summary.append("Method: *%s*, mode *%s*, %d new tilt(s) per gap."
                           % (method, MODE_CHOICES[self.mode.get()], self.tiltsPerGap.get()))
        nIn = inSet.getAnglesCount() if inSet is not None else None
        return summary + self.outputSummary(
            OUT_TILTSERIES, lambda out: "%d tilt series: %s tilts in, %s tilts out per series."
                                        % (out.getSize(), nIn, out.getAnglesCount()))

    def _methods(self):
        out = getattr(self, OUT_TILTSERIES, None)
        if out is None:
            return []
        if self.isFilm():
            how = "the FILM frame-interpolation network [Reda2022] with the %s" % (
                MODEL_SOURCE_LABELS[self.modelSource.get()])
            if self.modelSource.get() == MODEL_SOURCE_FOLDER:
                how += " (%s)" % self.modelFolder.get()
            tiles = ("in tiles of %d px" % self.tileSize.get() if self.tileSize.get() else
                     "in tiles sized for a %s memory budget" % (
                         "%g GiB" % self.maxMemory.get() if self.maxMemory.get() else "default"))
            how += " (%s, %s, %s normalisation, on the %s)" % (
                "time-aware: each new tilt made at its own angle" if self.isTimeAwareModel()
                else "recursive midpoints", tiles, self.getEnumText("normalization"),
                "GPU" if self.stepNeedsGpu() else "CPU")
        else:
            how = "linear interpolation weighted by angular distance"
        mode = ("between every two neighbouring tilts" if self.mode.get() == 0 else
                "in place of tilts left out on purpose (mode restore, to compare with the real ones)")
        count = "%d tilt(s) were synthesised %s" % (self.tiltsPerGap.get(), mode)
        if self.atAngles.get():
            count = "new tilts were synthesised at %s degrees" % self.atAngles.get()
        return ["%d tilt series were made denser with cryoTIGER [Majtner2025]: %s by %s. "
                "Synthetic tilts are flagged in the output (attribute "
                "_cryotigerSynthetic) and were given their own acquisition orders and doses."
                % (out.getSize(), count, how)]

    def _citations(self):
        return ["Majtner2025"] + (["Reda2022"] if self.isFilm() else [])

    # -------------------------- UTILS functions ------------------------------
    def isFilm(self) -> bool:
        """True when the FILM method is selected (else linear)."""
        return self.method.get() == 1

    def isFitting(self) -> bool:
        """True when FILM is fitted to each series first (--fit-minutes > 0)."""
        return self.isFilm() and bool(self.fitMinutes.get())

    def _methodLabel(self):
        if not self.isFilm():
            return "linear"
        label = "FILM, %s" % MODEL_SOURCE_LABELS[self.modelSource.get()]
        if self.isFitting():
            label += ", fitted to each series for %g min" % self.fitMinutes.get()
        return label

    def isTimeAwareModel(self) -> bool:
        """True when the chosen FILM model is time-aware (issue 13): its
        cryotiger_film.json says time_conditioning (read as JSON, no TensorFlow).
        A fit keeps its starting model's kind; fitting from the starter model
        starts from the shipped time-aware model when the plan needs it, so it
        counts as time-aware when that model is shipped."""
        if not self.isFilm():
            return False
        folder = self.getModelPath()
        if folder is None and self.isFitting() and self.modelSource.get() == MODEL_SOURCE_STARTER:
            folder = findSavedModel(TIMEAWARE_DIR)
        path = os.path.join(folder, "cryotiger_film.json") if folder else None
        if not path or not os.path.isfile(path):
            return False
        try:
            with open(path) as f:
                return bool(json.load(f).get("time_conditioning", False))
        except (OSError, ValueError):
            return False

    def getModelPath(self):
        """Absolute path of the FILM SavedModel folder to give the engine (the
        chosen published model, trained model or folder, searched with
        :func:`findSavedModel`), or None when none is found or the starter
        model is chosen (the engine then uses its own)."""
        source = self.modelSource.get()
        if source == MODEL_SOURCE_CRYOTIGER:
            folder = os.path.join(Plugin.getModelsDir(), MODEL_CRYOTIGER)
        elif source == MODEL_SOURCE_VIMEO:
            folder = os.path.join(Plugin.getModelsDir(), MODEL_VIMEO)
        elif source == MODEL_SOURCE_TRAINED:
            model = self.trainedModel.get()
            folder = model.getAbsPath() if model is not None else None
        elif source == MODEL_SOURCE_STARTER:
            folder = None
        elif source == MODEL_SOURCE_TIMEAWARE:
            folder = TIMEAWARE_DIR
        else:
            folder = self.modelFolder.get()
        found = findSavedModel(folder) if folder else None
        return os.path.abspath(found) if found else None

    def getAtAngles(self):
        """The angles of 'Synthesise at these angles' (degrees, list of float;
        empty when not given).  ValueError naming the fix for bad text."""
        import re
        text = (self.atAngles.get() or "").strip()
        try:
            return [float(v) for v in re.split(r"[,;\s]+", text) if v]
        except ValueError:
            raise ValueError("Synthesise at these angles '%s': give tilt angles in degrees "
                             "separated by commas (e.g. -12.5, 17)." % text) from None

    def _getMethodArgs(self) -> str:
        at = self.getAtAngles()
        if at:      # --at=... so that a leading minus is not read as an option
            args = "--method %s --at=%s --mode %s" % (
                METHOD_CHOICES[self.method.get()], ",".join("%g" % a for a in at),
                MODE_CHOICES[self.mode.get()])
        else:
            args = "--method %s --per-gap %d --mode %s" % (
                METHOD_CHOICES[self.method.get()], self.tiltsPerGap.get(),
                MODE_CHOICES[self.mode.get()])
        if not self.isFilm():
            return args
        model = self.getModelPath()
        if self.isFitting():
            args += " --fit-minutes %s" % self.fitMinutes.get()
        elif model is None:
            raise ValueError("FILM model not found (see the protocol's validation message)")
        if model is not None:
            args += ' --model "%s"' % model
        for flag, value in (("--tile-size", self.tileSize.get()),
                            ("--tile-overlap", self.tileOverlap.get()),
                            ("--max-memory", self.maxMemory.get()),
                            ("--batch-size", self.batchSize.get())):
            if value:
                args += " %s %s" % (flag, value)
        args += " --normalization %s" % self.getEnumText("normalization")
        args += " --precision %s" % self.getEnumText("precision")
        args += " " + self.engineDeviceArgs(useNetwork=True)
        return args

    def _getOutputStack(self, tsId) -> str:
        """extra/<tsId>/<tsId>.mrcs, relative to the project (as stored in the
        output TiltImages; the engine runs in the project folder)."""
        return os.path.join(self.getTsFolder(tsId), "%s.mrcs" % tsId)

    def _loadInputs(self, tsId) -> EngineInputs:
        return self.loadEngineInputs(tsId)


def confidenceMapOf(outStack: str) -> str:
    """Path of the confidence maps the engine writes beside ``outStack``
    (<stem>_confidence<ext>; issue 13; engine.interpolate.confidence_path,
    repeated here: no engine import)."""
    stem, ext = os.path.splitext(outStack)
    return "%s_confidence%s" % (stem, ext or ".mrc")


def fittedModelOutput(tsId) -> str:
    """Output name of the model fitted to series ``tsId``: FittedModel_<tsId>
    (characters other than letters, digits and '_' replaced by '_')."""
    import re
    return "FittedModel_" + re.sub(r"[^0-9A-Za-z_]", "_", str(tsId))
