"""ProtCryoTigerCtf: per-tilt CTF (defocus U, V, astigmatism angle) of tilt
series, synthetic tilts included; one engine run (``cryotiger ctf``) per
tilt series, on the built-in CPU estimator or the Gctf binary (GPU).

What the output is (docs/ctf.md):
* a SetOfCTFTomoSeries pointing at the input set; one CTFTomoSeries per
  tilt series (tsId set, pointing at its tilt series) and one CTFTomo per
  tilt image with the image's acquisition order and index, so that
  ``tomo.utils.getCommonTsAndCtfElements`` pairs them;
* defocus U >= V in Angstrom, astigmatism angle in degrees (setStandardDefocus),
  fit quality (band correlation for built-in, Gctf's CCC) and resolution (A);
* every CTFTomo carries ``_cryotigerSynthetic`` (copied from the tilt image;
  False for series that were not interpolated); disabled images give
  disabled CTFTomos.
Microscope constants come from the input set's acquisition (voltage, Cs,
amplitude contrast), the pixel size from its sampling rate.
"""
import os

import pyworkflow.protocol.params as params
from pyworkflow.object import Boolean, Set
from pyworkflow.protocol import STEPS_PARALLEL
from tomo.objects import CTFTomo, CTFTomoSeries, SetOfCTFTomoSeries, SetOfTiltSeries

from .. import Plugin
from ..constants import ATTR_SYNTHETIC, GCTF_BIN, GCTF_HOME, OUT_CTFS, OUT_FAILED
from ..convert import EngineInputs, isSynthetic, validateTiltSeriesFiles
from .forms import addInputTiltSeriesParam
from .protocol_base import ProtCryoTigerBase

BACKEND_BUILTIN = 0
BACKEND_GCTF = 1
BACKEND_LABELS = ["built-in (CPU)", "Gctf (GPU)"]
ASTIG_CHOICES = ["series", "tilt", "none"]
ASTIG_LABELS = ["one per tilt series", "per tilt", "none"]


class ProtCryoTigerCtf(ProtCryoTigerBase):
    """Estimate the CTF of every tilt (synthetic tilts included) of tilt
    series: defocus U, V and astigmatism angle per tilt, matched to the tilt
    images by acquisition order.

    Built-in (CPU): averaged tile periodograms, smooth radial background,
    fit of the CTF model in a resolution band (1D defocus search, then 2D
    refinement of U, V and angle), astigmatism shared by the tilt series,
    optional defocus gradient across tilted images. Gctf (GPU): the Gctf
    program, located by the plugin variable CRYOTIGER_GCTF_BIN (or
    scipion-em-gctf's GCTF_HOME).
    """
    _label = "estimate CTF"
    _possibleOutputs = {OUT_CTFS: SetOfCTFTomoSeries, OUT_FAILED: SetOfTiltSeries}
    stepsExecutionMode = STEPS_PARALLEL
    # convertInputStep (protocol_base): CTF estimation needs no alignment, the
    # images are used as they are.
    applyInputAlignment = False

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        addInputTiltSeriesParam(form, label="Tilt series",
                                help="Tilt series (raw, aligned, or made denser by the cryoTIGER "
                                     "interpolation: synthetic tilts get a CTF too). Voltage, Cs "
                                     "and amplitude contrast come from their acquisition, the "
                                     "pixel size from their sampling rate.")
        form.addParam("backend", params.EnumParam, choices=BACKEND_LABELS, default=BACKEND_BUILTIN,
                      display=params.EnumParam.DISPLAY_HLIST, label="Back end",
                      help="built-in: CPU estimator of the plugin, runs anywhere. Gctf: the Gctf "
                           "program on a GPU, located by the plugin variable %s (or %s as set "
                           "for scipion-em-gctf)." % (GCTF_BIN, GCTF_HOME))
        line = form.addLine("Defocus search (Å)",
                            help="Range and step of the defocus search, Angstrom, underfocus "
                                 "positive (e.g. 5000 - 80000 in steps of 500).")
        line.addParam("defocusMin", params.FloatParam, default=5000.0, label="min")
        line.addParam("defocusMax", params.FloatParam, default=80000.0, label="max")
        line.addParam("defocusStep", params.FloatParam, default=500.0, label="step")
        line = form.addLine("Resolution band (Å)",
                            help="Spatial frequencies fitted: from the low-resolution end (e.g. "
                                 "50 A) to the high-resolution end (0: max(10 A, 2.5 x pixel "
                                 "size)).")
        line.addParam("lowRes", params.FloatParam, default=50.0, label="low")
        line.addParam("highRes", params.FloatParam, default=0.0, label="high")
        form.addParam("tileSize", params.IntParam, default=0, label="Tile (box) size (px)",
                      help="Size of the tiles whose spectra are averaged; 0: 512, or less for "
                           "small images.")
        form.addParam("astigmatism", params.EnumParam, choices=ASTIG_LABELS, default=0,
                      condition="backend==%d" % BACKEND_BUILTIN, label="Astigmatism",
                      help="one per tilt series: the objective lens astigmatism is fitted once "
                           "for all tilts (robust on noisy tilts), each tilt its own defocus. "
                           "per tilt: fitted on each image alone. none: U = V.")
        form.addParam("astigMax", params.FloatParam, default=3000.0, label="Max astigmatism (Å)",
                      expertLevel=params.LEVEL_ADVANCED,
                      help="Largest |defocus U - defocus V| considered (Gctf: --astm, capped at "
                           "1000).")
        form.addParam("defocusGradient", params.BooleanParam, default=False,
                      condition="backend==%d" % BACKEND_BUILTIN, label="Model the defocus gradient?",
                      help="Tiles are grouped by their height above the tilt axis; each group "
                           "is fitted with defocus + x tan(tilt angle) (the defocus reported is "
                           "the one at the tilt axis).")
        self._defineGpuParams(form,
                              help="Run Gctf on a GPU (the Gctf back end needs one; the built-in "
                                   "CTF estimator always runs on the CPU and ignores this).")
        form.addParallelSection(threads=2, mpi=0)

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        self.insertPerTsSteps(self.inputSetOfTiltSeries.get(), self.estimateStep,
                              processNeedsGPU=self.isGctf(), outputStep=self.createOutputStep)

    # -------------------------- STEPS functions ------------------------------
    def estimateStep(self, tsId):
        """Step: ``cryotiger ctf`` on series ``tsId`` (extra/<tsId>/<tsId>_ctf.json)."""
        self.forItem(tsId, self._estimate, tsId)

    def createOutputStep(self, tsId):
        """Step: the CTFTomoSeries of ``tsId`` from its CTF JSON (defocus in A)."""
        self.forItem(tsId, self._createOutputCtf, tsId)

    def _estimate(self, tsId):
        inputs = self._loadInputs(tsId)
        args = '--input "%s" --angles "%s" --output "%s" --pixel-size %s %s' % (
            inputs.stack, inputs.tlt, os.path.abspath(self._getCtfJson(tsId)),
            inputs.pixelSize, self._getEngineArgs())
        if inputs.excluded:       # disabled views are not estimated (and may share an angle)
            args += " --exclude %s" % inputs.excluded
        self.runEngine("ctf", args)

    # -------------------------- output --------------------------------------
    def _createOutputCtf(self, tsId):
        from ..engine.formats.ctf_json import read_ctf_json     # the engine's reader of its own file
        entries = read_ctf_json(self._getCtfJson(tsId))
        inputs = self._loadInputs(tsId)
        if len(entries) != len(inputs.records):
            raise ValueError("%s: %d CTF entries for %d tilt images" % (tsId, len(entries),
                                                                        len(inputs.records)))
        with self._lock:
            inSet = self.inputSetOfTiltSeries.get()
            ts = self.getTiltSeries(inSet, tsId)
            synthetic = {ti.getObjId(): isSynthetic(ti) for ti in ts.iterItems()}
            outSet = self._getOutputCtfSet(inSet)
            ctfTs = CTFTomoSeries()
            ctfTs.copyInfo(ts)
            ctfTs.setTiltSeries(ts)
            ctfTs.setTsId(tsId)
            ctfTs.setEnabled(True)
            ctfTs = self.appendOutputItem(outSet, ctfTs)
            for rec, e in zip(inputs.records, entries):
                ctf = CTFTomo()
                estimated = e["defocus_u"] is not None
                if estimated:
                    ctf.setStandardDefocus(e["defocus_u"], e["defocus_v"], e["astig_angle"])
                if e.get("fit_score") is not None:
                    ctf.setFitQuality(float(e["fit_score"]))
                if e.get("resolution") is not None:
                    ctf.setResolution(float(e["resolution"]))
                ctf.setIndex(rec.index if rec.index else rec.position)
                if rec.acqOrder is not None:
                    ctf.setAcquisitionOrder(int(rec.acqOrder))
                # A featureless tilt or an excluded view (not estimated): no defocus, disabled.
                ctf.setEnabled(bool(rec.enabled) and estimated)
                setattr(ctf, ATTR_SYNTHETIC, Boolean(synthetic.get(rec.objId, False)))
                ctfTs.append(ctf)
            ctfTs.write(properties=False)
            outSet.update(ctfTs)
            self.storeOutput(outSet)

    def _getOutputCtfSet(self, inSet):
        """The output SetOfCTFTomoSeries, made on first use (under the lock)."""
        outSet = getattr(self, OUT_CTFS, None)
        if outSet is not None:
            outSet.enableAppend()
            return outSet
        outSet = SetOfCTFTomoSeries.create(self._getPath(), template="CTFmodels%s.sqlite")
        outSet.setSetOfTiltSeries(self.inputSetOfTiltSeries)
        outSet.setStreamState(Set.STREAM_OPEN)
        self._defineOutputs(**{OUT_CTFS: outSet})
        self._defineSourceRelation(self.inputSetOfTiltSeries, outSet)
        return outSet

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = []
        inSet = self.inputSetOfTiltSeries.get()
        if inSet is None:
            return ["Select the input tilt series."]
        errors += validateTiltSeriesFiles(inSet)
        acq = inSet.getAcquisition()
        if acq is None or not acq.getVoltage():
            errors.append("The input tilt series have no acceleration voltage in their "
                          "acquisition; import them again giving voltage, Cs and amplitude "
                          "contrast.")
        if not inSet.getSamplingRate():
            errors.append("The input tilt series have no sampling rate (pixel size).")
        if (self.defocusMin.get() or 0) <= 0 or self.defocusMax.get() <= self.defocusMin.get():
            errors.append("Defocus search: min (%s A) must be positive and below max (%s A)."
                          % (self.defocusMin.get(), self.defocusMax.get()))
        if (self.defocusStep.get() or 0) <= 0:
            errors.append("Defocus search step must be positive (got %s A)." % self.defocusStep.get())
        high = self.highRes.get() or 0
        if high and inSet.getSamplingRate() and high < 2 * inSet.getSamplingRate():
            errors.append("Resolution band: the high end %g A is beyond Nyquist (%g A)."
                          % (high, 2 * inSet.getSamplingRate()))
        if high and self.lowRes.get() <= high:
            errors.append("Resolution band: the low end (%g A) must be larger than the high "
                          "end (%g A)." % (self.lowRes.get(), high))
        if self.isGctf() and Plugin.getGctfBinary() is None:
            errors.append("Gctf was not found: set the plugin variable %s to the Gctf "
                          "executable (or %s as for scipion-em-gctf), or choose the built-in "
                          "back end." % (GCTF_BIN, GCTF_HOME))
        return errors

    def _summary(self):
        summary = ["Back end: *%s*." % BACKEND_LABELS[self.backend.get()]]
        return summary + self.outputSummary(
            OUT_CTFS, lambda out: "CTF of %d tilt series estimated." % out.getSize())

    def _methods(self):
        out = getattr(self, OUT_CTFS, None)
        if out is None:
            return []
        how = ("Gctf [Zhang2016]" if self.isGctf() else
               "the cryoTIGER plugin's built-in estimator (averaged tile periodograms, CTF "
               "model fitted between %g and %s A)" % (self.lowRes.get(),
                                                     self.highRes.get() or "max(10, 2.5 px)"))
        return ["The defocus of every tilt of %d tilt series (synthetic tilts included) was "
                "estimated with %s, searching %g to %g Å in steps of %g Å (cryoTIGER plugin "
                "[Majtner2025])." % (out.getSize(), how, self.defocusMin.get(),
                                     self.defocusMax.get(), self.defocusStep.get())]

    def _citations(self):
        return ["Majtner2025"] + (["Zhang2016"] if self.isGctf() else [])

    # -------------------------- UTILS functions ------------------------------
    def isGctf(self) -> bool:
        """True when the Gctf back end (GPU binary) is selected."""
        return self.backend.get() == BACKEND_GCTF

    def _getEngineArgs(self) -> str:
        acq = self.inputSetOfTiltSeries.get().getAcquisition()
        args = "--voltage %s --cs %s --amp-contrast %s" % (
            acq.getVoltage(), acq.getSphericalAberration(), acq.getAmplitudeContrast())
        args += " --defocus-min %s --defocus-max %s --defocus-step %s" % (
            self.defocusMin.get(), self.defocusMax.get(), self.defocusStep.get())
        args += " --res-min %s --astig-max %s" % (self.lowRes.get(), self.astigMax.get())
        if self.highRes.get():
            args += " --res-max %s" % self.highRes.get()
        if self.tileSize.get():
            args += " --tile-size %d" % self.tileSize.get()
        if self.isGctf():
            args += ' --backend gctf --gctf "%s" --gpu-id "%%(GPU)s"' % Plugin.getGctfBinary()
        else:
            args += " --backend builtin --astigmatism %s" % ASTIG_CHOICES[self.astigmatism.get()]
            if self.defocusGradient.get():
                args += " --defocus-gradient"
        return args

    def _getCtfJson(self, tsId) -> str:
        return os.path.join(self.getTsFolder(tsId), "%s_ctf.json" % tsId)

    def _loadInputs(self, tsId) -> EngineInputs:
        return self.loadEngineInputs(tsId)
