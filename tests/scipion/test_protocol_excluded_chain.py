"""An excluded (disabled) view through the Scipion chain (issue 10 item 5,
case C23): ProtImportTs (view 4 disabled) -> ProtCryoTigerInterpolate (the
excluded real view and the synthetic tilt made at its angle share -12 degrees)
-> ProtCryoTigerCtf (the excluded view is not estimated: disabled CTFTomo, no
defocus; the others fitted) -> ProtCryoTigerReconstruct with 3D CTF (all
tilts, and experimental tilts only)."""
import os

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from scipy import ndimage

from common import IMPORT_OUTPUT, excludeViews, importTiltSeries, runOnTiltSeries, tiltImages
from cryotiger_scipion.constants import ATTR_SYNTHETIC, OUT_CTFS, OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series
from cryotiger_scipion.protocols import (ProtCryoTigerCtf, ProtCryoTigerInterpolate,
                                         ProtCryoTigerReconstruct)

ANGLES = list(range(-30, 31, 6))          # 11 tilts; view 4 is -12 degrees
PIXEL = 5.0
DEFOCUS = 25000.0


class TestExcludedViewChain(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        os.makedirs(cls.data, exist_ok=True)
        rng = np.random.default_rng(4)
        vol = phantom_volume((12, 128, 128), n_blobs=20, seed=4)
        tex = ndimage.gaussian_filter(rng.standard_normal(vol.shape).astype(np.float32), 0.6)
        vol = vol + 0.5 * tex / tex.std()
        acq = Acquisition(pixel_size=PIXEL, defocus=[DEFOCUS] * len(ANGLES), dose_per_tilt=3.0,
                          seed=4)
        write_stack(os.path.join(cls.data, "TS_X.mrcs"), simulate_tilt_series(vol, ANGLES, acq),
                    PIXEL)
        with open(os.path.join(cls.data, "TS_X.tlt"), "w") as f:
            for i, a in enumerate(ANGLES, 1):
                f.write("%.2f %.4f %d\n" % (a, i * 3.0, i))
        cls.protImport = importTiltSeries(cls, cls.data, "TS_X.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=3.0, aligned=True)
        excludeViews(getattr(cls.protImport, IMPORT_OUTPUT), "TS_X", [4])

    def test_interpolate_ctf_reconstruct_with_an_excluded_view(self):
        interp, tsSet = runOnTiltSeries(self, ProtCryoTigerInterpolate, self.protImport,
                                        IMPORT_OUTPUT, OUT_TILTSERIES, threads=1, method=0,
                                        tiltsPerGap=1, mode=0)
        tis = tiltImages(tsSet.getFirstItem())
        at12 = [ti for ti in tis if abs(ti.getTiltAngle() + 12.0) < 1e-3]
        self.assertEqual(sorted((bool(getattr(t, ATTR_SYNTHETIC).get()), t.isEnabled())
                                for t in at12), [(False, False), (True, True)])
        ctfProt, ctfSet = runOnTiltSeries(self, ProtCryoTigerCtf, interp, OUT_TILTSERIES, OUT_CTFS,
                                          threads=1, defocusMin=10000.0, defocusMax=40000.0)
        ctfs = [c.clone() for c in ctfSet.getFirstItem().iterItems()]
        self.assertEqual(len(ctfs), len(tis))
        disabled = [c for c in ctfs if not c.isEnabled()]
        self.assertEqual(len(disabled), 1)
        self.assertIn(disabled[0].getDefocusU(), (None, 0.0))      # no defocus reported
        fitted = [0.5 * (c.getDefocusU() + c.getDefocusV()) for c in ctfs if c.isEnabled()]
        self.assertLess(abs(np.median(fitted) - DEFOCUS), 1000.0)
        for tilts in (0, 1):                 # all tilts; experimental tilts only
            prot = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=0, thickness=12,
                                    tilts=tilts)
            prot.inputSetOfTiltSeries.set(interp)
            prot.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
            prot.inputSetOfCtfTomoSeries.set(ctfProt)
            prot.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
            self.launchProtocol(prot)
            self.assertEqual(prot.getFailedItems(), {})
            out = getattr(prot, OUT_TOMOGRAMS)
            with mrcfile.open(out.getFirstItem().getFileName()) as m:
                self.assertEqual(m.data.shape, (12, 128, 128))
                self.assertTrue(np.all(np.isfinite(m.data)))
