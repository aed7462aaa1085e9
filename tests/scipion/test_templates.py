"""The full-chain workflow templates (import -> interpolate -> CTF ->
reconstruct): both load into a project with their placeholders filled and
their protocols linked; the portable one (built-in back ends) runs to the end
on a small simulated tilt series."""
import os
import unittest

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import doseSymmetricOrder
from cryotiger_scipion.constants import OUT_CTFS, OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.workflows import getTemplate, loadTemplate

BUILTIN = "cryotiger_full_chain_builtin"
GCTF_NOVACTF = "cryotiger_full_chain_gctf_novactf"
CLASSES = ["ProtImportTs", "ProtCryoTigerInterpolate", "ProtCryoTigerCtf", "ProtCryoTigerReconstruct"]
ANGLES = list(range(-30, 31, 10))
PIXEL = 5.0
DEFOCUS = 30000.0


def values(folder, **extra):
    v = {"folder": folder, "pattern": "TS_*.mrcs", "pixelSize": PIXEL, "dose": 2.0, "perGap": 1,
         "thickness": 16, "binning": 2, "tilts": 0, "defocusMin": 10000.0, "defocusMax": 60000.0}
    v.update(extra)
    return v


class TestFullChainTemplates(BaseTest):
    @classmethod
    def setUpClass(cls):
        try:
            from cryotiger_scipion.protocols import ProtCryoTigerCtf  # noqa: F401
        except ImportError as exc:
            raise unittest.SkipTest("ProtCryoTigerCtf is not available (%s)" % exc)
        from cryotiger_scipion.engine.formats.mrc import write_stack
        from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        os.makedirs(cls.data, exist_ok=True)
        orders = doseSymmetricOrder(ANGLES)
        vol = phantom_volume((16, 128, 128), n_blobs=40, seed=7)
        acq = Acquisition(pixel_size=PIXEL, defocus=[DEFOCUS] * len(ANGLES), order=orders)
        write_stack(os.path.join(cls.data, "TS_01.mrcs"), simulate_tilt_series(vol, ANGLES, acq), PIXEL)
        with open(os.path.join(cls.data, "TS_01.tlt"), "w") as f:
            for a, o in zip(ANGLES, orders):
                f.write("%.2f %.4f %d\n" % (a, o * 2.0, o))

    def _check_links(self, prots):
        self.assertEqual([p.getClassName() for p in prots], CLASSES)
        imp, interp, ctf, rec = prots
        self.assertEqual(interp.inputSetOfTiltSeries.getObjValue().getObjId(), imp.getObjId())
        self.assertEqual(ctf.inputSetOfTiltSeries.getObjValue().getObjId(), interp.getObjId())
        self.assertEqual(ctf.inputSetOfTiltSeries.getExtended(), OUT_TILTSERIES)
        self.assertEqual(rec.inputSetOfTiltSeries.getObjValue().getObjId(), interp.getObjId())
        self.assertEqual(rec.inputSetOfCtfTomoSeries.getObjValue().getObjId(), ctf.getObjId())
        self.assertEqual(rec.inputSetOfCtfTomoSeries.getExtended(), OUT_CTFS)
        self.assertEqual(rec.ctfCorrection.get(), 0)          # 3D
        self.assertEqual(rec.thickness.get(), 16)
        self.assertEqual(rec.binning.get(), 2)
        self.assertAlmostEqual(imp.samplingRate.get(), PIXEL)
        self.assertAlmostEqual(ctf.defocusMax.get(), 60000.0)

    def test_gctf_novactf_template_loads(self):
        t = getTemplate(GCTF_NOVACTF)
        t.replaceEnvVariables()
        t.parseContent()
        self.assertIn("gpuList", {p.getAlias() for p in t.getParams().values()})
        prots = loadTemplate(self.proj, GCTF_NOVACTF, values(self.data, gpuList="0"))
        self._check_links(prots)
        self.assertEqual(prots[2].backend.get(), 1)           # Gctf
        self.assertEqual(prots[3].backend.get(), 1)           # novaCTF

    def test_builtin_template_runs(self):
        prots = loadTemplate(self.proj, BUILTIN, values(self.data))
        self._check_links(prots)
        self.assertEqual(prots[2].backend.get(), 0)
        self.assertEqual(prots[3].backend.get(), 0)
        for p in prots:
            if p.getClassName() != "ProtImportTs":
                p.numberOfThreads.set(2)
            self.assertEqual(p.validate(), [], p.getClassName())   # its input exists by now
            self.launchProtocol(p)
        tomos = getattr(prots[3], OUT_TOMOGRAMS)
        self.assertEqual(tomos.getSize(), 1)
        self.assertTrue(tomos.ctfCorrected())
        self.assertAlmostEqual(tomos.getSamplingRate(), 2 * PIXEL)
        tomo = tomos.getFirstItem().clone()
        self.assertEqual(tomo.getTsId(), "TS_01")
        self.assertEqual(tomo.getDim(), (64, 64, 8))
        self.assertEqual(getattr(prots[1], OUT_TILTSERIES).getAnglesCount(), 2 * len(ANGLES) - 1)
        ctfTs = getattr(prots[2], OUT_CTFS).getFirstItem()
        defoci = np.array([c.getDefocusU() for c in ctfTs.iterItems()])
        self.assertEqual(len(defoci), 2 * len(ANGLES) - 1)
        self.assertLess(abs(np.median(defoci) - DEFOCUS), 2000)
