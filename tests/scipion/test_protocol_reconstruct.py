"""ProtImportTs -> (ProtCryoTigerInterpolate) -> (ProtCryoTigerCtf) ->
ProtCryoTigerReconstruct in a real headless project.

Checks the output tomograms (sampling rate with binning, dimensions, origin
at the centre, tsId, ctfCorrected flag), that they are reconstructions of the
simulated phantom, that "experimental tilts only" gives exactly the tomogram
of the acquired tilts, and validation (CTF correction without CTF, novaCTF
missing).
"""
import json
import os
import unittest

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import IMPORT_OUTPUT, importTiltSeries, runOnTiltSeries, simulateTiltSeries
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
        return runOnTiltSeries(self, ProtCryoTigerReconstruct, inputProt, outputName,
                               OUT_TOMOGRAMS, threads=3, **kwargs)

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

    def test_novactf_backend(self):
        from cryotiger_scipion import Plugin
        if not Plugin.getNovaCtfBinary():
            self.skipTest("novaCTF not found: set CRYOTIGER_NOVACTF_BIN to a built novaCTF "
                          "(github.com/turonova/novaCTF) to run the novaCTF back end")
        _, out = self._reconstruct(self.protImport, ctfCorrection=2, thickness=16, binning=2,
                                   backend=1)
        ours = self._tomos(self._plain())
        for tsId, tomo in self._tomos(out).items():
            self.assertEqual(tomo.getDim(), (20, 16, 8))
            with mrcfile.open(tomo.getFileName()) as a, mrcfile.open(ours[tsId].getFileName()) as b:
                self.assertGreater(cc(a.data, b.data), 0.98, tsId)

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


class TestCryoTigerReconstructCtf(BaseTest):
    """ProtImportTs -> ProtCryoTigerCtf (built-in) -> ProtCryoTigerReconstruct
    (3D CTF): the defocus reaches the engine matched by acquisition order
    (dose-symmetric acquisition, so it differs from the stack order) and the
    corrected tomogram is closer to the truth than the uncorrected one."""
    DEFOCUS = 30000.0
    PX = 5.0

    @classmethod
    def setUpClass(cls):
        try:
            from cryotiger_scipion.protocols import ProtCryoTigerCtf  # noqa: F401
        except ImportError as exc:
            raise unittest.SkipTest("ProtCryoTigerCtf is not available (%s)" % exc)
        from common import doseSymmetricOrder
        from cryotiger_scipion.engine.formats.mrc import write_stack
        from cryotiger_scipion.engine.simulate import simulate_thick_ctf
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        os.makedirs(cls.data, exist_ok=True)
        cls.angles = list(range(-60, 61, 4))
        cls.orders = doseSymmetricOrder(cls.angles)
        cls.volume = phantom_volume((24, 128, 128), n_blobs=60, seed=5)
        ts = simulate_thick_ctf(cls.volume, cls.angles, cls.PX, [cls.DEFOCUS] * len(cls.angles))
        write_stack(os.path.join(cls.data, "TS_C.mrcs"), ts, cls.PX)
        with open(os.path.join(cls.data, "TS_C.tlt"), "w") as f:
            for a, o in zip(cls.angles, cls.orders):
                f.write("%.2f %.4f %d\n" % (a, o * 2.0, o))
        cls.protImport = importTiltSeries(cls, cls.data, "TS_C.mrcs", pixelSize=cls.PX, aligned=True)

    def test_3d_ctf_from_the_ctf_protocol(self):
        from tomo.utils import getCommonTsAndCtfElements
        from cryotiger_scipion.constants import OUT_CTFS
        from cryotiger_scipion.protocols import ProtCryoTigerCtf
        ctfProt = self.newProtocol(ProtCryoTigerCtf, defocusMin=10000.0, defocusMax=60000.0,
                                   astigmatism=2)
        ctfProt.inputSetOfTiltSeries.set(self.protImport)
        ctfProt.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        self.launchProtocol(ctfProt)
        ctfSet = getattr(ctfProt, OUT_CTFS)
        results = {}
        for corr in (0, 2):
            prot = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=corr, thickness=24,
                                    radialCutoff=0.5, radialFalloff=0.0)
            prot.inputSetOfTiltSeries.set(self.protImport)
            prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
            prot.inputSetOfCtfTomoSeries.set(ctfProt)
            prot.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
            self.launchProtocol(prot)
            self.assertEqual(prot.getFailedItems(), {})
            out = getattr(prot, OUT_TOMOGRAMS)
            tomo = out.getFirstItem().clone()
            self.assertEqual(bool(out.ctfCorrected()), corr == 0)
            self.assertEqual(bool(tomo.ctfCorrected()), corr == 0)
            with mrcfile.open(tomo.getFileName()) as m:
                results[corr] = cc(m.data, -self.volume)
            if corr == 0:
                # The engine's CTF.json holds, per image in stack order, the CTFTomo of the
                # same acquisition order.
                with open(prot._getExtraPath("TS_C", "TS_C_ctf.json")) as f:
                    sent = json.load(f)
                ctfTs = ctfSet.getFirstItem()
                byOrder = {c.getAcquisitionOrder(): c.clone() for c in ctfTs.iterItems()}
                ts = getattr(self.protImport, IMPORT_OUTPUT).getFirstItem()
                self.assertEqual(len(getCommonTsAndCtfElements(ts, ctfTs)), len(self.angles))
                for entry, a, o in zip(sent, self.angles, self.orders):
                    self.assertAlmostEqual(entry["angle"], a, places=2)
                    self.assertAlmostEqual(entry["defocus_u"], byOrder[int(o)].getDefocusU(), places=1)
                    self.assertAlmostEqual(entry["defocus_v"], byOrder[int(o)].getDefocusV(), places=1)
        self.assertGreater(results[0], results[2] + 0.05, results)

    def test_disabled_views_in_tilt_series_and_ctf(self):
        """Views disabled in the tilt series, in the CTF set, or both (on the
        same or on different views) are all left out of a CTF-corrected
        reconstruction, and nothing else is (issue 10 item 8)."""
        from common import excludeViews
        from cryotiger_scipion.constants import OUT_CTFS
        from cryotiger_scipion.protocols import ProtCryoTigerCtf
        ctfProt = self.newProtocol(ProtCryoTigerCtf, defocusMin=10000.0, defocusMax=60000.0,
                                   astigmatism=2, lowRes=40.0)
        ctfProt.inputSetOfTiltSeries.set(self.protImport)
        ctfProt.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        self.launchProtocol(ctfProt)
        ctfSet = getattr(ctfProt, OUT_CTFS)
        protExcl = importTiltSeries(self, self.data, "TS_C.mrcs", pixelSize=self.PX, aligned=True)
        excludeViews(getattr(protExcl, IMPORT_OUTPUT), "TS_C", [3])     # stack position 3

        def disableCtf(indices):
            """Disable (in place, as the CTF viewer does) the CTF entries of the
            views at stack ``indices``, matched by acquisition order."""
            orders = {int(self.orders[i - 1]) for i in indices}
            ctfTs = ctfSet.getFirstItem()
            items = [c.clone() for c in ctfTs.iterItems()]
            for c in items:
                c.setEnabled(c.getAcquisitionOrder() not in orders)
                ctfTs.update(c)
            ctfTs.write()
            ctfSet.update(ctfTs)
            ctfSet.write()

        cases = [(self.protImport, [], []), (protExcl, [], [3]), (self.protImport, [5], [5]),
                 (protExcl, [3, 5], [3, 5]), (protExcl, [7], [3, 7])]
        try:
            for inputProt, ctfOff, expected in cases:
                disableCtf(ctfOff)
                prot = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=1, thickness=24,
                                        binning=2)
                prot.inputSetOfTiltSeries.set(inputProt)
                prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
                prot.inputSetOfCtfTomoSeries.set(ctfProt)
                prot.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
                self.launchProtocol(prot)
                self.assertEqual(prot.getFailedItems(), {})
                with open(prot._getExtraPath("TS_C", "TS_C_reconstruct.json")) as f:
                    settings = json.load(f)
                self.assertEqual(settings["exclude"], expected, (ctfOff, expected))
                log = "\n".join(prot.getLogsLastLines(300, logFile=0))
                if expected:
                    self.assertIn("--exclude %s" % ",".join(map(str, expected)), log)
                else:
                    self.assertNotIn("--exclude", log)
        finally:
            disableCtf([])
