"""ProtImportTs -> ProtCryoTigerCtf (built-in) in a real headless project,
on tilt series simulated with a known defocus; interpolated series (synthetic
tilts) get a CTF too; Gctf back end validation, and a Gctf run when the
binary is available.

Checks: one CTFTomoSeries per tilt series and one CTFTomo per tilt, paired
with the tilt images by acquisition order (tomo.utils.getCommonTsAndCtfElements),
defocus accuracy, synthetic flags."""
import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from scipy import ndimage

from common import (IMPORT_OUTPUT, doseSymmetricOrder, importTiltSeries, runOnTiltSeries,
                    tiltImages)
from cryotiger_scipion import Plugin
from cryotiger_scipion.constants import ATTR_SYNTHETIC, OUT_CTFS, OUT_TILTSERIES
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series
from cryotiger_scipion.protocols import ProtCryoTigerCtf, ProtCryoTigerInterpolate

ANGLES = list(range(-30, 31, 10))         # 7 tilts
PIXEL = 5.0
DOSE = 3.0
DEFOCUS = {"TS_01": 35000.0, "TS_02": 25000.0}


def simulateWithDefocus(folder, tsId, defocus, orders, seed):
    """A textured phantom (256 px, 5 A/px) projected with the CTF at ``defocus``
    (A) and dose noise; stack + .tlt (angle, accumulated dose, order) as
    common.simulateTiltSeries writes them for ProtImportTs."""
    rng = np.random.default_rng(seed)
    vol = phantom_volume((12, 256, 256), n_blobs=30, seed=seed)
    tex = ndimage.gaussian_filter(rng.standard_normal(vol.shape).astype(np.float32), 0.6)
    vol = vol + 0.5 * tex / tex.std()
    acq = Acquisition(pixel_size=PIXEL, defocus=[defocus] * len(ANGLES), dose_per_tilt=DOSE,
                      order=orders, seed=seed)
    write_stack(os.path.join(folder, "%s.mrcs" % tsId), simulate_tilt_series(vol, ANGLES, acq), PIXEL)
    with open(os.path.join(folder, "%s.tlt" % tsId), "w") as f:
        for a, o in zip(ANGLES, orders):
            f.write("%.2f %.4f %d\n" % (a, o * DOSE, o))


class TestCryoTigerCtf(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        os.makedirs(cls.data, exist_ok=True)
        simulateWithDefocus(cls.data, "TS_01", DEFOCUS["TS_01"], doseSymmetricOrder(ANGLES), 1)
        simulateWithDefocus(cls.data, "TS_02", DEFOCUS["TS_02"], list(range(1, len(ANGLES) + 1)), 2)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=DOSE, aligned=True)

    def _ctf(self, prot, inputName, **kwargs):
        return runOnTiltSeries(self, ProtCryoTigerCtf, prot, inputName, OUT_CTFS, threads=2,
                               **kwargs)

    def _checkPairing(self, tsSet, ctfSet, expectDefocus=True):
        from tomo.utils import getCommonTsAndCtfElements
        self.assertEqual(ctfSet.getSize(), tsSet.getSize())
        for ctfTs in ctfSet.iterItems():
            tsId = ctfTs.getTsId()
            ts = tsSet.getTiltSeriesFromTsId(tsId)
            tis = tiltImages(ts)
            # (clone() of a CTFTomo drops plugin attributes: read them while iterating)
            byOrder = {c.getAcquisitionOrder(): (c.getIndex(), c.getDefocusU(), c.getDefocusV(),
                                                 bool(getattr(c, ATTR_SYNTHETIC).get()))
                       for c in ctfTs.iterItems()}
            self.assertEqual(len(byOrder), len(tis))
            common = getCommonTsAndCtfElements(ts, ctfTs)
            self.assertEqual(common, {ti.getAcquisitionOrder() for ti in tis})
            errors = []
            for ti in tis:
                index, du, dv, synthetic = byOrder[ti.getAcquisitionOrder()]
                self.assertEqual(index, ti.getIndex())
                self.assertGreaterEqual(du, dv)
                syn = getattr(ti, ATTR_SYNTHETIC, None)
                self.assertEqual(synthetic, bool(syn.get()) if syn is not None else False)
                errors.append(abs(0.5 * (du + dv) - DEFOCUS[tsId]))
            if expectDefocus:
                self.assertLess(np.median(errors), 500.0, (tsId, errors))

    def test_builtin_on_imported(self):
        tsSet = getattr(self.protImport, IMPORT_OUTPUT)
        prot, ctfSet = self._ctf(self.protImport, IMPORT_OUTPUT)
        self._checkPairing(tsSet, ctfSet)
        self.assertEqual(ctfSet.getSetOfTiltSeries().getSize(), tsSet.getSize())
        # the acquisition reached the engine: voltage, Cs, amplitude contrast of the import
        self.assertIn("--voltage 300.0 --cs 2.7 --amp-contrast 0.1", prot._getEngineArgs())

    def test_synthetic_tilts_get_a_ctf(self):
        interp = self.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1)
        interp.inputSetOfTiltSeries.set(self.protImport)
        interp.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        self.launchProtocol(interp)
        tsSet = getattr(interp, OUT_TILTSERIES)
        _, ctfSet = self._ctf(interp, OUT_TILTSERIES, astigmatism=2)
        # linear averages of two neighbours keep the defocus (same for all tilts here)
        self._checkPairing(tsSet, ctfSet)
        n = sum(1 for c in ctfSet.iterClassItems(iterDisabled=True)
                if getattr(c, ATTR_SYNTHETIC).get())
        self.assertEqual(n, 2 * (len(ANGLES) - 1))

    def test_gctf_validation_and_run(self):
        prot = self.newProtocol(ProtCryoTigerCtf, backend=1)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        if Plugin.getGctfBinary() is None:
            errors = prot.validate()
            self.assertTrue(any("CRYOTIGER_GCTF_BIN" in e for e in errors), errors)
            self.skipTest("Gctf binary not available (set CRYOTIGER_GCTF_BIN to run Gctf)")
        _, ctfSet = self._ctf(self.protImport, IMPORT_OUTPUT, backend=1, tileSize=128)
        self._checkPairing(getattr(self.protImport, IMPORT_OUTPUT), ctfSet, expectDefocus=False)

    def test_pixel_size_from_the_set_not_the_header(self):
        """The stack's header says 7 Å/px, the set's sampling rate (given at
        import) says 5 Å/px, the truth: the CTF is estimated at 5 Å/px (a
        defocus estimated at 7 Å/px would be about twice the truth), and the
        CTF set's series keep 5 Å/px (issue 10 item 9)."""
        import mrcfile
        folder = self.getOutputPath("wrong_header")
        os.makedirs(folder, exist_ok=True)
        for ext in (".mrcs", ".tlt"):
            src = os.path.join(self.data, "TS_02" + ext)
            with open(src, "rb") as f, open(os.path.join(folder, "TS_02" + ext), "wb") as g:
                g.write(f.read())
        with mrcfile.open(os.path.join(folder, "TS_02.mrcs"), mode="r+") as m:
            m.voxel_size = 7.0
        imp = importTiltSeries(self, folder, "TS_02.mrcs", pixelSize=PIXEL, dosePerTilt=DOSE)
        tsSet = getattr(imp, IMPORT_OUTPUT)
        self.assertAlmostEqual(tsSet.getSamplingRate(), PIXEL)
        prot, ctfSet = self._ctf(imp, IMPORT_OUTPUT)
        self.assertIn("--pixel-size %s" % PIXEL, "\n".join(prot.getLogsLastLines(200, logFile=0)))
        self._checkPairing(tsSet, ctfSet)          # defocus within 500 Å of the truth
