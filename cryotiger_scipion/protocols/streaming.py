"""Streaming for the per-tilt-series protocols (issue 14 item 2).

A protocol launched while its input SetOfTiltSeries is still growing (a
streaming import, or any protocol whose output is open) processes each tilt
series as it appears and closes its outputs once the input is closed and every
series has been processed, as Scipion's streaming protocols do
(``ProtStreamingBase``, scipion-em-aretomo):

* ``_insertAllSteps`` (through :meth:`ProtCryoTigerBase.insertPerTsSteps`)
  inserts one *generator step* instead of the per-series steps;
* the generator step (it runs in one of the protocol's threads: *Threads* must
  be at least 3 - Scipion, the generator, one worker) looks at the input every
  few seconds, inserts the usual step chain (convert -> process -> output) for
  every series it has not seen yet, and when the input is closed inserts the
  final step (close the outputs) after all of them, then ends;
* ``_stepsCheck`` (called by Scipion's executor) stores the new steps, so the
  executor runs them in parallel threads like any others.

A series is handed to the steps once (by tsId) and only when it has images.
Protocols with a second per-series input (reconstruction with a CTF set) only
take a series once that input has it too, and wait for both inputs to close.
A protocol launched on closed inputs inserts all steps at once, as before.
"""
import time
from datetime import datetime
from typing import List, Tuple

from ..constants import IN_CTFS, IN_TILTSERIES, STREAM_POLL_S


class TsStreamingMixin:
    """Streaming behaviour of :class:`~.protocol_base.ProtCryoTigerBase` (see
    the module docstring).  Reads ``inputSetOfTiltSeries`` and, when the
    protocol has it and uses it (``usesCtf()``), ``inputSetOfCtfTomoSeries``."""

    # -------------------------- inputs ---------------------------------------
    def _streamInputs(self) -> List:
        """The input sets that must hold a series before it is processed."""
        ts = getattr(self, IN_TILTSERIES, None)
        if ts is None or not hasattr(ts, "get"):
            return []
        inputs = [ts.get()]
        ctf = getattr(self, IN_CTFS, None)
        usesCtf = getattr(self, "usesCtf", None)
        if ctf is not None and ctf.get() is not None and (usesCtf is None or usesCtf()):
            inputs.append(ctf.get())
        return inputs

    def isInputStreaming(self) -> bool:
        """True when an input set is still open (growing).  The state is read
        from the set's own file (the project keeps an older copy)."""
        inputs = [s for s in self._streamInputs() if s is not None]
        for s in inputs:
            s.loadAllProperties()
        return any(s.isStreamOpen() for s in inputs)

    def streamingReadyTsIds(self) -> Tuple[List[str], bool]:
        """(tsIds ready to process, inputs closed): the enabled, non-empty
        tilt series present in every input, sorted; ``closed`` when no input
        is open any more (then the list is final).  Call under ``self._lock``."""
        ready, closed = None, True
        for s in self._streamInputs():
            s.loadAllProperties()          # refresh the stream state and size
            closed = closed and not s.isStreamOpen()
            ids = {item.getTsId() for item in s.iterItems()
                   if item.isEnabled() and item.getSize() > 0}
            ready = ids if ready is None else ready & ids
        return sorted(ready or []), closed

    # -------------------------- steps ----------------------------------------
    def insertStreamingGenerator(self, processStep, processNeedsGPU: bool, outputStep,
                                 finalStep) -> None:
        """Insert the generator step that will insert the per-series steps."""
        self._streamStepsConfig = (processStep, processNeedsGPU, outputStep, finalStep)
        # The time stamp makes the step differ from a previous run's (resume).
        self._insertFunctionStep(self.streamingStepsGeneratorStep, str(datetime.now()),
                                 prerequisites=[], needsGPU=False)

    def streamingStepsGeneratorStep(self, stamp: str = "") -> None:
        """Watch the inputs; insert the step chain of each new tilt series;
        insert the final step when the inputs are closed; then return."""
        processStep, processNeedsGPU, outputStep, finalStep = self._streamStepsConfig
        seen, deps = set(), []
        while True:
            with self._lock:
                ready, closed = self.streamingReadyTsIds()
                new = [t for t in ready if t not in seen]
                for tsId in new:
                    deps.append(self._insertTsChain(tsId, processStep, processNeedsGPU,
                                                    outputStep))
                    seen.add(tsId)
                if new:
                    self.info("Streaming: steps inserted for %s (%d series so far)"
                              % (", ".join(new), len(seen)))
                if closed:
                    self._insertFunctionStep(finalStep or self.closeOutputSetsStep,
                                             prerequisites=deps, needsGPU=False)
                    self.info("Streaming: input closed, %d series; closing the outputs when "
                              "they are done" % len(seen))
                    return
            time.sleep(STREAM_POLL_S)

    def _insertTsChain(self, tsId: str, processStep, processNeedsGPU: bool,
                       outputStep=None) -> int:
        """convertInputStep(tsId) -> processStep(tsId) [-> outputStep(tsId)];
        returns the last step's id."""
        last = self._insertFunctionStep(self.convertInputStep, tsId, prerequisites=[],
                                        needsGPU=False)
        last = self._insertFunctionStep(processStep, tsId, prerequisites=[last],
                                        needsGPU=processNeedsGPU)
        if outputStep is not None:
            last = self._insertFunctionStep(outputStep, tsId, prerequisites=[last],
                                            needsGPU=False)
        return last

    def _stepsCheck(self):
        """Store the steps the generator inserted (Scipion's executor then runs them)."""
        if getattr(self, "_newSteps", False):
            with self._lock:
                self.updateSteps()

    # -------------------------- validation -----------------------------------
    def validate(self):
        """Scipion's validation, plus: a growing input needs Threads >= 3."""
        errors = super().validate()
        if not errors and self.isInputStreaming() and (self.numberOfThreads.get() or 1) < 3:
            errors.append("The input is still growing (streaming): set Threads to at least 3 "
                          "(one thread watches the input, one or more process tilt series).")
        return errors
