"""ProtImportTs -> (ProtCryoTigerInterpolate) -> (ProtCryoTigerCtf) ->
ProtCryoTigerReconstruct in a real headless project.

Checks the output tomograms (sampling rate with binning, dimensions, origin
at the centre, tsId, ctfCorrected flag), that they are reconstructions of the
simulated phantom, that "experimental tilts only" gives exactly the tomogram
of the acquired tilts, and validation (CTF correction without CTF, novaCTF
missing).
"""
import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import IMPORT_OUTPUT, importTiltSeries, simulateTiltSeries
from cryotiger_scipion.constants import OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.engine.simulate import phantom_volume
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate, ProtCryoTigerReconstruct

ANGLES = list(range(-60, 61, 6))          # 21 tilts
PIXEL = 10.0
SHAPE = (16, 32, 40)                      # z, y, x


def cc(a, b):
    a = np.asarray(a, float) - np.mean(a)
    b = np.asarray(b, float) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


class TestCryoTigerReconstruct(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        cls.volumes = {tsId: phantom_volume(SHAPE, n_blobs=20, seed=seed)
                       for tsId, seed in (("TS_01", 1), ("TS_02", 2))}
        for tsId, vol in cls.volumes.items():
            simulateTiltSeries(cls.data, tsId, ANGLES, pixelSize=PIXEL, volume=vol)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL, aligned=True)

    def _reconstruct(self, inputProt, outputName=IMPORT_OUTPUT, **kwargs):
        prot = self.newProtocol(ProtCryoTigerReconstruct, **kwargs)
        prot.inputSetOfTiltSeries.set(inputProt)
        prot.inputSetOfTiltSeries.setExtended(outputName)
        prot.numberOfThreads.set(3)
        self.launchProtocol(prot)
        out = getattr(prot, OUT_TOMOGRAMS, None)
        self.assertIsNotNone(out, "no output tomograms")
        self.assertEqual(prot.getFailedItems(), {})
        return prot, out

    def _plain(self):
        """Plain WBP of the imported series, binning 2 (run once, shared)."""
        cls = type(self)
        if getattr(cls, "plain", None) is None:
            cls.plain = self._reconstruct(self.protImport, ctfCorrection=2, thickness=16, binning=2)[1]
        return cls.plain

    @staticmethod
    def _tomos(out):
        return {t.getTsId(): t.clone() for t in out.iterItems()}

    def test_plain_wbp_with_binning(self):
        out = self._plain()
        self.assertEqual(out.getSize(), 2)
        self.assertAlmostEqual(out.getSamplingRate(), 2 * PIXEL, places=3)
        self.assertFalse(out.ctfCorrected())
        for tsId, tomo in self._tomos(out).items():
            self.assertEqual(tomo.getDim(), (20, 16, 8))                 # x, y, z
            self.assertAlmostEqual(tomo.getSamplingRate(), 20.0, places=3)
            self.assertFalse(tomo.ctfCorrected())
            shifts = tomo.getOrigin(force=True).getShifts()
            self.assertEqual(tuple(round(s, 3) for s in shifts), (-200.0, -160.0, -80.0))
            with mrcfile.open(tomo.getFileName()) as m:
                self.assertAlmostEqual(float(m.voxel_size.x), 20.0, places=3)
                data = np.array(m.data)
            truth = self.volumes[tsId].reshape(8, 2, 16, 2, 20, 2).mean(axis=(1, 3, 5))
            self.assertGreater(cc(data, -truth), 0.7, tsId)    # images: density is dark
            other = [v for k, v in self.volumes.items() if k != tsId][0]
            self.assertLess(cc(data, -other.reshape(8, 2, 16, 2, 20, 2).mean(axis=(1, 3, 5))),
                            cc(data, -truth) - 0.3)

    def test_experimental_tilts_only(self):
        interp = self.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1, mode=0)
        interp.inputSetOfTiltSeries.set(self.protImport)
        interp.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        interp.numberOfThreads.set(3)
        self.launchProtocol(interp)
        real = self._plain()
        _, expOnly = self._reconstruct(interp, OUT_TILTSERIES, ctfCorrection=2, thickness=16,
                                       binning=2, tilts=1)
        real, expOnly = self._tomos(real), self._tomos(expOnly)
        for tsId in ("TS_01", "TS_02"):
            with mrcfile.open(real[tsId].getFileName()) as a, \
                    mrcfile.open(expOnly[tsId].getFileName()) as b:
                self.assertTrue(np.allclose(a.data, b.data, atol=1e-4), tsId)

    def test_validation(self):
        prot = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=0)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        errors = prot.validate()
        self.assertTrue(any("needs a CTF estimation" in e for e in errors), errors)
        from cryotiger_scipion import Plugin
        prot = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=2, backend=1)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        missing = any("novaCTF was not found" in e for e in prot.validate())
        self.assertEqual(missing, Plugin.getNovaCtfBinary() is None)
