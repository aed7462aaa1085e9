"""Scipion's queue system on a real single-node SLURM cluster (issue 14 item 4).

The cluster is the one of ``scripts/slurm_local.sh`` (slurmctld + slurmd +
munge from Debian's slurm-wlm and munge): scripts/test.sh starts it when it
can (root with apt-get) and these tests use its hosts.conf (SLURM queues "cpu"
and "gpu", sbatch submit template, fake "gpu" GRES). When the cluster is not
running, the tests start it themselves if SLURM is installed (and stop it
afterwards); without SLURM they skip, saying why.

What is checked: protocols run with "Use a queue engine: yes" finish with
their outputs, and they really went through sbatch: the job id Scipion got back
from sbatch is the one SLURM's job-completion record (jobcomp/filetxt) lists as
COMPLETED in that partition, and the job's own log (logs/scipion<id>*.out,
written by the job script on the node) names the same id. In per-step mode
(QUEUE_FOR_JOBS = Y) every engine run is its own job with the GPUs SLURM gave
it (CUDA_VISIBLE_DEVICES from the protocol's GPU count).
"""
import glob
import os
import re
import subprocess
import time
import unittest

from pyworkflow.project import Manager
from pyworkflow.tests import BaseTest

from common import importTiltSeries, simulateTiltSeries
from cryotiger_scipion.constants import OUT_CTFS, OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "slurm_local.sh")
# The cluster of this checkout (scripts/slurm_local.sh dir).
STATE = os.environ.get("CRYOTIGER_SLURM_STATE") or subprocess.run(
    ["bash", SCRIPT, "dir"], capture_output=True, text=True).stdout.strip()
ANGLES = list(range(-30, 31, 10))
PIXEL = 5.0
WAIT_S = 600


def _script(action, *args):
    p = subprocess.run(["bash", SCRIPT, action, *args], capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, CRYOTIGER_SLURM_STATE=STATE))
    return p.returncode, (p.stdout + p.stderr).strip()


def jobCompRecords(waitFor=(), timeout=60):
    """{job id: {'JobState':..., 'Partition':..., 'Name':...}} from SLURM's
    job-completion log of the local cluster; waits up to ``timeout`` s until
    the jobs ``waitFor`` are in it (SLURM writes it when a job has ended,
    which can be a moment after Scipion saw the protocol finish)."""
    deadline = time.time() + timeout
    while True:
        records = _readJobComp()
        if all(int(j) in records for j in waitFor) or time.time() > deadline:
            return records
        time.sleep(1)


def _readJobComp():
    records = {}
    path = os.path.join(STATE, "jobcomp.log")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                if "JobId" in fields:
                    records[int(fields["JobId"])] = fields
    return records


class TestSlurmQueue(BaseTest):
    startedHere = False

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(STATE, "hosts.conf")) or _script("status")[0] != 0:
            rc, out = _script("start", *([] if os.environ.get("CRYOTIGER_SLURM_INSTALL") == "1"
                                         else ["--no-install"]))
            if rc != 0:
                raise unittest.SkipTest("no local SLURM cluster: %s (start one with 'bash "
                                        "scripts/slurm_local.sh start' as root on Debian/Ubuntu; "
                                        "it installs slurm-wlm and munge)" % out.splitlines()[-1])
            cls.startedHere = True
        os.environ["SLURM_CONF"] = os.path.join(STATE, "slurm.conf")
        # A project of our own whose hosts.conf is the cluster's (SLURM queues).
        cls.proj = Manager().createProject(cls.__name__, hostsConf=os.path.join(STATE, "hosts.conf"))
        cls.outputPath = cls.proj.path
        os.chdir(cls.outputPath)
        cls.projName = cls.__name__
        cls.data = cls.getOutputPath("data")
        for i, tsId in enumerate(("TS_01", "TS_02")):
            simulateTiltSeries(cls.data, tsId, ANGLES, shape=(16, 64, 64), pixelSize=PIXEL, seed=i)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL)

    @classmethod
    def tearDownClass(cls):
        if cls.startedHere:
            _script("stop")

    # ------------------------------------------------------------- helpers
    def _queue(self, prot, queue="cpu", perStep=False, memory="2048"):
        prot._useQueue.set(True)
        prot.setQueueParams([queue, {"JOB_MEMORY": memory, "JOB_TIME": "1",
                                     "QUEUE_FOR_JOBS": "Y" if perStep else "N"}])

    def _launchQueued(self, prot):
        """Launch ``prot`` through the queue and wait until it ends (the project
        follows it through its run database and squeue)."""
        self.proj.launchProtocol(prot, wait=False)
        if prot.useQueueForProtocol():
            self.assertGreater(len(prot.getJobIds()), 0, "sbatch gave no job id")
            self.jobIds = [int(j) for j in prot.getJobIds()]
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            time.sleep(2)
            self.proj._updateProtocol(prot)
            self.proj.mapper.commit()
            if not prot.isActive():
                break
        logs = os.path.dirname(prot.getStdoutLog())
        jobOut = "\n".join(open(f).read() for f in sorted(glob.glob(os.path.join(logs, "*.out"))))
        self.assertTrue(prot.isFinished(), "%s is %s after the queue run:\n%s\n%s" % (
            prot.getRunName(), prot.getStatus(),
            "\n".join(prot.getLogsLastLines(30, logFile=1)), jobOut[-3000:]))
        return prot

    def _jobLogIds(self, prot):
        """SLURM job ids written by the job script (hosts.conf SUBMIT_TEMPLATE)
        into the run's logs folder: {id: {'log', 'partition', 'gpus'}}."""
        logs = os.path.dirname(prot.getStdoutLog())
        found = {}
        # protocol job: logs/scipion<id>.out; per-step jobs: logs/<id>-<thread>-<n>.out
        for f in glob.glob(os.path.join(logs, "*.out")):
            with open(f) as fh:
                for m in re.finditer(r"SLURM job (\d+) on (\S+), partition (\S+), "
                                     r"CUDA_VISIBLE_DEVICES=(\S*)", fh.read()):
                    found[int(m.group(1))] = {"log": os.path.basename(f), "partition": m.group(3),
                                              "gpus": m.group(4)}
        return found

    def _assertInterpolated(self, prot, nSeries=2):
        out = getattr(prot, OUT_TILTSERIES, None)
        self.assertIsNotNone(out)
        self.assertEqual(out.getSize(), nSeries)
        self.assertEqual(out.getAnglesCount(), 2 * len(ANGLES) - 1)
        self.assertTrue(out.isStreamClosed())
        self.assertEqual(prot.getFailedItems(), {})

    # --------------------------------------------------------------- tests
    def test_protocol_as_one_job(self):
        """The whole protocol is one sbatch job in partition cpu."""
        prot = self.proj.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1,
                                     numberOfThreads=2)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended("outputTiltSeries")
        self._queue(prot, "cpu")
        self._launchQueued(prot)
        self._assertInterpolated(prot)
        (jobId,) = self.jobIds
        record = jobCompRecords([jobId]).get(jobId)
        self.assertIsNotNone(record, "job %d is not in SLURM's completion log" % jobId)
        self.assertEqual(record["JobState"], "COMPLETED")
        self.assertEqual(record["Partition"], "cpu")
        self.assertEqual(record["Name"], prot.strId())      # JOB_NAME = protocol id
        logIds = self._jobLogIds(prot)
        self.assertIn(jobId, logIds)
        self.assertEqual(logIds[jobId]["partition"], "cpu")

    def test_one_job_per_engine_run_with_gpus(self):
        """QUEUE_FOR_JOBS = Y: each tilt series' engine run is its own job in
        partition gpu, asking for as many GPUs as the protocol's GPU list has;
        SLURM hands each job a GPU (CUDA_VISIBLE_DEVICES)."""
        before = set(jobCompRecords())
        prot = self.proj.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1,
                                     numberOfThreads=3)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended("outputTiltSeries")
        prot.useGpu.set(True)      # the default follows this machine (no GPU here)
        prot.gpuList.set("0")
        self._queue(prot, "gpu", perStep=True, memory="1024")
        self._launchQueued(prot)
        self._assertInterpolated(prot)
        new = {j: r for j, r in jobCompRecords().items() if j not in before}
        mine = {j: r for j, r in new.items() if r["Name"].startswith(prot.strId() + "-")}
        self.assertEqual(len(mine), 2, "expected one job per tilt series, got %s" % new)
        logIds = self._jobLogIds(prot)
        for jobId, record in mine.items():
            self.assertEqual(record["JobState"], "COMPLETED")
            self.assertEqual(record["Partition"], "gpu")
            self.assertIn(jobId, logIds)
            self.assertIn(logIds[jobId]["gpus"], ("0", "1"))   # one of the node's 2 GPUs

    def test_full_chain_template_through_queue(self):
        """The portable full-chain template, every cryoTIGER protocol a job."""
        from cryotiger_scipion.workflows import loadTemplate
        folder = os.path.join(self.data, "chain")
        simulateTiltSeries(folder, "TS_01", ANGLES, shape=(16, 64, 64), pixelSize=PIXEL, seed=3)
        values = {"folder": folder, "pattern": "TS_*.mrcs", "pixelSize": PIXEL, "dose": 2.0,
                  "perGap": 1, "thickness": 16, "binning": 2, "tilts": 0,
                  "defocusMin": 10000.0, "defocusMax": 60000.0}
        prots = loadTemplate(self.proj, "cryotiger_full_chain_builtin", values)
        jobIds = []
        for p in prots:
            if p.getClassName() == "ProtImportTs":
                self.proj.launchProtocol(p, wait=True)
                self.assertTrue(p.isFinished())
                continue
            p.numberOfThreads.set(2)
            self._queue(p, "cpu")
            self._launchQueued(p)
            jobIds += self.jobIds
        records = jobCompRecords(jobIds)
        self.assertEqual([records[j]["JobState"] for j in jobIds], ["COMPLETED"] * 3)
        self.assertEqual(getattr(prots[1], OUT_TILTSERIES).getAnglesCount(), 2 * len(ANGLES) - 1)
        self.assertEqual(getattr(prots[2], OUT_CTFS).getSize(), 1)
        tomos = getattr(prots[3], OUT_TOMOGRAMS)
        self.assertEqual(tomos.getSize(), 1)
        self.assertTrue(tomos.ctfCorrected())
