"""ProtImportTs -> (exclude a view) -> ProtCryoTigerInterpolate -> ProtCryoTigerCtf
-> ProtCryoTigerExport in a real headless project (issue 15).

Checks, per tilt series folder extra/<tsId>: the RELION 5 star (rows = enabled
tilt images, synthetic column = the tilt images' _cryotigerSynthetic,
pre-exposure = accumDose - dosePerFrame of the tilt image at that angle,
defocus = the CTFTomo with the tilt image's acquisition order, image names
into an existing stack), tomograms.star, the STOPGAP wedge list (tomo_num per
series, exposure = accumDose), the IMOD exclude list (= the disabled views);
and "experimental tilts only" without CTF."""
import os

import numpy as np
import starfile
from pyworkflow.tests import BaseTest, setupTestProject

from common import (IMPORT_OUTPUT, doseSymmetricOrder, excludeViews, importTiltSeries,
                    runOnTiltSeries, simulateTiltSeries, tiltImages)
from cryotiger_scipion.constants import ATTR_SYNTHETIC, OUT_CTFS, OUT_FAILED, OUT_TILTSERIES
from cryotiger_scipion.engine.export import read_stopgap_synthetic_rows
from cryotiger_scipion.engine.interpolate import parse_view_list
from cryotiger_scipion.protocols import (ProtCryoTigerCtf, ProtCryoTigerExport,
                                         ProtCryoTigerInterpolate)

ANGLES = list(range(-30, 31, 10))      # 7 tilts
PIXEL = 5.0
DOSE = 3.0


class TestCryoTigerExport(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        simulateTiltSeries(cls.data, "TS_01", ANGLES, shape=(12, 96, 96), pixelSize=PIXEL,
                           orders=doseSymmetricOrder(ANGLES), dosePerTilt=DOSE, seed=1)
        simulateTiltSeries(cls.data, "TS_02", ANGLES, shape=(12, 96, 96), pixelSize=PIXEL,
                           dosePerTilt=DOSE, seed=2)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=DOSE, aligned=True)
        excludeViews(getattr(cls.protImport, IMPORT_OUTPUT), "TS_01", [7])   # +30 deg
        prot = cls.newProtocol(ProtCryoTigerInterpolate, method=0, tiltsPerGap=1)
        prot.inputSetOfTiltSeries.set(cls.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        cls.launchProtocol(prot)
        cls.protInterp = prot
        ctf = cls.newProtocol(ProtCryoTigerCtf)
        ctf.inputSetOfTiltSeries.set(prot)
        ctf.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        ctf.numberOfThreads.set(2)
        cls.launchProtocol(ctf)
        cls.protCtf = ctf

    def _export(self, **kwargs):
        prot, _ = runOnTiltSeries(self, ProtCryoTigerExport, self.protInterp, OUT_TILTSERIES,
                                  threads=2, **kwargs)
        return prot

    def _tiltImages(self, tsId):
        ts = getattr(self.protInterp, OUT_TILTSERIES).getTiltSeriesFromTsId(tsId)
        return tiltImages(ts)

    def _ctfByOrder(self, tsId):
        for item in getattr(self.protCtf, OUT_CTFS).iterItems():
            if item.getTsId() == tsId:
                return {c.getAcquisitionOrder(): (c.getDefocusU(), c.getDefocusV(), c.getDefocusAngle())
                        for c in item.iterItems()}
        raise AssertionError("no CTF for %s" % tsId)

    def test_all_formats_with_ctf(self):
        prot = self.newProtocol(ProtCryoTigerExport, exportFormat=3, thickness=40)
        prot.inputSetOfTiltSeries.set(self.protInterp)
        prot.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        prot.numberOfThreads.set(2)
        prot.inputSetOfCtfTomoSeries.set(self.protCtf)
        prot.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
        self.launchProtocol(prot)
        self.assertEqual(prot.getFailedItems(), {})
        self.assertEqual(sorted(prot.getExportedTsIds()), ["TS_01", "TS_02"])
        for num, tsId in enumerate(["TS_01", "TS_02"], 1):
            folder = prot.getExportFolder(tsId)
            self.assertEqual(folder, os.path.abspath(prot._getExtraPath(tsId)))
            # TS_01: +30 excluded -> 6 anchors, 5 synthetic, 12 images (11 enabled); TS_02: 7 + 6.
            tis = self._tiltImages(tsId)
            nImages, nEnabled, nSynthetic = (12, 11, 5) if tsId == "TS_01" else (13, 13, 6)
            self.assertEqual(len(tis), nImages)
            enabled = [ti for ti in tis if ti.isEnabled()]
            self.assertEqual(len(enabled), nEnabled)
            ctfs = self._ctfByOrder(tsId)
            # RELION 5
            rows = starfile.read(os.path.join(folder, tsId + ".star"))
            self.assertEqual(len(rows), len(enabled))
            for (_, row), ti in zip(rows.iterrows(), enabled):
                self.assertAlmostEqual(row["rlnTomoNominalStageTiltAngle"], ti.getTiltAngle(), 3)
                syn = bool(getattr(ti, ATTR_SYNTHETIC).get())
                self.assertEqual(row["cryotigerSynthetic"], int(syn))
                acq = ti.getAcquisition()
                self.assertAlmostEqual(row["rlnMicrographPreExposure"],
                                       acq.getAccumDose() - acq.getDosePerFrame(), 3)
                u, v, a = ctfs[ti.getAcquisitionOrder()]
                self.assertAlmostEqual(row["rlnDefocusU"], u, 1)
                self.assertAlmostEqual(row["rlnDefocusV"], v, 1)
                k, stack = row["rlnMicrographName"].split("@", 1)
                self.assertEqual(int(k), ti.getIndex())
                self.assertTrue(os.path.exists(stack.split(":")[0]), stack)
            self.assertEqual(sum(rows["cryotigerSynthetic"]), nSynthetic)
            glob = starfile.read(os.path.join(folder, "tomograms.star"))
            self.assertEqual(list(glob["rlnTomoName"]), [tsId])
            self.assertEqual(int(glob["rlnTomoSizeZ"][0]), 40)
            self.assertAlmostEqual(glob["rlnTomoTiltSeriesPixelSize"][0], PIXEL, 3)
            self.assertAlmostEqual(glob["rlnAmplitudeContrast"][0], 0.1, 3)   # from the import
            # STOPGAP
            wedge = starfile.read(os.path.join(folder, tsId + "_wedgelist.star"))
            self.assertEqual(set(wedge["tomo_num"]), {num})
            self.assertEqual(len(wedge), len(enabled))
            np.testing.assert_allclose(wedge["exposure"],
                                       [ti.getAcquisition().getAccumDose() for ti in enabled],
                                       atol=1e-3)
            # IMOD: the disabled views are excluded
            excl = parse_view_list(open(os.path.join(folder, tsId + "_exclude.txt")).read().strip())
            self.assertEqual([i + 1 for i in excl], [ti.getIndex() for ti in tis if not ti.isEnabled()])
            self.assertTrue(os.path.exists(os.path.join(folder, tsId + ".defocus")))
        # The files joining both series (RELION 5 and STOPGAP read one for all tomograms).
        glob = starfile.read(prot.getCombinedFile("relion5"))
        self.assertEqual(list(glob["rlnTomoName"]), ["TS_01", "TS_02"])
        self.assertEqual(list(glob["rlnTomoTiltSeriesStarFile"]),
                         [os.path.join(prot.getExportFolder(t), t + ".star") for t in ("TS_01", "TS_02")])
        wedge = starfile.read(prot.getCombinedFile("stopgap"))
        self.assertEqual(list(wedge["tomo_num"]), [1] * 11 + [2] * 13)
        rows = read_stopgap_synthetic_rows(prot.getCombinedFile("stopgap"))
        self.assertEqual(len(rows), 5 + 6)
        self.assertTrue(all(wedge["tomo_num"][r - 1] == (1 if r <= 11 else 2) for r in rows))

    def test_experimental_only_without_ctf(self):
        prot = self._export(exportFormat=2, experimentalOnly=True)
        for tsId in ("TS_01", "TS_02"):
            folder = prot.getExportFolder(tsId)
            rows = starfile.read(os.path.join(folder, tsId + ".star"))
            real = [ti for ti in self._tiltImages(tsId)
                    if ti.isEnabled() and not getattr(ti, ATTR_SYNTHETIC).get()]
            self.assertEqual(len(rows), len(real))
            self.assertEqual(set(rows["cryotigerSynthetic"]), {0})
            self.assertNotIn("rlnDefocusU", rows.columns)
            self.assertFalse(os.path.exists(os.path.join(folder, tsId + "_wedgelist.star")))

    def test_zz_rejected_ctf_of_a_used_tilt_fails_that_series_only(self):
        """A CTFTomo the user disabled (or one without defocus) gives no defocus:
        the series whose used tilt has it fails with the engine's one line, the
        other series is exported. (Runs last: it disables a CTFTomo in place.)"""
        ctfSet = getattr(self.protCtf, OUT_CTFS)
        synOrder = next(ti.getAcquisitionOrder() for ti in self._tiltImages("TS_02")
                        if getattr(ti, ATTR_SYNTHETIC).get())
        for item in ctfSet.iterItems():
            if item.getTsId() == "TS_02":
                ctfs = [c.clone() for c in item.iterItems()]
                for c in ctfs:
                    if c.getAcquisitionOrder() == synOrder:
                        c.setEnabled(False)
                        item.update(c)
                item.write()
                ctfSet.update(item)
                break
        ctfSet.write()
        ctfSet.close()
        prot = self.newProtocol(ProtCryoTigerExport, exportFormat=1)
        prot.inputSetOfTiltSeries.set(self.protInterp)
        prot.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        prot.inputSetOfCtfTomoSeries.set(self.protCtf)
        prot.inputSetOfCtfTomoSeries.setExtended(OUT_CTFS)
        self.launchProtocol(prot)
        self.assertEqual(prot.getExportedTsIds(), ["TS_01"])
        failed = prot.getFailedItems()
        self.assertEqual(list(failed), ["TS_02"])
        self.assertIn("absent or not estimated", failed["TS_02"])
        failedSet = getattr(prot, OUT_FAILED)          # the shared failed-series output, closed
        self.assertEqual([ts.getTsId() for ts in failedSet.iterItems()], ["TS_02"])
        self.assertFalse(failedSet.isStreamOpen())
        self.assertTrue(os.path.exists(os.path.join(prot.getExportFolder("TS_01"),
                                                    "TS_01_wedgelist.star")))
