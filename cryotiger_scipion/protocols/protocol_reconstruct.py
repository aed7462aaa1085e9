"""ProtCryoTigerReconstruct: tomograms by weighted back-projection, with 2D or
3D CTF correction (the novaCTF scheme), on the built-in CPU back end or the
novaCTF binary; one engine run (``cryotiger reconstruct``) per tilt series.

What the output is (docs/reconstruct.md):
* a SetOfTomograms, one MRC per series (extra/<tsId>/<tsId>.mrc, beside the
  defocus given to the engine, <tsId>_ctf.json), (z, y, x)
  with the tilt axis along y, sampling rate = input pixel size x binning,
  origin at the volume centre (Scipion's default), tsId set,
  ``ctfCorrected()`` True when a CTF correction was applied;
* CTF: per-tilt defocus U, V and angle from a SetOfCTFTomoSeries, matched to
  the tilt images by acquisition order (``tomo.utils.getCommonTsAndCtfElements``;
  by index for CTFs without acquisition order); every used tilt needs one;
* excluded (disabled) views are left out: views disabled in the tilt series
  and, when the CTF is corrected, views whose CTF entry is disabled in the
  CTF set (a user excluded that estimate); "experimental tilts only" also
  leaves out the tilts synthesised by the interpolation protocol (flag
  ``_cryotigerSynthetic``), e.g. for subtomogram averaging; a confidence
  threshold leaves out the synthetic tilts whose FILM confidence
  (``_cryotigerConfidence``) is below it, and those without one (the engine's
  ``--min-confidence`` rule).  The views left out and why are written to
  extra/<tsId>/<tsId>_reconstruct.json and the log.
"""
import json
import os

import pyworkflow.protocol.params as params
from pyworkflow.protocol import STEPS_PARALLEL
from tomo.objects import SetOfTiltSeries, SetOfTomograms, Tomogram

from .. import Plugin
from ..constants import OUT_FAILED, OUT_TOMOGRAMS
from ..convert import (EngineInputs, isSynthetic, microscopeOf, tiltConfidence,
                       validateTiltSeriesFiles)
from .forms import (addAlignedSizeParam, addInputCtfParam, addInputTiltSeriesParam, alignedSizeArgs,
                    parseAlignedSize, validateAlignedInput)
from .protocol_base import ProtCryoTigerBase

BACKEND_BUILTIN = 0
BACKEND_NOVACTF = 1
BACKEND_LABELS = ["built-in (CPU)", "novaCTF"]
BACKEND_NAMES = ["builtin", "novactf"]
CORRECTION_LABELS = ["3D (novaCTF scheme)", "phase flip (2D)", "none"]
CORRECTION_NAMES = ["3d", "phaseflip", "none"]
CTF_MODE_NAMES = ["phaseflip", "multiply"]
TILTS_ALL = 0
TILTS_EXPERIMENTAL = 1
FILTER_NAMES = ["ramp", "shepp-logan", "cosine", "hamming"]


class ProtCryoTigerReconstruct(ProtCryoTigerBase):
    """Reconstruct tomograms from aligned tilt series by weighted
    back-projection about the tilt axis, optionally CTF-corrected: in 3D
    (each height of the tomogram back-projected from images corrected with its
    own defocus, as novaCTF) or by 2D phase flipping. Runs on the built-in
    CPU back end or with the novaCTF program (located by the plugin variable
    CRYOTIGER_NOVACTF_BIN or NOVACTF_HOME). Synthetic tilts can be left out
    (experimental tilts only, e.g. for subtomogram averaging).
    """
    _label = "reconstruct tomogram (3D-CTF)"
    _possibleOutputs = {OUT_TOMOGRAMS: SetOfTomograms, OUT_FAILED: SetOfTiltSeries}
    stepsExecutionMode = STEPS_PARALLEL

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        addInputTiltSeriesParam(form, help="Tilt series resampled with their alignment "
                                           "(interpolated), or with per-image transforms, which "
                                           "are then applied. Disabled views are left out.")
        addInputCtfParam(form, help="Per-tilt defocus of the same tilt series (synthetic tilts "
                                    "included when they are used), matched by acquisition order. "
                                    "Needed for CTF correction.")
        form.addParam("ctfCorrection", params.EnumParam, choices=CORRECTION_LABELS, default=0,
                      label="CTF correction",
                      help="3D: the tomogram is cut into planes by height along the beam and "
                           "each voxel is back-projected from images corrected with the defocus "
                           "of its height (novaCTF scheme). Phase flip (2D): each image is "
                           "corrected with its own defocus. None: plain weighted "
                           "back-projection (no CTF estimation needed).")
        form.addParam("ctfMode", params.EnumParam, choices=["phase flip", "multiplication"],
                      default=0, condition="ctfCorrection!=2", label="Correct images by",
                      display=params.EnumParam.DISPLAY_HLIST,
                      help="Phase flipping, or multiplication by the CTF (novaCTF's "
                           "'multiplication').")
        form.addParam("backend", params.EnumParam, choices=BACKEND_LABELS, default=BACKEND_BUILTIN,
                      display=params.EnumParam.DISPLAY_HLIST, label="Back end",
                      help="built-in: numpy weighted back-projection, runs anywhere. novaCTF: "
                           "the novaCTF program (CPU), located by the plugin variable "
                           "CRYOTIGER_NOVACTF_BIN (or NOVACTF_HOME); IMOD is not needed.")
        form.addParam("tilts", params.EnumParam, choices=["all tilts", "experimental tilts only"],
                      default=TILTS_ALL, label="Tilts to use",
                      display=params.EnumParam.DISPLAY_HLIST,
                      help="Experimental tilts only: leave out the tilts synthesised by "
                           "cryoTIGER interpolation (for subtomogram averaging).")
        form.addParam("minConfidence", params.FloatParam, default=0,
                      condition="tilts==%d" % TILTS_ALL,
                      validators=[params.Range(0, 1, error="The confidence is a fraction from 0 "
                                                            "to 1.")],
                      label="Leave out synthetic tilts with confidence below",
                      help="Fraction from 0 to 1 (no unit): the per-tilt confidence that FILM "
                           "interpolation gives each synthetic tilt (attribute "
                           "_cryotigerConfidence; acquired tilts are 1 and always kept). "
                           "Synthetic tilts below this value are left out of the tomogram; "
                           "synthetic tilts without a confidence (linear interpolation) are left "
                           "out too. 0: keep all tilts. The views left out are listed in the log "
                           "and in extra/<tsId>/<tsId>_reconstruct.json.")
        form.addParam("thickness", params.IntParam, default=300, validators=[params.GT(0)],
                      label="Thickness (px)",
                      help="Tomogram thickness in pixels of the INPUT tilt series (divided by "
                           "the binning).")
        form.addParam("binning", params.IntParam, default=1, validators=[params.GE(1)],
                      label="Binning", help="Bin the images by this factor before reconstruction.")
        addAlignedSizeParam(form)
        group = form.addGroup("Filter", expertLevel=params.LEVEL_ADVANCED)
        group.addParam("radialCutoff", params.FloatParam, default=0.35, label="Radial cutoff",
                       help="Radial filter cutoff in cycles/pixel (0.5 = Nyquist), as IMOD's "
                            "RADIAL.")
        group.addParam("radialFalloff", params.FloatParam, default=0.05, label="Radial falloff",
                       help="Sigma of the Gaussian falloff beyond the cutoff (cycles/pixel).")
        group.addParam("filterWindow", params.EnumParam, choices=FILTER_NAMES, default=0,
                       condition="backend==%d" % BACKEND_BUILTIN, label="Window",
                       help="Window on the ramp filter (built-in back end).")
        group.addParam("sirtLike", params.IntParam, default=0, validators=[params.GE(0)],
                       label="SIRT-like iterations",
                       help="Weighting that mimics this many SIRT iterations (less noise, lower "
                            "resolution); 0: plain weighted back-projection.")
        group.addParam("defocusStep", params.FloatParam, default=0,
                       condition="ctfCorrection==0", label="Defocus step (Å)",
                       help="3D correction: spacing of the defocus planes in Angstrom; 0: the "
                            "step where the CTF phase changes by pi/4 at the radial cutoff.")
        form.addParallelSection(threads=2, mpi=0)

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        self.insertPerTsSteps(self.inputSetOfTiltSeries.get(), self.reconstructStep,
                              outputStep=self.createOutputStep)

    # -------------------------- STEPS functions ------------------------------
    def convertInputStep(self, tsId):
        """Step: engine input files of ``tsId`` and its CTF settings; a failure marks the
        series failed."""
        self.forItem(tsId, self._convertInput, tsId)

    def _convertInput(self, tsId):
        tsSet = self.inputSetOfTiltSeries.get()
        inputs = self.writeEngineInputs(tsSet, tsId)
        folder = os.path.dirname(inputs.tlt)
        with self._lock:
            ts = self.getTiltSeries(tsSet, tsId)
            synthetic = {ti.getObjId(): isSynthetic(ti) for ti in ts.iterItems()}
            confidence = {ti.getObjId(): tiltConfidence(ti) for ti in ts.iterItems()}
            micro = microscopeOf(ts.getAcquisition())
        reasons = {}
        for r in inputs.records:
            if not r.enabled:
                reasons[r.position] = "disabled in the tilt series"
            elif self.tilts.get() == TILTS_EXPERIMENTAL and synthetic.get(r.objId):
                reasons[r.position] = "synthetic"
            elif self.minConfidence.get() and synthetic.get(r.objId):
                c = confidence.get(r.objId)
                if c is None:
                    reasons[r.position] = "synthetic without a confidence (minimum %g)" % (
                        self.minConfidence.get())
                elif c < self.minConfidence.get():
                    reasons[r.position] = "synthetic, confidence %.4f below %g" % (
                        c, self.minConfidence.get())
        settings = {"microscope": micro, "pixelSize": inputs.pixelSize}
        if self.usesCtf():      # kept in extra/<tsId>/ with the tomogram, for the record
            ctfJson = os.path.abspath(os.path.join(self.getTsFolder(tsId), tsId + "_ctf.json"))
            self._writeCtfJson(tsId, inputs, reasons, ctfJson)
            settings["ctf"] = ctfJson
        exclude = sorted(reasons)
        if len(inputs.records) - len(exclude) < 2:
            raise ValueError("%d tilt(s) left after leaving out the disabled%s tilts; a tomogram "
                             "needs at least 2" % (len(inputs.records) - len(exclude),
                                                   " and synthetic" if self.tilts.get() else
                                                   " and low-confidence" if self.minConfidence.get()
                                                   else ""))
        settings["exclude"] = exclude
        settings["excludedWhy"] = {str(p): "%.2f deg: %s" % (inputs.records[p - 1].angle, why)
                                   for p, why in sorted(reasons.items())}
        if reasons:
            self.info("%s: %d view(s) left out: %s" % (tsId, len(reasons), "; ".join(
                "%s (%s)" % kv for kv in sorted(settings["excludedWhy"].items(),
                                                key=lambda kv: int(kv[0])))))
        for where in (folder, self.getTsFolder(tsId)):
            with open(os.path.join(where, tsId + "_reconstruct.json"), "w") as f:
                json.dump(settings, f, indent=1)

    def reconstructStep(self, tsId):
        """Step: ``cryotiger reconstruct`` on series ``tsId``."""
        self.forItem(tsId, self._reconstruct, tsId)

    def _reconstruct(self, tsId):
        folder = self.getTsFolder(tsId, tmp=True)
        inputs = EngineInputs.load(os.path.join(folder, tsId + "_inputs.json"))
        with open(os.path.join(folder, tsId + "_reconstruct.json")) as f:
            settings = json.load(f)
        self.runEngine("reconstruct", self._engineArgs(tsId, inputs, settings))

    def createOutputStep(self, tsId):
        """Step: the output Tomogram of ``tsId`` (voxel size in A from the series, binned)."""
        self.forItem(tsId, self._createOutputTomogram, tsId)

    def _createOutputTomogram(self, tsId):
        path = self.getOutputTomogram(tsId)
        if not os.path.exists(path):
            raise FileNotFoundError("%s: the engine wrote no tomogram" % path)
        corrected = self.usesCtf()
        with self._lock:
            inSet = self.inputSetOfTiltSeries.get()
            inTs = self.getTiltSeries(inSet, tsId)
            sampling = float(inTs.getSamplingRate() or inSet.getSamplingRate()) * self.binning.get()
            outSet = self.getOutputSet(OUT_TOMOGRAMS, inSet, createFunc=self._createSetOfTomograms)
            outSet.setSamplingRate(sampling)
            outSet.setCtfCorrected(corrected)
            tomo = Tomogram()
            tomo.setLocation(path)
            tomo.setSamplingRate(sampling)
            tomo.setTsId(tsId)
            tomo.setAcquisition(inTs.getAcquisition().clone())
            tomo.setOrigin()          # centre of the volume (the tilt axis), in Angstrom
            tomo.setCtfCorrected(corrected)
            self.appendOutputItem(outSet, tomo)
            self.storeOutput(outSet)

    # -------------------------- helpers --------------------------------------
    def usesCtf(self) -> bool:
        """True when a CTF correction (2D phase flip or 3D) is selected."""
        return CORRECTION_NAMES[self.ctfCorrection.get()] != "none"

    def getOutputTomogram(self, tsId) -> str:
        """Absolute path of the tomogram of ``tsId`` (extra/<tsId>/<tsId>.mrc)."""
        return os.path.abspath(os.path.join(self.getTsFolder(tsId), tsId + ".mrc"))

    def _engineArgs(self, tsId, inputs, settings) -> str:
        args = '--input "%s" --angles "%s" --output "%s" --thickness %d --binning %d' % (
            inputs.stack, inputs.tlt, self.getOutputTomogram(tsId), self.thickness.get(),
            self.binning.get())
        args += " --pixel-size %s" % settings["pixelSize"]
        if inputs.xf:
            args += ' --xf "%s"' % inputs.xf
        args += alignedSizeArgs(self.alignedSize.get(), inputs)
        if settings["exclude"]:
            args += " --exclude %s" % ",".join(str(p) for p in settings["exclude"])
        args += " --radial %s,%s" % (self.radialCutoff.get(), self.radialFalloff.get())
        if self.sirtLike.get():
            args += " --sirt-like %d" % self.sirtLike.get()
        correction = CORRECTION_NAMES[self.ctfCorrection.get()]
        if correction != "none":
            micro = settings["microscope"]
            args += ' --ctf "%s" --ctf-correction %s --ctf-mode %s' % (
                settings["ctf"], correction, CTF_MODE_NAMES[self.ctfMode.get()])
            args += " --voltage %s --cs %s --amp-contrast %s" % (
                micro["voltage"], micro["cs"], micro["amp_contrast"])
            if correction == "3d" and self.defocusStep.get():
                args += " --defocus-step %s" % self.defocusStep.get()
        else:
            args += " --ctf-correction none"
        args += " --backend %s" % BACKEND_NAMES[self.backend.get()]
        if self.backend.get() == BACKEND_NOVACTF:
            args += ' --novactf "%s"' % Plugin.getNovaCtfBinary()
        else:
            args += " --filter %s" % FILTER_NAMES[self.filterWindow.get()]
        return args

    def _writeCtfJson(self, tsId, inputs, reasons, path):
        """CTF.json for the engine: one entry per image in stack order, from the
        CTFTomo with the same acquisition order (or index, for CTFs without
        one), as ``tomo.utils.getCommonTsAndCtfElements`` pairs them.  A used
        view whose CTF entry is disabled is left out (added to ``reasons``,
        {position: why}); a used view without a CTF entry is an error."""
        with self._lock:
            entries = None
            for item in self.inputSetOfCtfTomoSeries.get().iterItems():
                if item.getTsId() == tsId:
                    entries = [(c.getAcquisitionOrder(), c.getIndex(), c.getDefocusU(),
                                c.getDefocusV(), c.getDefocusAngle(), bool(c.isEnabled()))
                               for c in item.iterItems()]
                    break
            if entries is None:
                raise ValueError("no CTF estimation for this tilt series in the selected "
                                 "CTF set; estimate the CTF of these tilt series first")
        byAcq = any(e[0] is not None for e in entries)
        key = 0 if byAcq else 1
        table = {e[key]: e for e in entries}
        out, missing = [], []
        for r in inputs.records:
            k = r.acqOrder if byAcq else r.index
            e = table.get(k)
            if e is not None and not e[5] and r.position not in reasons:
                reasons[r.position] = "CTF entry disabled"
            if e is not None and (e[2] is None or e[3] is None):
                e = None          # a tilt whose CTF was not estimated (featureless): no defocus
            if e is None:
                if r.position not in reasons:
                    missing.append("%.2f" % r.angle)
                out.append(None)
            else:
                out.append({"angle": r.angle, "defocus_u": float(e[2]), "defocus_v": float(e[3]),
                            "astig_angle": float(e[4] or 0.0)})
        if missing:
            raise ValueError("no CTF for the tilt(s) at %s degrees (matched by %s); estimate the "
                             "CTF of every tilt used (synthetic ones included) or use "
                             "'experimental tilts only'" % (", ".join(missing[:8]),
                                                            "acquisition order" if byAcq else "index"))
        known = [o for o in out if o is not None]
        if not known:
            raise ValueError("no tilt left with an enabled CTF entry")
        for i, o in enumerate(out):      # left-out tilts without CTF: any valid value
            if o is None:
                out[i] = dict(known[0], angle=inputs.records[i].angle)
        from ..engine.formats.ctf_json import write_ctf_json
        write_ctf_json(path, out)

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = validateAlignedInput(self.inputSetOfTiltSeries.get())
        if errors:
            return errors
        errors += validateTiltSeriesFiles(self.inputSetOfTiltSeries.get())
        if self.usesCtf() and self.inputSetOfCtfTomoSeries.get() is None:
            errors.append("CTF correction '%s' needs a CTF estimation: select one (e.g. "
                          "'cryotiger - estimate CTF') or set CTF correction to none."
                          % CORRECTION_LABELS[self.ctfCorrection.get()])
        if self.backend.get() == BACKEND_NOVACTF and not Plugin.getNovaCtfBinary():
            errors.append("novaCTF was not found: set the plugin variable CRYOTIGER_NOVACTF_BIN "
                          "to the novaCTF program (or NOVACTF_HOME to its folder), or use the "
                          "built-in back end.")
        if not 0 < (self.radialCutoff.get() or 0) <= 0.5:
            errors.append("Radial cutoff %s must be in (0, 0.5] cycles/pixel."
                          % self.radialCutoff.get())
        if (self.radialFalloff.get() or 0) < 0:
            errors.append("Radial falloff must be >= 0.")
        if (self.defocusStep.get() or 0) < 0:
            errors.append("Defocus step must be >= 0 (0: automatic).")
        if not 0 <= (self.minConfidence.get() or 0) <= 1:
            errors.append("Leave out synthetic tilts with confidence below %s: give a fraction "
                          "from 0 to 1 (0: keep all)." % self.minConfidence.get())
        try:
            parseAlignedSize(self.alignedSize.get())
        except ValueError as e:
            errors.append(str(e))
        return errors

    def _summary(self):
        summary = ["Back end: *%s*, CTF correction: *%s*, %s, thickness %d px, binning %d."
                   % (BACKEND_LABELS[self.backend.get()], CORRECTION_LABELS[self.ctfCorrection.get()],
                      "experimental tilts only" if self.tilts.get() == TILTS_EXPERIMENTAL
                      else "synthetic tilts with confidence below %g left out"
                      % self.minConfidence.get() if self.minConfidence.get()
                      else "all tilts", self.thickness.get(), self.binning.get())]
        return summary + self.outputSummary(
            OUT_TOMOGRAMS, lambda out: "%d tomogram(s) at %.2f Å/px."
                                       % (out.getSize(), out.getSamplingRate()))

    def _methods(self):
        out = getattr(self, OUT_TOMOGRAMS, None)
        if out is None:
            return []
        corr = CORRECTION_NAMES[self.ctfCorrection.get()]
        how = {"3d": "with 3D CTF correction (novaCTF scheme [Turonova2017])",
               "phaseflip": "after 2D phase flipping", "none": "without CTF correction"}[corr]
        backend = ("novaCTF [Turonova2017]" if self.backend.get() == BACKEND_NOVACTF
                   else "the cryoTIGER plugin's built-in back end [Majtner2025]")
        return ["%d tomogram(s) were reconstructed by weighted back-projection %s with %s, "
                "%d px thick, binning %d, radial filter cutoff %g cycles/px%s."
                % (out.getSize(), how, backend, self.thickness.get(), self.binning.get(),
                   self.radialCutoff.get(),
                   ", from the experimental tilts only (synthetic tilts left out)"
                   if self.tilts.get() == TILTS_EXPERIMENTAL else
                   ", leaving out synthetic tilts with a FILM confidence below %g"
                   % self.minConfidence.get() if self.minConfidence.get() else "")]

    def _citations(self):
        cites = ["Majtner2025"]
        if self.backend.get() == BACKEND_NOVACTF or (
                self.usesCtf() and CORRECTION_NAMES[self.ctfCorrection.get()] == "3d"):
            cites.append("Turonova2017")
        return cites
