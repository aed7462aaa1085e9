"""ProtCryoTigerTrain: train or fine-tune FILM on the user's own tilt series.

Input: one or more SetOfTiltSeries (aligned, or carrying per-image transforms
that the engine applies).  Output ``Model``: a :class:`CryoTigerModel`
(the exported SavedModel folder, extra/model) that ProtCryoTigerInterpolate
takes as "model trained by the plugin".

The work is one engine call, ``cryotiger train`` (see docs/training.md): it
builds the training database (triplets of tilts, patches, TFRecord) and
trains, with checkpoints in extra/work.  Continuing a stopped run (Scipion's
"Continue") runs the same command again, which resumes from the last
checkpoint.  Self-supervised use: give the series to be interpolated itself
with triplet spacing 2, then interpolate it with the output model.
"""
import json
import os

import pyworkflow.protocol.params as params
from pyworkflow.protocol import STEPS_SERIAL

from .. import Plugin
from ..constants import IN_TILTSERIES_LIST, MODELS_INSTALL_HINT, OUT_MODEL
from ..objects import CryoTigerModel
from ..convert import EngineInputs, readTrainingRecord, validateTiltSeriesFiles
from .forms import validateAlignedInput
from .protocol_base import ProtCryoTigerBase, findSavedModel

CONFIG_CHOICES = ["small", "published"]
INIT_NONE, INIT_CRYOTIGER, INIT_VIMEO, INIT_TRAINED, INIT_FOLDER = range(5)
INIT_LABELS = ["none (random start)", "cryoTIGER model (published)", "Vimeo-90K model (published)",
               "model trained by the plugin", "other model folder"]


class ProtCryoTigerTrain(ProtCryoTigerBase):
    """Train (or fine-tune) the FILM network on triplets of tilts of aligned
    tilt series: tilts i-s and i+s are the inputs, tilt i the target. The model
    can then be used by 'cryotiger - interpolate tilts' (FILM, model trained by
    the plugin)."""
    _label = "train FILM model"
    _possibleOutputs = {OUT_MODEL: CryoTigerModel}
    stepsExecutionMode = STEPS_SERIAL

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam(IN_TILTSERIES_LIST, params.MultiPointerParam, pointerClass="SetOfTiltSeries",
                      label="Tilt series for training", important=True,
                      help="One or more sets of ALIGNED tilt series (or with per-image transforms, "
                           "applied first). Disabled (excluded) views are skipped. With two or more "
                           "series, whole series are held out for validation.")
        form.addParam("config", params.EnumParam, choices=CONFIG_CHOICES, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Network configuration",
                      help="small: a tiny FILM (fast, CPU friendly). published: the configuration "
                           "of the published FILM/cryoTIGER models (34.4 M parameters; needs a "
                           "GPU for useful training, and for fine-tuning a published model).")
        form.addParam("steps", params.IntParam, default=2000, validators=[params.GE(1)],
                      label="Training steps", help="Total optimiser steps (a resumed run continues "
                                                   "up to this number).")
        form.addParam("minutes", params.FloatParam, default=0.0, label="Time budget (minutes)",
                      help="Stop (checkpoint and export the model) after this many minutes; 0: no limit.")
        form.addParam("spacing", params.StringParam, default="1", label="Triplet spacing",
                      help="1: neighbouring tilts (i-1, i, i+1). 2: two tilts apart (i-2, i, i+2), "
                           "for self-supervised training on the very series to interpolate "
                           "(then interpolate between neighbours). A list such as '1,2' uses both.")
        form.addParam("initSource", params.EnumParam, choices=INIT_LABELS, default=INIT_NONE,
                      label="Start from (fine-tune)",
                      help="Start from the weights of a model (same network configuration: "
                           "'published' for the published models).")
        form.addParam("initModel", params.PointerParam, pointerClass="CryoTigerModel", allowsNull=True,
                      condition="initSource==%d" % INIT_TRAINED, label="Trained model",
                      help="A model made by this protocol (output 'Model') to continue training "
                           "from.")
        form.addParam("initFolder", params.FolderParam, allowsNull=True,
                      condition="initSource==%d" % INIT_FOLDER, label="Model folder",
                      help="A FILM SavedModel folder (saved_model.pb and variables/).")

        form.addSection(label="Training")
        form.addParam("patchSize", params.IntParam, default=256, validators=[params.GE(16)],
                      label="Patch size (px)", help="Square patches cut from the tilts (a multiple "
                                                    "of 64 for the published configuration).")
        form.addParam("batchSize", params.IntParam, default=8, validators=[params.GE(1)],
                      label="Batch size",
                      help="Triplets (patch pairs and their middle tilt) per optimiser step. "
                           "Larger batches need more (GPU) memory.")
        form.addParam("learningRate", params.FloatParam, default=1e-4, label="Learning rate",
                      help="Initial Adam learning rate; decayed by 0.464 every 'decay steps'.")
        form.addParam("decaySteps", params.IntParam, default=750000, expertLevel=params.LEVEL_ADVANCED,
                      label="Decay steps",
                      help="Steps between two decays of the learning rate (x 0.464 each time); "
                           "FILM's default 750000 means practically no decay in short runs.")
        form.addParam("valEvery", params.IntParam, default=500, expertLevel=params.LEVEL_ADVANCED,
                      label="Validate every (steps)",
                      help="Compute the validation loss and PSNR (on held-out series or "
                           "patches) every this many steps; the curves are in the model viewer.")
        form.addParam("checkpointEvery", params.IntParam, default=500, expertLevel=params.LEVEL_ADVANCED,
                      label="Checkpoint every (steps)",
                      help="Save a checkpoint every this many steps: a killed run continues from "
                           "the last one (Continue).")
        form.addParam("vggWeights", params.PathParam, allowsNull=True, expertLevel=params.LEVEL_ADVANCED,
                      label="VGG-19 weights (optional)",
                      help="Keras VGG-19 weights without the top (.h5): enables the perceptual "
                           "loss (and the style loss with a style weight).")
        form.addParam("styleWeight", params.FloatParam, default=0.0, expertLevel=params.LEVEL_ADVANCED,
                      label="Style loss weight", help="FILM used 40 (needs VGG weights).")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Random seed",
                      help="Seed of patch sampling, augmentation and initial weights (the same "
                           "seed and inputs give the same training on the same device).")
        self._defineGpuParams(form)

    def _warnings(self):
        return self.gpuWarnings(True, "Training")

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        cId = self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        tId = self._insertFunctionStep(self.trainStep, prerequisites=[cId], needsGPU=self.stepNeedsGpu())
        self._insertFunctionStep(self.createOutputStep, prerequisites=[tId], needsGPU=False)

    # -------------------------- helpers ---------------------------------------
    def _inputSets(self):
        return [p.get() for p in self.inputSetsOfTiltSeries if p.get() is not None]

    def _inputsList(self):
        return self._getExtraPath("training_inputs.json")

    def getModelFolder(self):
        """Absolute path of the trained model folder (extra/model, a SavedModel)."""
        return os.path.abspath(self._getExtraPath("model"))

    def getWorkFolder(self):
        """Absolute path of the training work folder (extra/work: database, checkpoints)."""
        return os.path.abspath(self._getExtraPath("work"))

    def getInitFolder(self):
        """The folder of the model to start from (fine-tuning): the published
        model's SavedModel folder (None when not installed), the trained
        model's folder or the folder given; None for a random start."""
        src = self.initSource.get()
        if src in (INIT_CRYOTIGER, INIT_VIMEO):
            from ..constants import MODEL_CRYOTIGER, MODEL_VIMEO
            name = MODEL_CRYOTIGER if src == INIT_CRYOTIGER else MODEL_VIMEO
            return findSavedModel(os.path.join(Plugin.getModelsDir(), name))
        if src == INIT_TRAINED:
            model = self.initModel.get()
            return model.getAbsPath() if model is not None else None
        if src == INIT_FOLDER:
            return self.initFolder.get() or None
        return None

    # -------------------------- STEPS functions ------------------------------
    def convertInputStep(self):
        """Step: engine files of every enabled tilt series of every input set
        (tmp/<set number>_<tsId>/) and the list of them (extra/training_inputs.json).
        A series that fails is recorded as failed; raises RuntimeError when
        none is usable."""
        entries = []
        for k, tsSet in enumerate(self._inputSets()):
            for tsId in self.getTsIds(tsSet):
                folder = self._getTmpPath("%d_%s" % (k + 1, tsId))
                try:
                    inputs = self.writeEngineInputs(tsSet, tsId, folder=folder)
                    entries.append(os.path.join(folder, tsId + "_inputs.json"))
                    self.info("%s: %d views, %s excluded" % (tsId, len(inputs.records),
                                                             inputs.excluded or "none"))
                except Exception as e:
                    self.addFailedItem(tsId, e)
        if not entries:
            raise RuntimeError("No usable tilt series: %s" % "; ".join(
                "%s: %s" % kv for kv in sorted(self.getFailedItems().items())))
        with open(self._inputsList(), "w") as f:
            json.dump(entries, f)

    def trainStep(self):
        """Step: ``cryotiger train`` on every converted series (one engine run)."""
        with open(self._inputsList()) as f:
            entries = [EngineInputs.load(p) for p in json.load(f)]
        args = []
        for e in entries:
            args.append('--input "%s" --angles "%s" --exclude "%s" --xf "%s"'
                        % (e.stack, e.tlt, e.excluded, e.xf or ""))
        args.append('--output "%s" --workdir "%s"' % (self.getModelFolder(), self.getWorkFolder()))
        args.append("--config %s --steps %d --spacing %s" % (CONFIG_CHOICES[self.config.get()],
                                                             self.steps.get(),
                                                             (self.spacing.get() or "1").replace(" ", "")))
        if self.minutes.get():
            args.append("--minutes %s" % self.minutes.get())
        args.append("--patch-size %d --batch-size %d --lr %s --decay-steps %d --val-every %d "
                    "--checkpoint-every %d --seed %d" % (
                        self.patchSize.get(), self.batchSize.get(), self.learningRate.get(),
                        self.decaySteps.get(), self.valEvery.get(), self.checkpointEvery.get(),
                        self.seed.get()))
        init = self.getInitFolder()
        if init:
            args.append('--init "%s"' % os.path.abspath(init))
        if self.vggWeights.get():
            args.append('--vgg-weights "%s" --style-weight %s' % (os.path.abspath(self.vggWeights.get()),
                                                                  self.styleWeight.get()))
        args.append(self.engineDeviceArgs())
        self.runEngine("train", " ".join(args))

    def createOutputStep(self):
        """Step: the CryoTigerModel output; raises RuntimeError when no model was written."""
        from ..objects import CryoTigerModel
        folder = self.getModelFolder()
        if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
            raise RuntimeError("the engine wrote no model in %s; see the run log" % folder)
        model = CryoTigerModel(path=folder)
        info = self._trainInfo()
        triplets = sum(s.get("triplets", 0) for s in info.get("database", {}).get("series", []))
        if triplets:
            model.setTrainingPairs(int(triplets))
        init = self.getInitFolder()
        if init:
            model.setBaseModel(os.path.abspath(init))
        self._defineOutputs(**{OUT_MODEL: model})
        for tsSet in self.inputSetsOfTiltSeries:
            self._defineSourceRelation(tsSet, model)

    def _trainInfo(self) -> dict:
        return readTrainingRecord(self.getModelFolder())

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = []
        sets = self._inputSets()
        if not sets:
            return ["Give at least one set of tilt series for training."]
        for k, tsSet in enumerate(sets):
            errors += validateAlignedInput(tsSet, "Input set %d (tilt series)" % (k + 1))
            errors += validateTiltSeriesFiles(tsSet)
        try:
            spacings = [int(s) for s in (self.spacing.get() or "1").replace(" ", "").split(",") if s]
            if not spacings or min(spacings) < 1:
                raise ValueError
        except ValueError:
            errors.append("Triplet spacing '%s': give 1, 2 or a list such as '1,2'." % self.spacing.get())
        if self.config.get() == 1 and self.patchSize.get() % 64:
            errors.append("Patch size %d: the published configuration needs a multiple of 64."
                          % self.patchSize.get())
        src = self.initSource.get()
        if src != INIT_NONE:
            init = self.getInitFolder()
            if not init or not os.path.isfile(os.path.join(init, "saved_model.pb")):
                errors.append("The model to start from (%s) was not found or holds no "
                              "saved_model.pb (%s)." % (INIT_LABELS[src], init or "no folder")
                              + (" " + MODELS_INSTALL_HINT if src in (INIT_CRYOTIGER, INIT_VIMEO) else ""))
        if self.vggWeights.get() and not os.path.exists(self.vggWeights.get()):
            errors.append("VGG weights file %s does not exist." % self.vggWeights.get())
        return errors

    def _summary(self):
        lines = []
        info = self._trainInfo()
        if info:
            db = info.get("database", {})
            lines.append("FILM (%s) trained %d steps (stopped on %s) on %d training patches of %d px "
                         "from %d tilt series, triplet spacing %s." % (
                             CONFIG_CHOICES[self.config.get()], info.get("step", 0), info.get("stopped", "?"),
                             db.get("counts", {}).get("train", 0), db.get("patch_size", 0),
                             len(db.get("series", [])), ",".join(str(s) for s in db.get("spacings", []))))
            val = info.get("validation") or {}
            if val:
                lines.append("Validation: PSNR %.2f dB (linear %.2f), SSIM %.4f (linear %.4f)."
                             % (val["psnr"], val["linear_psnr"], val["ssim"], val["linear_ssim"]))
        elif self.getOutputsSize() == 0:
            lines.append("No model yet.")
        lines += self._failedSummary()
        return lines

    def _methods(self):
        budget = "%d steps" % self.steps.get()
        if self.minutes.get():
            budget += " or %g minutes, whichever came first" % self.minutes.get()
        start = INIT_LABELS[self.initSource.get()]
        return ["A FILM frame-interpolation network [Reda2022] (%s configuration) was trained on "
                "triplets of tilts of the input tilt series (spacing %s; the outer two tilts as "
                "input, the middle one as target) as in cryoTIGER [Majtner2025], with L1 loss%s "
                "and Adam (learning rate %g, batch %d, %d px patches), for %s, starting from %s, "
                "on the %s." % (CONFIG_CHOICES[self.config.get()], self.spacing.get(),
                                " and VGG perceptual/style losses" if self.vggWeights.get() else "",
                                self.learningRate.get(), self.batchSize.get(), self.patchSize.get(),
                                budget, start, "GPU" if self.stepNeedsGpu() else "CPU")]

    def _citations(self):
        return ["Majtner2025", "Reda2022"]
