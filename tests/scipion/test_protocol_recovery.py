"""Runs that fail and are recovered (issue 11 items 1, 2, 4, 5; issue 14 item 3),
with ProtCryoTigerInterpolate (linear, fast) in a real headless project.

* A series that fails (its stack is damaged after import: NaN in one image,
  which validation, reading headers only, cannot see and the engine refuses)
  goes into the output FailedTiltSeries with the reason; the good series'
  output is unaffected; the summary counts both.
* Continue after fixing the file retries only the failed series (the good
  one's output file is not rewritten) and takes it out of the failed set.
* Restart after fixing the file processes every series again.
* A run resumed after being killed just after a series' output was committed
  registers that series once (no "Duplicated TiltSeries").
* A .tlt one line short of its stack is flagged by validation.
* On a machine where TensorFlow sees no GPU, FILM defaults to the CPU, the
  validation warns, and a run with 'Use GPU' Yes falls back to the CPU with a
  warning in its log instead of failing.
"""
import os
import shutil

from pyworkflow.protocol import MODE_RESTART, MODE_RESUME
from pyworkflow.tests import setupTestProject
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from common import IMPORT_OUTPUT, importTiltSeries, makeFilmTestModel, simulateTiltSeries, tiltImages
from cryotiger_scipion import Plugin
from cryotiger_scipion.constants import ATTR_FAILED_REASON, ATTR_SYNTHETIC, OUT_FAILED, OUT_TILTSERIES
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate, ProtCryoTigerReconstruct

ANGLES = list(range(-30, 31, 6))          # 11 tilts
PIXEL = 10.0


def damage(stack):
    """Bad data the header does not show: NaN in image 3 of an MRC stack."""
    import mrcfile
    import numpy as np
    with mrcfile.mmap(stack, mode="r+") as m:
        m.data[2, 5:9, 5:9] = np.nan


class TestCryoTigerRecovery(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        for tsId, seed in (("TS_01", 1), ("TS_02", 2)):
            simulateTiltSeries(cls.data, tsId, ANGLES, pixelSize=PIXEL, seed=seed)
        cls.good = os.path.join(cls.data, "TS_02.good")
        shutil.copy(os.path.join(cls.data, "TS_02.mrcs"), cls.good)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL)

    def setUp(self):
        shutil.copy(self.good, os.path.join(self.data, "TS_02.mrcs"))

    def _newInterpolate(self, **kwargs):
        prot = self.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1, **kwargs)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        prot.numberOfThreads.set(1)
        return prot

    def _relaunch(self, prot, mode):
        prot.runMode.set(mode)
        self.launchProtocol(prot)
        return prot

    def _runWithOneFailure(self):
        damage(os.path.join(self.data, "TS_02.mrcs"))
        prot = self._newInterpolate()
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        self.assertEqual(sorted(prot.getFailedItems()), ["TS_02"])
        out = getattr(prot, OUT_TILTSERIES)
        self.assertEqual([ts.getTsId() for ts in out.iterItems()], ["TS_01"])
        self.assertEqual(out.getFirstItem().getSize(), 2 * len(ANGLES) - 1)
        failed = getattr(prot, OUT_FAILED)
        items = [ts.clone() for ts in failed.iterItems()]
        self.assertEqual([ts.getTsId() for ts in items], ["TS_02"])
        self.assertTrue(getattr(items[0], ATTR_FAILED_REASON).get())
        self.assertEqual(items[0].getSize(), len(ANGLES))     # the input series, all its images
        self.assertIn("1 tilt series done, 1 failed.", prot.summary())
        shutil.copy(self.good, os.path.join(self.data, "TS_02.mrcs"))       # the user fixes it
        return prot

    def _checkAllDone(self, prot):
        self.assertEqual(prot.getFailedItems(), {})
        out = getattr(prot, OUT_TILTSERIES)
        self.assertEqual(sorted(ts.getTsId() for ts in out.iterItems()), ["TS_01", "TS_02"])
        for ts in out.iterItems():
            self.assertEqual(ts.getSize(), 2 * len(ANGLES) - 1, ts.getTsId())
        self.assertTrue(out.isStreamClosed())
        # tomo's own checks of a tilt-series set (sizes, sampling, headers, flags)
        n = 2 * len(ANGLES) - 1
        self.checkTiltSeries(out, expectedSetSize=2, expectedSRate=PIXEL,
                             expectedDimensions=[48, 48, n], anglesCount=n, anglesCountSet=n,
                             isInterpolated=True, presentTsIds=["TS_01", "TS_02"])
        # the synthetic flag is a column of every series' table: Scipion's table view
        # of the tilt series shows it (issue 11 item 11)
        import sqlite3
        with sqlite3.connect(out.getFileName()) as db:
            for tsId in ("TS_01", "TS_02"):
                columns = {r[0] for r in db.execute('SELECT label_property FROM "%s_Classes"' % tsId)}
                self.assertIn(ATTR_SYNTHETIC, columns)
        failed = getattr(prot, OUT_FAILED, None)
        self.assertTrue(failed is None or failed.getSize() == 0)
        self.assertIn("2 tilt series done, 0 failed.", prot.summary())

    def test_continue_retries_failed_series_only(self):
        prot = self._runWithOneFailure()
        stack1 = prot._getExtraPath("TS_01", "TS_01.mrcs")
        before = os.stat(stack1).st_mtime_ns
        self._relaunch(prot, MODE_RESUME)
        self._checkAllDone(prot)
        self.assertEqual(os.stat(stack1).st_mtime_ns, before, "the finished series was redone")

    def test_restart_retries_everything(self):
        prot = self._runWithOneFailure()
        self._relaunch(prot, MODE_RESTART)
        self._checkAllDone(prot)

    def test_resume_after_commit_registers_once(self):
        """Killed just after TS_01's tilt images were committed: its output
        step is not marked done; Continue runs it again."""
        from pyworkflow.protocol.constants import STATUS_RUNNING
        from pyworkflow.protocol.protocol import StepSet
        prot = self._newInterpolate()
        self.launchProtocol(prot)
        steps = StepSet(filename=prot.getStepsFile())
        step = [s.clone() for s in steps.iterItems()
                if s.funcName.get() == "createOutputStep" and "TS_01" in s.argsStr.get()][0]
        step.setStatus(STATUS_RUNNING)
        steps.update(step)
        steps.write()
        steps.close()
        self._relaunch(prot, MODE_RESUME)
        self._checkAllDone(prot)
        out = getattr(prot, OUT_TILTSERIES)
        ts = out.getTiltSeriesFromTsId("TS_01")
        self.assertEqual([ti.getIndex() for ti in tiltImages(ts)], list(range(1, 2 * len(ANGLES))))

    def test_tlt_one_line_short_is_flagged(self):
        """What a .tlt one line short gives where the import does not refuse it
        (tomo 3.12's ProtImportTs does; other routes make one TiltImage per
        angle line): 10 TiltImages on an 11-image stack."""
        from tomo.objects import SetOfTiltSeries, TiltSeries
        inSet = getattr(self.protImport, IMPORT_OUTPUT)
        short = SetOfTiltSeries.create(self.protImport._getPath(), suffix="short")
        short.copyInfo(inSet)
        ts = inSet.getTiltSeriesFromTsId("TS_01")
        images = tiltImages(ts)[:-1]
        out = TiltSeries()
        out.copyInfo(ts)
        short.append(out)
        for ti in images:
            out.append(ti)
        short.update(out)
        out.write()
        short.write()
        self.protImport._defineOutputs(shortTiltSeries=short)
        self.proj._storeProtocol(self.protImport)
        for cls in (ProtCryoTigerInterpolate, ProtCryoTigerReconstruct):
            prot = self.newProtocol(cls)
            prot.inputSetOfTiltSeries.set(self.protImport)
            prot.inputSetOfTiltSeries.setExtended("shortTiltSeries")
            errors = prot.validate()
            self.assertTrue(any("TS_01.mrcs has 11 images but the series has only 10" in e
                                for e in errors), (cls.__name__, errors))

    def test_film_without_gpu_runs_on_cpu(self):
        if Plugin.engineSeesGpu(probe=True) is not False:
            self.skipTest("TensorFlow sees a GPU here: the CPU fallback is not exercised")
        model = makeFilmTestModel(self.getOutputPath("film_small"))
        prot = self._newInterpolate(modelSource=3, modelFolder=model)
        prot.method.set(1)
        self.assertFalse(prot.useGpu.get())                 # the default is what works here
        self.assertTrue(any("runs on the CPU" in w for w in prot.warnings()), prot.warnings())
        prot.useGpu.set(True)                                # a form saved on a GPU machine
        self.assertTrue(any("sees no GPU" in w for w in prot.warnings()), prot.warnings())
        self.launchProtocol(prot)
        self.assertEqual(prot.getFailedItems(), {})
        log = "\n".join(prot.getLogsLastLines(400, logFile=0) + prot.getLogsLastLines(400, logFile=1))
        self.assertIn("sees no GPU", log)
        self.assertIn("--device cpu", log)
        self.assertEqual(getattr(prot, OUT_TILTSERIES).getSize(), 2)
