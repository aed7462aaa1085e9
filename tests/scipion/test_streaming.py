"""Streaming (issue 14 item 2): interpolate -> CTF -> reconstruct on a
SetOfTiltSeries that is still growing.

The producer: tilt series files appear in a folder while the protocols run;
each is imported (tomo's ProtImportTs) as it appears and appended to an input
set that stays open (STREAM_OPEN) until the test closes it, as a streaming
import or any protocol whose output is open does. (tomo 3.12's ProtImportTs
does not stream by itself: worksInStreaming() is False; tomo streams through
ProtComposeTS from motion-corrected movies, whose series are not aligned.)

All three cryoTIGER protocols are launched while their inputs are open (CTF
on interpolate's growing output, reconstruct on both growing outputs). Checked:
each tilt series is processed exactly once by each protocol (its steps), a
series added late is not missed, every output holds all series and is closed
once the input closed, and the protocols finish.
"""
import json
import os
import time

from pyworkflow.object import Set
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.objects import SetOfTiltSeries, TiltSeries

from common import importTiltSeries, simulateTiltSeries
from cryotiger_scipion.constants import OUT_CTFS, OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.protocols import (ProtCryoTigerCtf, ProtCryoTigerInterpolate,
                                         ProtCryoTigerReconstruct)

ANGLES = list(range(-30, 31, 10))
PIXEL = 5.0
WAIT_S = 600


def appendTiltSeries(setPath, source, close=False):
    """Append the tilt series of ``source`` (a SetOfTiltSeries) to the open
    set stored in ``setPath``, as a streaming producer does; ``close`` marks
    the set closed afterwards."""
    dst = SetOfTiltSeries(filename=setPath)
    dst.loadAllProperties()
    dst.enableAppend()
    for src in source.iterItems():
        ts = TiltSeries()
        ts.copyInfo(src)
        dst.append(ts)
        for ti in src.iterItems():
            ts.append(ti.clone())
        dst.update(ts)
        ts.write()
    dst.setStreamState(Set.STREAM_CLOSED if close else Set.STREAM_OPEN)
    dst.write()
    dst.close()


class TestStreaming(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def _simulateAndImport(self, tsId, seed):
        """A new tilt series file appears and is imported on its own."""
        folder = self.getOutputPath("arrivals", tsId)
        simulateTiltSeries(folder, tsId, ANGLES, shape=(16, 64, 64), pixelSize=PIXEL, seed=seed)
        return importTiltSeries(self.__class__, folder, "%s.mrcs" % tsId, pixelSize=PIXEL,
                                label="arrival %s" % tsId)

    def _update(self, prot):
        self.proj._updateProtocol(prot)
        self.proj.mapper.commit()
        return prot

    def _waitFor(self, prot, condition, what):
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            self._update(prot)
            if condition(prot):
                return
            if prot.isFailed():
                self.fail("%s failed while waiting for %s:\n%s" % (
                    prot.getRunName(), what, "\n".join(prot.getLogsLastLines(40, logFile=0))))
            time.sleep(2)
        self.fail("timeout waiting for %s of %s (status %s)" % (what, prot.getRunName(),
                                                                prot.getStatus()))

    def _stepsPerTs(self, prot, funcName):
        counts = {}
        for step in prot.loadSteps():
            if step.funcName.get() == funcName:
                tsId = json.loads(step.argsStr.get())[0]
                counts[tsId] = counts.get(tsId, 0) + 1
        return counts

    def test_interpolate_ctf_reconstruct_in_streaming(self):
        # The input: the first series, in a set left open.
        source = self._simulateAndImport("TS_01", 1)
        inSet = source.outputTiltSeries
        setPath = inSet.getFileName()
        inSet.setStreamState(Set.STREAM_OPEN)
        inSet.write()
        inSet.close()

        interp = self.proj.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1,
                                       numberOfThreads=3)
        interp.inputSetOfTiltSeries.set(source)
        interp.inputSetOfTiltSeries.setExtended("outputTiltSeries")
        self.proj.launchProtocol(interp, wait=False)
        self._waitFor(interp, lambda p: getattr(p, OUT_TILTSERIES, None) is not None,
                      "the first interpolated series")

        ctf = self.proj.newProtocol(ProtCryoTigerCtf, numberOfThreads=3,
                                    defocusMin=10000.0, defocusMax=60000.0)
        ctf.inputSetOfTiltSeries.set(interp)
        ctf.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        self.proj.launchProtocol(ctf, wait=False)

        # A second series arrives while the protocols run.
        appendTiltSeries(setPath, self._simulateAndImport("TS_02", 2).outputTiltSeries)
        self._waitFor(ctf, lambda p: getattr(p, OUT_CTFS, None) is not None, "the first CTF")

        rec = self.proj.newProtocol(ProtCryoTigerReconstruct, numberOfThreads=3, thickness=16,
                                    binning=2)
        rec.inputSetOfTiltSeries.set(interp)
        rec.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        rec.inputSetOfCtfTomoSeries.set(ctf)
        rec.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
        self.proj.launchProtocol(rec, wait=False)

        # A late series, after everything is running and the first ones are done;
        # then the input closes.
        self._waitFor(rec, lambda p: getattr(p, OUT_TOMOGRAMS, None) is not None,
                      "the first tomogram")
        appendTiltSeries(setPath, self._simulateAndImport("TS_03", 3).outputTiltSeries, close=True)

        expected = ["TS_01", "TS_02", "TS_03"]
        for prot, output, step in ((interp, OUT_TILTSERIES, "interpolateStep"),
                                   (ctf, OUT_CTFS, "estimateStep"),
                                   (rec, OUT_TOMOGRAMS, "reconstructStep")):
            self._waitFor(prot, lambda p: not p.isActive(), "the end")
            self.assertTrue(prot.isFinished(), "%s: %s" % (prot.getRunName(), prot.getStatus()))
            out = getattr(prot, output)
            self.assertEqual(sorted(item.getTsId() for item in out.iterItems()), expected, output)
            self.assertTrue(out.isStreamClosed(), "%s is still open" % output)
            self.assertEqual(self._stepsPerTs(prot, step), {t: 1 for t in expected},
                             "%s: each series processed once" % prot.getRunName())
            self.assertEqual(prot.getFailedItems(), {})
        self.assertEqual(getattr(interp, OUT_TILTSERIES).getAnglesCount(), 2 * len(ANGLES) - 1)
        self.assertTrue(getattr(rec, OUT_TOMOGRAMS).ctfCorrected())
