"""ProtImportTs -> ProtCryoTigerCtf on a tilt series with one constant tilt
(issue 9, C18): the CTF of that tilt is not estimated, so its CTFTomo is
disabled and carries no defocus (never a number reported as if fitted); the
other tilts are fitted and enabled."""
import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from scipy import ndimage

from common import IMPORT_OUTPUT, importTiltSeries, runOnTiltSeries
from cryotiger_scipion.constants import OUT_CTFS
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.protocols import ProtCryoTigerCtf

ANGLES = list(range(-30, 31, 10))         # 7 tilts
CONSTANT = 3                              # 0-based stack index of the constant tilt
PIXEL = 5.0
DOSE = 3.0


class TestCryoTigerCtfFeatureless(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        os.makedirs(cls.data, exist_ok=True)
        rng = np.random.default_rng(5)
        imgs = [ndimage.gaussian_filter(rng.standard_normal((128, 128)), 0.8) for _ in ANGLES]
        stack = (1.0 + 0.1 * np.asarray(imgs)).astype(np.float32)
        stack[CONSTANT] = 1.0
        write_stack(os.path.join(cls.data, "TS_01.mrcs"), stack, PIXEL)
        with open(os.path.join(cls.data, "TS_01.tlt"), "w") as f:
            for k, a in enumerate(ANGLES):
                f.write("%.2f %.4f %d\n" % (a, k * DOSE, k + 1))
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=DOSE, aligned=True)

    def test_constant_tilt_is_disabled_without_defocus(self):
        _, ctfSet = runOnTiltSeries(self, ProtCryoTigerCtf, self.protImport, IMPORT_OUTPUT,
                                    OUT_CTFS, threads=1)
        rows = {c.getAcquisitionOrder(): (c.isEnabled(), c.getDefocusU(), c.getDefocusV())
                for c in ctfSet.iterClassItems(iterDisabled=True)}
        self.assertEqual(len(rows), len(ANGLES))
        for order, (enabled, du, dv) in rows.items():
            if order == CONSTANT + 1:
                self.assertFalse(enabled)
                self.assertIsNone(du)
                self.assertIsNone(dv)
            else:
                self.assertTrue(enabled, order)
                self.assertGreater(du, 0)
