"""What every cryoTIGER protocol shares (conversion lives in ``convert.py``).

The protocols are thin: they write a tilt series to plain files
(``cryotiger_scipion/convert.py``), run the ``cryotiger`` engine on them
(inside the managed environment) and turn the engine's files back into Scipion
objects (convert.py again).  This module holds what they share beyond that:

1. **Engine inputs of a series** (:meth:`ProtCryoTigerBase.writeEngineInputs`:
   reads the series under the protocol lock and hands it to
   ``convert.writeEngineFiles``; :meth:`loadEngineInputs`).
2. **Running the engine** (:meth:`ProtCryoTigerBase.runEngine`) and the GPU
   form parameters and device arguments.
3. **Output bookkeeping**: one output set made lazily and filled tilt series
   by tilt series under the protocol lock (steps run in parallel threads),
   closed at the end; tilt series that failed are recorded, logged, listed
   in the summary and copied, with the reason, into an output set of their
   own, ``FailedTiltSeries`` (:meth:`addFailedItem`), never silently dropped.
   Registering a series' output twice (a run resumed after it was killed
   just after the commit) replaces the first entry (:meth:`appendOutputItem`).

Restart and Continue (:meth:`prepareRetry`, called when the steps are
inserted): *Restart* deletes the outputs (Scipion) and forgets the failed
series, so every series without output is processed again; *Continue* keeps
the series that finished and retries the failed ones (their steps, and the
final step, are marked to run again; they leave the failed set).

Form fields several protocols share and the check that an input is aligned
live in ``forms.py``; conversion in ``convert.py``.

Units: angles in degrees, pixel sizes in Angstrom, doses in e/A^2; stacks are
(n, y, x) and "stack order" means the tilt images sorted by their index.
"""
import json
import os
from typing import Dict, List, Optional

import pyworkflow as pw
import pyworkflow.protocol.params as params
from pyworkflow.object import Set, String
from pyworkflow.protocol import MODE_RESTART, STEPS_PARALLEL
from pwem.protocols import EMProtocol
from tomo.objects import TiltSeries
from tomo.protocols import ProtTomoBase

from .. import Plugin
from ..constants import IN_TILTSERIES, ATTR_FAILED_REASON, OUT_FAILED
from ..convert import (EngineInputs, needsTransforms, newOutputTs, newTiltImage, tiltRecords,
                       updateTsAcquisition, writeEngineFiles)
from .streaming import TsStreamingMixin

# Engine device arguments when the GPU is used; Scipion replaces %(GPU)s with
# the GPUs given to the running thread, space separated.
GPU_DEVICE_ARGS = '--device gpu --gpu-ids "%(GPU)s"'
CPU_DEVICE_ARGS = "--device cpu"


def findSavedModel(folder: Optional[str], maxDepth: int = 4) -> Optional[str]:
    """The FILM SavedModel folder (the one holding ``saved_model.pb``) at or
    below ``folder``, searched ``maxDepth`` levels deep; FILM's own download
    nests it as film_net/<Style|VGG|L1>/saved_model, and 'Style' is
    preferred, as in cryoTIGER.  Used for the published models, trained
    models (CryoTigerModel folders) and folders given by the user.

    Returns the folder's path (as given, not made absolute), or None when
    ``folder`` is empty, not a folder, or holds no SavedModel."""
    if not folder or not os.path.isdir(folder):
        return None
    if os.path.isfile(os.path.join(folder, "saved_model.pb")):
        return folder
    if maxDepth <= 0:
        return None
    subs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    subs.sort(key=lambda d: (d != "Style", d != "saved_model", d))
    for d in subs:
        found = findSavedModel(os.path.join(folder, d), maxDepth - 1)
        if found:
            return found
    return None


# ---------------------------------------------------------------------------
# The base protocol
# ---------------------------------------------------------------------------
class ProtCryoTigerBase(TsStreamingMixin, EMProtocol, ProtTomoBase):
    """Base of the cryoTIGER protocols (not shown in the GUI: no _label).

    Subclasses typically insert, per tilt series, one step that calls
    :meth:`writeEngineInputs`, :meth:`runEngine` and then adds the results to
    an output set with :meth:`getOutputSet` / :meth:`storeOutput`, and a last
    :meth:`closeOutputSetsStep`.  Wrap a per-series step body in
    ``try/except Exception as e: self.addFailedItem(tsId, e)`` so that one bad
    series does not lose the others; :meth:`closeOutputSetsStep` fails the
    protocol when nothing was produced.
    """
    _devStatus = pw.BETA
    stepsExecutionMode = STEPS_PARALLEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # "tsId: message" lines of the tilt series that failed.
        self.failedItems = String()

    # -------------------------- form helpers ---------------------------------
    @staticmethod
    def _defineGpuParams(form, default: Optional[bool] = None, perSeries: bool = False,
                         help: Optional[str] = None):
        """Hidden GPU parameters (Scipion shows them in the run header):
        ``useGpu`` and ``gpuList``.  ``useGpu`` defaults to what works here:
        True only when TensorFlow in the managed environment has been seen to
        find a GPU (:meth:`Plugin.engineSeesGpu`, cached; no probe while the
        form is drawn).  Use :meth:`engineDeviceArgs` in commands: it falls
        back to the CPU, with a warning in the log, when no GPU is seen.
        ``perSeries``: the protocol runs one engine process per tilt series
        (parallel steps); adds ``procsPerGpu`` (see :meth:`getGpuList`)."""
        if default is None:
            default = Plugin.engineSeesGpu(probe=False)
        form.addHidden(params.USE_GPU, params.BooleanParam, default=default,
                       label="Use GPU for the network?",
                       help=help or "Run the network (FILM interpolation, training) on a GPU. "
                            "Needs the managed environment built with CUDA (CRYOTIGER_CUDA=True) "
                            "and a GPU that TensorFlow sees; without one the run uses the CPU "
                            "(slower) and says so in its log.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPU ids to use, separated by spaces (e.g. '0 1'). "
                                             "With several, tilt series run in parallel, one "
                                             "engine process per GPU (set Threads to at least "
                                             "GPUs + 1).")
        if perSeries:
            form.addParam("procsPerGpu", params.IntParam, default=1,
                          expertLevel=params.LEVEL_ADVANCED, label="Engine processes per GPU",
                          help="Tilt series processed at the same time on each GPU of the list "
                               "(when its memory holds several; FILM needs about --max-memory "
                               "GiB each). Needs Threads >= GPUs x this + 1.")

    def getGpuList(self):
        """GPU ids as Scipion's steps executor hands them out: one GPU slot per
        id, each id repeated ``procsPerGpu`` times (round-robin: '0 1' x 2 ->
        [0, 1, 0, 1]) when steps run in parallel (Threads > 1), so that this
        many engine processes run on each GPU at once.  Each engine process sees
        only its slot's GPU (CUDA_VISIBLE_DEVICES, see :meth:`runEngine`)."""
        gpus = super().getGpuList()
        k = self.procsPerGpu.get() if hasattr(self, "procsPerGpu") and self.procsPerGpu.get() else 1
        if gpus and k > 1 and self.numberOfThreads.get() and self.numberOfThreads.get() > 1:
            gpus = [g for _ in range(k) for g in gpus]
        return gpus

    def gpuSlotWarnings(self) -> List[str]:
        """Validation warnings (list of str; empty when fine): one when fewer
        parallel steps (Threads - 1) than GPU slots (GPUs x processes per
        GPU) are set, so that some listed GPUs would stay idle."""
        if not self.usesGpu() or not hasattr(self, "procsPerGpu"):
            return []
        ids = super().getGpuList()
        slots = len(ids) * max(1, self.procsPerGpu.get() or 1)
        workers = max(1, (self.numberOfThreads.get() or 1) - 1)
        if slots > workers:
            return ["%d GPU(s) x %d process(es) per GPU = %d engine processes at once, but "
                    "Threads = %d runs only %d tilt series at a time: set Threads to %d to use "
                    "every GPU." % (len(ids), max(1, self.procsPerGpu.get() or 1), slots,
                                    self.numberOfThreads.get() or 1, workers, slots + 1)]
        return []

    def gpuWarnings(self, useNetwork: bool = True, what: str = "FILM") -> List[str]:
        """Validation warnings (list of str) about the device: the GPU is
        selected but TensorFlow in the managed environment sees none (the run
        will use the CPU), or the network runs on the CPU (slow).  Empty when
        ``useNetwork`` is False (no network in this run, e.g. linear).
        ``what`` names the network's use in the message ("FILM", "Training")."""
        if not useNetwork:
            return []
        if self.usesGpu():
            if Plugin.engineSeesGpu(probe=True) is False:
                return ["'Use GPU' is Yes but TensorFlow in the managed environment sees no GPU "
                        "on this machine: %s will run on the CPU, which is much slower (minutes "
                        "per image pair on large images)." % what]
            return []
        return ["%s runs on the CPU: this is slow (minutes per image pair on large images); "
                "select a GPU or use smaller (binned) tilt series." % what]

    # -------------------------- engine ---------------------------------------
    def runEngine(self, subcommand: str, args: str, **kwargs) -> None:
        """Run ``cryotiger <subcommand> <args>`` in the managed environment
        (Scipion's runJob; ``kwargs`` go to it).

        ``args`` is one command-line string (quote paths) and may contain
        ``%(GPU)s`` (see :meth:`engineDeviceArgs`); then, outside a queue and
        unless CUDA_VISIBLE_DEVICES is set, the process sees only its slot's
        GPUs.  Raises RuntimeError on a non-zero exit, with the engine's
        one-line message ('cryotiger SUB: error: ...') taken from the run log
        when there is one.
        """
        program = Plugin.getEngineCommand()
        if "%(GPU)s" in args and not self.useQueue() and not os.environ.get("CUDA_VISIBLE_DEVICES"):
            # The GPU(s) of this step's slot (Scipion fills %(GPU)s, comma
            # separated here): the engine process sees only them.  Not in a
            # queue job or where CUDA_VISIBLE_DEVICES is already set (SLURM
            # sets it): there Scipion's ids are indices into the visible GPUs,
            # which is how the engine reads --gpu-ids.
            program = "export CUDA_VISIBLE_DEVICES=%(GPU)s && " + program
        try:
            self.runJob(program, "%s %s" % (subcommand, args),
                        env=Plugin.getEnviron(), **kwargs)
        except Exception as e:
            message = self._lastEngineError(subcommand, args)
            status = getattr(e, "returncode", None)
            raise RuntimeError(message or "cryotiger %s failed (exit status %s); see the run log"
                               % (subcommand, status)) from e

    def _lastEngineError(self, subcommand: str, args: str = "") -> Optional[str]:
        """The engine's one-line message ('cryotiger SUB: error: ...') from the
        end of the run's stderr log; with parallel steps, a line naming one of
        this command's files is preferred."""
        tag = "cryotiger %s: error:" % subcommand
        try:
            lines = [l.strip() for l in self.getLogsLastLines(200, logFile=1) if tag in l]
        except Exception:
            return None
        if not lines:
            return None
        paths = [w.strip('"') for w in args.split() if os.sep in w]
        for line in reversed(lines):
            if any(p in line or os.path.basename(p) in line for p in paths):
                return line[line.index(tag):]
        return lines[-1][lines[-1].index(tag):]

    def engineDeviceArgs(self, useNetwork: bool = True) -> str:
        """Engine device arguments (str):
        ``--device gpu --gpu-ids "%(GPU)s"`` when the GPU is used (Scipion fills
        in the GPUs given to the running thread, space separated), else
        ``--device cpu``.  ``useNetwork`` False (e.g. linear method): always cpu.
        'Use GPU' Yes but no GPU seen by TensorFlow in the managed environment:
        ``--device cpu`` and a warning in the run log."""
        if useNetwork and self.usesGpu():
            if Plugin.engineSeesGpu(probe=True) is False:
                self.warning("Use GPU is Yes but TensorFlow in the managed environment sees no "
                             "GPU on %s: running on the CPU (much slower)."
                             % pw.utils.getHostName())
                return CPU_DEVICE_ARGS
            return GPU_DEVICE_ARGS
        return CPU_DEVICE_ARGS

    def stepNeedsGpu(self, useNetwork: bool = True) -> bool:
        """Value for ``_insertFunctionStep(..., needsGPU=...)``: False when
        the GPU is not selected or TensorFlow sees none (the run uses the CPU)."""
        return bool(useNetwork and self.usesGpu() and Plugin.engineSeesGpu(probe=True) is not False)

    # -------------------------- input helpers --------------------------------
    def getTsIds(self, tsSet) -> List[str]:
        """Tilt-series ids (str) of the enabled series of ``tsSet`` (SetOfTiltSeries), sorted."""
        return sorted(ts.getTsId() for ts in tsSet.iterItems() if ts.isEnabled())

    def getTiltSeries(self, tsSet, tsId: str) -> TiltSeries:
        """The TiltSeries ``tsId`` of ``tsSet`` (SetOfTiltSeries; call under
        ``self._lock``).  Raises ValueError when the set has no such series."""
        ts = tsSet.getTiltSeriesFromTsId(tsId)
        if ts is None:
            raise ValueError("%s: no tilt series with this id in the input" % tsId)
        return ts

    def getTsFolder(self, tsId: str, tmp: bool = False) -> str:
        """Path of extra/<tsId> (outputs) or, with ``tmp``, tmp/<tsId> (engine
        inputs), relative to the project; created when missing."""
        folder = self._getTmpPath(tsId) if tmp else self._getExtraPath(tsId)
        os.makedirs(folder, exist_ok=True)
        return folder

    def writeEngineInputs(self, tsSet, tsId: str, folder: Optional[str] = None,
                          applyAlignment: bool = True) -> EngineInputs:
        """Write the engine's input files for tilt series ``tsId`` of ``tsSet``.

        In ``folder`` (default tmp/<tsId>): <tsId>.mrcs (unless the series is
        exactly images 1..n of one MRC file, which is then used in place, read
        only), <tsId>.tlt, <tsId>_acquisition.json, <tsId>.xf (only when
        ``applyAlignment`` and :func:`needsTransforms`) and
        <tsId>_inputs.json (the returned :class:`EngineInputs`, reloadable with
        ``EngineInputs.load``).  Excluded views: 1-based positions of the
        disabled images.  Pixel size: the series' sampling rate (Å/px), else
        the set's.  A copy of <tsId>_inputs.json goes to extra/<tsId>/ when
        ``folder`` is elsewhere (Scipion empties tmp/ at the end of a run).

        Raises ValueError for a series not in the set, without images or with
        images of different sizes; OSError/``engine.InputError`` for image
        files that cannot be read.
        """
        folder = folder or self.getTsFolder(tsId, tmp=True)
        with self._lock:
            ts = self.getTiltSeries(tsSet, tsId)
            applyXf = applyAlignment and needsTransforms(ts)
            records = tiltRecords(ts, withTransforms=applyXf)
            pixelSize = float(ts.getSamplingRate() or tsSet.getSamplingRate())
        inputs = writeEngineFiles(records, folder, tsId, pixelSize, applyXf, log=self.info)
        if os.path.abspath(folder) != os.path.abspath(self.getTsFolder(tsId)):
            # a copy beside the outputs: Scipion empties tmp/ when a run ends, and a
            # resumed run may still need the records to register the outputs
            inputs.save(os.path.join(self.getTsFolder(tsId), tsId + "_inputs.json"))
        return inputs

    def loadEngineInputs(self, tsId: str) -> EngineInputs:
        """The :class:`EngineInputs` written by :meth:`writeEngineInputs` for
        ``tsId`` (tmp/<tsId>/, else the copy in extra/<tsId>/).  Raises
        FileNotFoundError (naming the fix: Restart) when neither exists."""
        for folder in (self._getTmpPath(tsId), self._getExtraPath(tsId)):
            path = os.path.join(folder, tsId + "_inputs.json")
            if os.path.exists(path):
                return EngineInputs.load(path)
        raise FileNotFoundError("%s: engine inputs (%s_inputs.json) not found; run the protocol "
                                "again with Restart" % (tsId, tsId))

    # -------------------------- per-series steps -----------------------------
    #: convertInputStep applies the series' transforms when it carries them
    #: (False: the images are written as they are, e.g. for CTF estimation).
    applyInputAlignment = True

    def convertInputStep(self, tsId: str) -> None:
        """Step: write the engine's input files of series ``tsId`` of the
        input ``inputSetOfTiltSeries`` (:meth:`writeEngineInputs`, into
        tmp/<tsId>/; transforms applied unless :attr:`applyInputAlignment` is
        False).  A failure marks the series failed (:meth:`forItem`) instead of
        raising.  Protocols whose inputs differ override it."""
        self.forItem(tsId, self.writeEngineInputs, getattr(self, IN_TILTSERIES).get(), tsId,
                     applyAlignment=self.applyInputAlignment)

    def insertPerTsSteps(self, tsSet, processStep, processNeedsGPU: bool = False,
                         outputStep=None, finalStep=None) -> None:
        """Insert, for every enabled tilt series of ``tsSet``, the chain
        ``convertInputStep(tsId) -> processStep(tsId) [-> outputStep(tsId)]``
        (series run in parallel with STEPS_PARALLEL), then ``finalStep``
        (default :meth:`closeOutputSetsStep`) after all of them.
        Calls :meth:`prepareRetry` first (Restart / Continue bookkeeping).
        When an input is still growing, one generator step inserts these
        chains as series appear instead (streaming.py)."""
        self.prepareRetry()
        if self.isInputStreaming():
            return self.insertStreamingGenerator(processStep, processNeedsGPU, outputStep,
                                                 finalStep)
        deps = []
        for tsId in self.getTsIds(tsSet):
            deps.append(self._insertTsChain(tsId, processStep, processNeedsGPU, outputStep))
        self._insertFunctionStep(finalStep or self.closeOutputSetsStep, prerequisites=deps,
                                 needsGPU=False)

    def forItem(self, tsId: str, func, *args, **kwargs):
        """Run one tilt series' share of a step: ``func(*args, **kwargs)``.

        Skipped when ``tsId`` already failed; an exception is recorded as a
        failed item (logged, listed in the summary) instead of stopping the
        other tilt series.  Returns ``func``'s result, or None."""
        if self.isFailedItem(tsId):
            return None
        try:
            return func(*args, **kwargs)
        except Exception as e:
            import traceback
            self.info("%s: details of the failure:\n%s" % (tsId, traceback.format_exc()))
            self.addFailedItem(tsId, e)
            return None

    # -------------------------- failed items ---------------------------------
    def prepareRetry(self) -> None:
        """Restart / Continue bookkeeping, before the steps are compared with
        those of the previous run (call it from ``_insertAllSteps``; done by
        :meth:`insertPerTsSteps`).

        Restart: Scipion deleted the outputs; the failed series are forgotten,
        so every series is processed again.  Continue: the failed series are
        forgotten and leave the failed set; their steps and the steps that
        belong to no series (the final step) are marked to run again, so they
        are retried while the series that finished keep their output."""
        failed = self.getFailedItems()
        if not failed:
            return
        self.failedItems.set(None)
        self._store(self.failedItems)
        if self.runMode.get() == MODE_RESTART:
            return
        self.info("Continue: retrying the tilt series that failed before: %s"
                  % ", ".join(sorted(failed)))
        self._removeFromFailedSet(set(failed))
        self._resetSteps(set(failed))

    def _resetSteps(self, tsIds) -> None:
        """Mark the stored steps of the series ``tsIds``, and the steps that
        take no series, as not done, so that Continue runs them again."""
        from pyworkflow.protocol.constants import STATUS_NEW
        from pyworkflow.protocol.protocol import StepSet
        stepsFile = self.getStepsFile()
        if not os.path.exists(stepsFile):
            return
        steps = StepSet(filename=stepsFile)
        try:
            changed = []
            for step in steps.iterItems():
                try:
                    args = json.loads(step.argsStr.get() or "[]")
                except ValueError:
                    args = []
                first = args[0] if args else None
                if not isinstance(first, str) or first in tsIds:
                    changed.append(step.clone())
            for step in changed:
                step.setStatus(STATUS_NEW)
                steps.update(step)
            steps.write()
        finally:
            steps.close()

    def addFailedItem(self, tsId: str, error) -> None:
        """Record that ``tsId`` failed: logged, kept in the summary and copied
        with the reason into the output set ``FailedTiltSeries``.  ``error``:
        the exception (or message); its last line is the reason.  Never
        raises for a failure to fill the failed set (a warning is logged)."""
        msg = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        self.error("%s failed: %s" % (tsId, msg))
        with self._lock:
            lines = [l for l in (self.failedItems.get() or "").split("\n")
                     if l and not l.startswith(tsId + ": ")]
            lines.append("%s: %s" % (tsId, msg))
            self.failedItems.set("\n".join(lines))
            self._store(self.failedItems)
            try:
                self._addToFailedSet(tsId, msg)
            except Exception as e:      # the record above is what counts
                self.warning("%s: could not add it to %s: %s" % (tsId, OUT_FAILED, e))

    def getFailedSourceSet(self):
        """The SetOfTiltSeries whose series are copied into the failed set
        (default: ``inputSetOfTiltSeries``), or None."""
        pointer = getattr(self, IN_TILTSERIES, None)
        return pointer.get() if pointer is not None else None

    def _addToFailedSet(self, tsId: str, reason: str) -> None:
        """Copy input series ``tsId`` (with its images) into FailedTiltSeries,
        with the reason in ``_cryotigerFailReason`` (call under the lock)."""
        inSet = self.getFailedSourceSet()
        if inSet is None:
            return
        inTs = inSet.getTiltSeriesFromTsId(tsId)
        if inTs is None:
            return
        images = [ti.clone() for ti in inTs.iterItems()]
        outSet = self.getOutputSet(OUT_FAILED, inSet, createFunc=lambda: self._createSetOfTiltSeries(
            suffix="Failed"))
        outTs = TiltSeries()
        outTs.copyInfo(inTs)
        setattr(outTs, ATTR_FAILED_REASON, String(reason))
        outTs = self.appendOutputItem(outSet, outTs)
        for ti in images:
            ti.setObjId(None)
            outTs.append(ti)
        outSet.update(outTs)
        outTs.write()
        self.storeOutput(outSet)

    def _removeFromFailedSet(self, tsIds) -> None:
        """Take the series ``tsIds`` out of FailedTiltSeries (Continue)."""
        outSet = getattr(self, OUT_FAILED, None)
        if outSet is None:
            return
        outSet.enableAppend()
        for tsId in tsIds:
            item = self._findOutputItem(outSet, tsId)
            if item is not None:
                if isinstance(item, Set):
                    item._getMapper().deleteAll()
                outSet._getMapper().delete(item)
                outSet._size.set(max(0, outSet.getSize() - 1))
                if getattr(outSet, "_tsIds", None) is not None:
                    outSet._tsIds.discard(tsId)
        outSet.write()
        self._store(outSet)

    def getFailedItems(self) -> Dict[str, str]:
        """{tsId: message} of the tilt series that failed in this run (empty dict when none)."""
        out = {}
        for line in (self.failedItems.get() or "").split("\n"):
            if line:
                tsId, _, msg = line.partition(": ")
                out[tsId] = msg
        return out

    def isFailedItem(self, tsId: str) -> bool:
        """True when series ``tsId`` failed in this run (see :meth:`addFailedItem`)."""
        return tsId in self.getFailedItems()

    def _failedSummary(self) -> List[str]:
        failed = self.getFailedItems()
        if not failed:
            return []
        return ["*%d tilt series failed* (no output for them; they are in the output %s):"
                % (len(failed), OUT_FAILED)] + \
               ["    %s: %s" % kv for kv in sorted(failed.items())]

    def countsSummary(self, outputName: str, what: str = "tilt series") -> List[str]:
        """Summary line '<N> <what> done, <M> failed.' (N: size of the output
        ``outputName``), as a list; empty before there is an output or a failure."""
        out = getattr(self, outputName, None)
        done = out.getSize() if out is not None else 0
        failed = len(self.getFailedItems())
        if out is None and not failed:
            return []
        return ["%d %s done, %d failed." % (done, what, failed)]

    def outputSummary(self, outputName: str, describe) -> List[str]:
        """Summary lines about the output set ``outputName``: ``describe(outSet)``
        (one line) when it exists, else "Output not ready yet." (unless series
        failed), then :meth:`countsSummary` and the failed series."""
        out = getattr(self, outputName, None)
        lines = []
        if out is not None:
            lines.append(describe(out))
        elif not self.getFailedItems():
            lines.append("Output not ready yet.")
        return lines + self.countsSummary(outputName) + self._failedSummary()

    # -------------------------- output helpers -------------------------------
    def getOutputSet(self, outputName: str, inputSet, createFunc=None):
        """The output set ``outputName``, created on first use (call under
        ``self._lock``): ``createFunc()`` (default ``_createSetOfTiltSeries``),
        ``copyInfo(inputSet)``, open for streaming, defined as output with a
        source relation to the input."""
        outSet = getattr(self, outputName, None)
        if outSet is not None:
            outSet.enableAppend()
            return outSet
        outSet = (createFunc or self._createSetOfTiltSeries)()
        outSet.copyInfo(inputSet)
        outSet.setStreamState(Set.STREAM_OPEN)
        self._defineOutputs(**{outputName: outSet})
        self._defineSourceRelation(inputSet, outSet)
        return outSet

    @staticmethod
    def _findOutputItem(outSet, tsId: str):
        """The item of ``outSet`` with ``tsId`` (a clone with its mapper), or None."""
        if outSet.getSize() == 0:
            return None
        try:
            item = outSet.getItem("_tsId", tsId)
        except Exception:
            item = None
        if item is not None and isinstance(item, Set) and hasattr(outSet, "_setItemMapperPath"):
            outSet._setItemMapperPath(item)
        return item

    def appendOutputItem(self, outSet, item):
        """Append ``item`` (a TiltSeries, CTFTomoSeries, Tomogram... with a
        tsId) to ``outSet`` and return the object to fill and ``update``.

        Idempotent: when ``outSet`` already holds an entry with this tsId (a
        run resumed after being killed just after the commit), that entry is
        emptied and returned with ``item``'s information, so the series is
        registered once with the new content (call under ``self._lock``)."""
        tsId = item.getTsId()
        existing = self._findOutputItem(outSet, tsId)
        if existing is None:
            outSet.append(item)
            return item
        self.info("%s: already in the output (resumed run): replacing that entry" % tsId)
        if isinstance(existing, Set):         # TiltSeries, CTFTomoSeries: empty its images
            existing.enableAppend()           # (before emptying: it reads the first row)
            existing._getMapper().deleteAll()
            existing._size.set(0)
            existing._idCount = 0
            existing.copyInfo(item)
            for name in (ATTR_FAILED_REASON,):
                if hasattr(item, name):
                    setattr(existing, name, getattr(item, name))
            outSet.update(existing)
            return existing
        item.setObjId(existing.getObjId())
        outSet.update(item)
        return item

    def storeOutput(self, outSet) -> None:
        """Write ``outSet`` (a Scipion Set) to its file and store it in the
        project database (call under ``self._lock``)."""
        outSet.write()
        self._store(outSet)

    def closeOutputSetsStep(self):
        """Final step: close every output set (streaming closed, written,
        stored).  Raises RuntimeError, listing the reasons, when there is no
        output but the failed set (every item failed); logs a warning naming
        the failed series otherwise."""
        with self._lock:
            n = 0
            for name, output in self.iterOutputAttributes():
                if isinstance(output, Set):
                    output.setStreamState(Set.STREAM_CLOSED)
                    output.write()
                    self._store(output)
                    n += name != OUT_FAILED
        failed = self.getFailedItems()
        if n == 0:
            raise RuntimeError("No output was produced: every item failed (%s)"
                               % "; ".join("%s: %s" % kv for kv in sorted(failed.items())))
        if failed:
            self.warning("%d item(s) failed: %s" % (len(failed), ", ".join(sorted(failed))))

    # -------------------------- tilt-series output helpers -------------------
    # Conversion of the engine's outputs into Scipion objects (convert.py).
    newOutputTs = staticmethod(newOutputTs)
    newTiltImage = staticmethod(newTiltImage)
    updateTsAcquisition = staticmethod(updateTsAcquisition)
