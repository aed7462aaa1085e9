"""Several GPUs in Scipion (issue 14 item 1): with a GPU list of N devices and
Threads >= N + 1, ProtCryoTigerInterpolate (FILM) runs the tilt series in
parallel, one engine process per GPU slot (Scipion's own steps executor hands
the slots out), each process given its device through CUDA_VISIBLE_DEVICES;
"Engine processes per GPU" K puts K processes on each GPU at once.

Checked from what Scipion really ran: the engine command of each series in
the run log (its CUDA_VISIBLE_DEVICES) and the start/end times of the steps.
On a machine without a GPU every engine run stops at once with the engine's
"sees no GPU" message (the series are then failed items); with a GPU build and
GPUs the outputs are checked instead.
"""
import datetime as dt
import json
import os
import re

from pyworkflow.tests import BaseTest, setupTestProject

from common import importTiltSeries, makeFilmTestModel, simulateTiltSeries
from cryotiger_scipion.constants import OUT_TILTSERIES
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate

ANGLES = list(range(-30, 31, 10))
COMMAND = re.compile(r'export CUDA_VISIBLE_DEVICES=([0-9,]+) && .*cryotiger interpolate --input '
                     r'"[^"]*?(TS_\d+)\.mrcs"')


def _time(s):
    return dt.datetime.fromisoformat(str(s))


class TestMultiGpu(BaseTest):
    @classmethod
    def setUpClass(cls):
        # 'Use GPU' is trusted without probing TensorFlow (on a CPU-only machine a
        # run would otherwise fall back to the CPU: issue 11 item 1); the protocol
        # subprocesses inherit it.
        cls._assume = os.environ.get("CRYOTIGER_ASSUME_GPU")
        os.environ["CRYOTIGER_ASSUME_GPU"] = "1"
        setupTestProject(cls)
        data = cls.getOutputPath("data")
        for i in range(4):
            simulateTiltSeries(data, "TS_%02d" % i, ANGLES, shape=(8, 48, 48), seed=i)
        cls.protImport = importTiltSeries(cls, data, "TS_*.mrcs")
        data2 = cls.getOutputPath("data2")
        for i in range(2):
            simulateTiltSeries(data2, "TS_%02d" % i, ANGLES, shape=(8, 48, 48), seed=i)
        cls.protImport2 = importTiltSeries(cls, data2, "TS_*.mrcs", label="two series")
        cls.model = makeFilmTestModel(cls.getOutputPath("film_model"))

    @classmethod
    def tearDownClass(cls):
        if cls._assume is None:
            os.environ.pop("CRYOTIGER_ASSUME_GPU", None)
        else:
            os.environ["CRYOTIGER_ASSUME_GPU"] = cls._assume
        super().tearDownClass()

    def _run(self, gpuList, threads, procsPerGpu=1, protImport=None):
        protImport = protImport or self.protImport
        tsIds = sorted(ts.getTsId() for ts in protImport.outputTiltSeries.iterItems())
        prot = self.newProtocol(ProtCryoTigerInterpolate, method=1, modelSource=3,
                                modelFolder=self.model, useGpu=True, gpuList=gpuList,
                                procsPerGpu=procsPerGpu, tiltsPerGap=1, numberOfThreads=threads)
        prot.inputSetOfTiltSeries.set(protImport)
        prot.inputSetOfTiltSeries.setExtended("outputTiltSeries")
        self.assertEqual(prot.gpuSlotWarnings(), [])
        self.proj.launchProtocol(prot, wait=True)
        # device of each series, from the commands Scipion ran
        with open(prot.getStdoutLog()) as f:
            devices = {m.group(2): m.group(1) for m in COMMAND.finditer(f.read())}
        self.assertEqual(sorted(devices), tsIds)
        # when each series' engine step ran
        spans = {}
        for step in prot.loadSteps():
            if step.funcName.get() == "interpolateStep":
                tsId = json.loads(step.argsStr.get())[0]
                spans[tsId] = (_time(step.initTime), _time(step.endTime))
        self.assertEqual(sorted(spans), sorted(devices))
        if prot.isFinished() and getattr(prot, OUT_TILTSERIES, None) is not None:
            self.assertEqual(getattr(prot, OUT_TILTSERIES).getSize(), len(tsIds))   # a GPU machine
        else:
            failed = prot.getFailedItems()
            self.assertEqual(sorted(failed), sorted(devices))
            for msg in failed.values():
                self.assertIn("sees no GPU", msg)
        return devices, spans

    @staticmethod
    def _maxConcurrent(spans, tsIds=None):
        events = sorted([(a, 1) for t, (a, b) in spans.items() if tsIds is None or t in tsIds]
                        + [(b, -1) for t, (a, b) in spans.items() if tsIds is None or t in tsIds],
                        key=lambda e: (e[0], e[1]))
        best = cur = 0
        for _, s in events:
            cur += s
            best = max(best, cur)
        return best

    def test_one_process_per_gpu(self):
        devices, spans = self._run("0 1", threads=3)
        self.assertEqual(set(devices.values()), {"0", "1"})
        for dev in ("0", "1"):
            mine = [t for t, d in devices.items() if d == dev]
            self.assertEqual(self._maxConcurrent(spans, mine), 1, "two processes on GPU %s" % dev)
        self.assertEqual(self._maxConcurrent(spans), 2)     # both GPUs busy at once

    def test_two_processes_per_gpu(self):
        devices, spans = self._run("1", threads=3, procsPerGpu=2, protImport=self.protImport2)
        self.assertEqual(set(devices.values()), {"1"})
        self.assertEqual(self._maxConcurrent(spans), 2)

    def test_too_few_threads_warns(self):
        prot = self.newProtocol(ProtCryoTigerInterpolate, method=1, modelSource=3,
                                modelFolder=self.model, useGpu=True, gpuList="0 1 2",
                                procsPerGpu=2, numberOfThreads=3)
        self.assertEqual(prot.getGpuList(), [0, 1, 2, 0, 1, 2])
        (warning,) = prot.gpuSlotWarnings()
        self.assertIn("set Threads to 7", warning)
        prot.numberOfThreads.set(1)      # serial: one process gets the whole list, once
        self.assertEqual(prot.getGpuList(), [0, 1, 2])
