"""ProtCryoTigerExport: per-tilt metadata of tilt series (synthetic tilts
included and labelled) for IMOD, STOPGAP/cryoCAT and RELION 5, one folder per
series, by the engine's ``cryotiger export`` (docs/export.md).

Per tilt series ``tsId`` (stack order = tilt images sorted by index):

* ``extra/<tsId>/input/``: the engine's inputs written from the Scipion
  objects: the stack (the imported file itself when it is exactly images 1..n
  of one MRC file, else ``<tsId>.mrcs``), ``<tsId>_record.json`` in the
  layout of the interpolation record OUT.json (angle; ``synthetic`` from the
  plugin's ``_cryotigerSynthetic``; ``excluded`` = disabled image;
  ``acquisition_order``; ``dose`` = dosePerFrame; ``accum_dose`` = dose before
  the image = accumDose - dosePerFrame) and, with a CTF set,
  ``<tsId>_ctf.json`` (defocus U, V, angle of each CTFTomo with its
  acquisition order, matched by the engine to the tilts by acquisition order;
  by index for CTFs without one; a CTFTomo without defocus or disabled is
  written as not estimated, refused only for a tilt the export uses).
* ``extra/<tsId>/``: the exported files (names as ``cryotiger export`` with
  ``--name <tsId>``).  The RELION star names images of the stack above, which
  stays in the project.

Where a tool reads one file for all tomograms, the series' files are also
joined: ``extra/tomograms.star`` (RELION 5) and ``extra/wedgelist.star``
(STOPGAP; ``tomo_num`` = the series' position 1, 2, ...).
The protocol makes no Scipion objects of its own (series that fail go to the
shared ``FailedTiltSeries`` output with their reason); the summary lists the
folders.
Input series must be aligned AND resampled (``interpolated()``): the exported
metadata say "aligned stack" (identity .xf, no RELION shifts).
"""
import json
import os

import pyworkflow.protocol.params as params
from pyworkflow.object import Set, String
from pyworkflow.protocol import MODE_RESTART, STEPS_PARALLEL

from ..convert import isSynthetic, microscopeOf
from ..convert import EngineInputs
from .forms import addInputCtfParam, addInputTiltSeriesParam
from .protocol_base import ProtCryoTigerBase

FORMAT_LABELS = ["IMOD", "STOPGAP / cryoCAT", "RELION 5", "all three"]
FORMAT_NAMES = [["imod"], ["stopgap"], ["relion5"], ["imod", "stopgap", "relion5"]]


class ProtCryoTigerExport(ProtCryoTigerBase):
    """Export the per-tilt metadata of aligned tilt series for subtomogram
    averaging and template matching: tilt angles, doses (accumulated dose),
    defocus (from a CTF estimation) and which tilts are synthetic (made by
    cryoTIGER interpolation), as IMOD files (.tlt, .xf, .defocus, exclude
    list), a STOPGAP/cryoCAT wedge list or RELION 5 tilt-series and
    tomograms STAR files. One folder per tilt series (extra/<tsId>).
    """
    _label = "export tilt series (IMOD / STOPGAP / RELION 5)"
    _possibleOutputs = {}
    stepsExecutionMode = STEPS_PARALLEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.exportedItems = String()      # "tsId" lines of the series exported

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        addInputTiltSeriesParam(form, help="Tilt series resampled with their alignment (e.g. the "
                                           "output of 'cryotiger - interpolate tilt series'). "
                                           "Disabled views are carried as excluded; synthetic "
                                           "tilts are labelled.")
        addInputCtfParam(form, help="Per-tilt defocus of the same tilt series (synthetic tilts "
                                    "included unless 'experimental tilts only'), matched by "
                                    "acquisition order. Without it no defocus is exported.")
        form.addParam("exportFormat", params.EnumParam, choices=FORMAT_LABELS, default=2,
                      label="Format",
                      help="IMOD: <tsId>.tlt, .xf, .defocus, _exclude.txt, _synthetic.txt. "
                           "STOPGAP / cryoCAT: <tsId>_wedgelist.star. RELION 5: <tsId>.star "
                           "and tomograms.star. See docs/export.md.")
        form.addParam("experimentalOnly", params.BooleanParam, default=False,
                      label="Experimental tilts only?",
                      help="Leave out the synthetic tilts (IMOD: in the exclude list; STOPGAP, "
                           "RELION: no row), e.g. for subtomogram averaging.")
        form.addParam("thickness", params.IntParam, default=0, validators=[params.GE(0)],
                      label="Tomogram thickness (px)",
                      help="Z size of the tomogram in pixels of the tilt series (STOPGAP tomo_z, "
                           "RELION rlnTomoSizeZ); x and y are the image size. 0: half the "
                           "image width.")
        form.addParallelSection(threads=2, mpi=0)

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        if self.runMode.get() == MODE_RESTART:
            self.exportedItems.set(None)      # Restart: every series is exported again
            self._store(self.exportedItems)
        self.insertPerTsSteps(self.inputSetOfTiltSeries.get(), self.exportStep,
                              finalStep=self.closeStep)

    # -------------------------- STEPS functions ------------------------------
    def convertInputStep(self, tsId):
        """Step: the engine's inputs of series ``tsId`` in extra/<tsId>/input/
        (stack as it is, no alignment applied; <tsId>_record.json, and
        <tsId>_ctf.json with a CTF set); a failure marks the series failed."""
        self.forItem(tsId, self._convertInput, tsId)

    def _convertInput(self, tsId):
        folder = self._inputFolder(tsId)
        inputs = self.writeEngineInputs(self.inputSetOfTiltSeries.get(), tsId, folder=folder,
                                        applyAlignment=False)
        with self._lock:
            ts = self.getTiltSeries(self.inputSetOfTiltSeries.get(), tsId)
            synthetic = {ti.getObjId(): isSynthetic(ti) for ti in ts.iterItems()}
            micro = microscopeOf(ts.getAcquisition())
        orders = [r.acqOrder for r in inputs.records]
        useOrders = all(o is not None for o in orders) and len(set(orders)) == len(orders)
        record = [{"index": r.position - 1, "angle": r.angle, "synthetic": synthetic.get(r.objId, False),
                   "excluded": not r.enabled,
                   "acquisition_order": int(r.acqOrder) if useOrders else r.position,
                   "dose": r.dose, "accum_dose": r.priorDose} for r in inputs.records]
        from ..engine.formats.record import write_record     # the engine's writer of OUT.json
        write_record(self._recordJson(tsId), record)
        import mrcfile
        with mrcfile.open(inputs.stack, mode="r", permissive=True, header_only=True) as m:
            size = [int(m.header.nx), int(m.header.ny)]          # x, y in pixels
        settings = {"microscope": micro, "pixelSize": inputs.pixelSize, "size": size}
        if self.inputSetOfCtfTomoSeries.get() is not None:
            self._writeCtfJson(tsId, inputs, useOrders)
            settings["ctf"] = self._ctfJson(tsId)
        with open(os.path.join(folder, tsId + "_export.json"), "w") as f:
            json.dump(settings, f)

    def exportStep(self, tsId):
        """Step: ``cryotiger export`` of series ``tsId`` in each chosen format,
        into extra/<tsId>/; the series counts as exported only when every
        format was written.  A failure marks the series failed."""
        self.forItem(tsId, self._export, tsId)

    def _export(self, tsId):
        self._setExported(tsId, False)         # until this run has exported it
        folder = self._inputFolder(tsId)
        inputs = EngineInputs.load(os.path.join(folder, tsId + "_inputs.json"))
        with open(os.path.join(folder, tsId + "_export.json")) as f:
            settings = json.load(f)
        for fmt in FORMAT_NAMES[self.exportFormat.get()]:
            self.runEngine("export", self._engineArgs(tsId, inputs, settings, fmt))
        self._setExported(tsId, True)

    def _setExported(self, tsId, done: bool) -> None:
        with self._lock:
            lines = [l for l in (self.exportedItems.get() or "").split("\n") if l and l != tsId]
            self.exportedItems.set("\n".join(lines + ([tsId] if done else [])) or None)
            self._store(self.exportedItems)

    def closeStep(self):
        """Fail when no tilt series was exported; list the failed ones; join the
        series' files where the tool reads one file for all tomograms:
        extra/tomograms.star (RELION 5) and extra/wedgelist.star (STOPGAP).

        Raises:
            RuntimeError: every tilt series failed (nothing was exported).
        """
        from ..engine.export import combine_relion_tomograms, combine_stopgap_wedgelists
        with self._lock:        # the only set is FailedTiltSeries (series that failed), if any
            for _, output in self.iterOutputAttributes():
                if isinstance(output, Set):
                    output.setStreamState(Set.STREAM_CLOSED)
                    output.write()
                    self._store(output)
        failed = self.getFailedItems()
        done = sorted(self.getExportedTsIds())
        if not done:
            raise RuntimeError("Nothing was exported: every tilt series failed (%s)"
                               % "; ".join("%s: %s" % kv for kv in sorted(failed.items())))
        formats = FORMAT_NAMES[self.exportFormat.get()]
        if "relion5" in formats:
            combine_relion_tomograms([os.path.join(self.getExportFolder(t), "tomograms.star")
                                      for t in done], self.getCombinedFile("relion5"))
        if "stopgap" in formats:
            combine_stopgap_wedgelists([os.path.join(self.getExportFolder(t), t + "_wedgelist.star")
                                        for t in done], self.getCombinedFile("stopgap"))
        if failed:
            self.warning("%d tilt series failed: %s" % (len(failed), ", ".join(sorted(failed))))

    def getCombinedFile(self, fmt) -> str:
        """Absolute path of the file joining all series: extra/tomograms.star
        (``fmt`` 'relion5') or extra/wedgelist.star ('stopgap'); KeyError for
        another format."""
        name = {"relion5": "tomograms.star", "stopgap": "wedgelist.star"}[fmt]
        return os.path.abspath(self._getExtraPath(name))

    # -------------------------- helpers --------------------------------------
    def getExportFolder(self, tsId) -> str:
        """Absolute path of extra/<tsId> (created): the exported files of one tilt series."""
        return os.path.abspath(self.getTsFolder(tsId))

    def getExportedTsIds(self) -> list:
        """tsIds (str) of the series exported in this run, in the order they finished."""
        return [l for l in (self.exportedItems.get() or "").split("\n") if l]

    def _inputFolder(self, tsId) -> str:
        folder = os.path.join(self.getTsFolder(tsId), "input")
        os.makedirs(folder, exist_ok=True)
        return os.path.abspath(folder)

    def _recordJson(self, tsId) -> str:
        return os.path.join(self._inputFolder(tsId), tsId + "_record.json")

    def _ctfJson(self, tsId) -> str:
        return os.path.join(self._inputFolder(tsId), tsId + "_ctf.json")

    def _engineArgs(self, tsId, inputs, settings, fmt) -> str:
        micro = settings["microscope"]
        args = ('--input "%s" --record "%s" --format %s --output "%s" --name "%s" '
                '--pixel-size %s --voltage %s --cs %s --amp-contrast %s --quiet'
                % (inputs.stack, self._recordJson(tsId), fmt, self.getExportFolder(tsId), tsId,
                   settings["pixelSize"], micro["voltage"], micro["cs"], micro["amp_contrast"]))
        if settings.get("ctf"):
            args += ' --ctf "%s"' % settings["ctf"]
        if self.experimentalOnly.get():
            args += " --experimental-only"
        if self.thickness.get() and settings.get("size"):
            x, y = settings["size"]
            args += " --tomo-size %d,%d,%d" % (x, y, self.thickness.get())
        if fmt == "stopgap":
            args += " --tomo-num %d" % (self.getTsIds(self.inputSetOfTiltSeries.get()).index(tsId) + 1)
        return args

    def _writeCtfJson(self, tsId, inputs, useOrders):
        """CTF.json for the engine: one entry per CTFTomo of ``tsId``, with its
        acquisition order (the engine matches by it); CTFs without acquisition
        orders are matched here by index and written in stack order."""
        with self._lock:
            entries = None
            for item in self.inputSetOfCtfTomoSeries.get().iterItems():
                if item.getTsId() == tsId:
                    # A CTFTomo without defocus (not estimated: featureless tilt) or
                    # disabled (a fit the user rejected) gives no defocus: the engine
                    # refuses it only for a tilt that the export uses.
                    entries = [(c.getAcquisitionOrder(), c.getIndex(),
                                None if c.getDefocusU() is None or not c.isEnabled()
                                else (float(c.getDefocusU()), float(c.getDefocusV()),
                                      float(c.getDefocusAngle() or 0.0)))
                               for c in item.iterItems()]
                    break
        if entries is None:
            raise ValueError("no CTF estimation for this tilt series in the selected CTF set; "
                             "estimate the CTF of these tilt series first")
        def values(e):
            if e[2] is None:
                return {"estimated": False, "defocus_u": None, "defocus_v": None,
                        "astig_angle": None}
            return {"defocus_u": e[2][0], "defocus_v": e[2][1], "astig_angle": e[2][2]}

        if useOrders and all(e[0] is not None for e in entries):
            out = [dict(values(e), acquisition_order=int(e[0])) for e in entries]
        else:
            byIndex = {e[1]: e for e in entries}
            out = []
            for r in inputs.records:
                e = byIndex.get(r.index)
                if e is None:
                    raise ValueError("no CTF for the tilt image %d (%.2f deg), matched by index; "
                                     "estimate the CTF of every tilt" % (r.index, r.angle))
                out.append(dict(values(e), angle=r.angle))
        from ..engine.formats.ctf_json import write_ctf_json  # the engine's writer of CTF.json
        write_ctf_json(self._ctfJson(tsId), out)

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = []
        tsSet = self.inputSetOfTiltSeries.get()
        if tsSet is None:
            return ["Input tilt series: no input selected"]
        if not tsSet.interpolated():
            errors.append("The export describes aligned, resampled stacks (identity transforms), "
                          "but the input tilt series are not resampled with their alignment "
                          "(interpolated). Use the output of 'cryotiger - interpolate tilt "
                          "series' or of an alignment protocol that resamples the images.")
        return errors

    def _summary(self):
        summary = ["Format: *%s*%s." % (FORMAT_LABELS[self.exportFormat.get()],
                                        ", experimental tilts only" if self.experimentalOnly.get()
                                        else "")]
        done = self.getExportedTsIds()
        if done:
            summary.append("%d tilt series exported, one folder each under %s"
                           % (len(done), os.path.abspath(self._getExtraPath())))
            summary += ["    %s: %s" % (tsId, self.getExportFolder(tsId)) for tsId in sorted(done)]
        elif not self.getFailedItems():
            summary.append("Nothing exported yet.")
        summary += self._failedSummary()
        return summary

    def _methods(self):
        done = self.getExportedTsIds()
        if not done:
            return []
        return ["Per-tilt metadata (tilt angle, accumulated dose, defocus, synthetic flag) of %d "
                "tilt series were exported for %s with cryoTIGER." %
                (len(done), FORMAT_LABELS[self.exportFormat.get()])]
