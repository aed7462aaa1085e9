"""Engine options exposed on the Scipion protocols, each run in a real headless
project (ProtImportTs -> ProtCryoTigerInterpolate -> ProtCryoTigerReconstruct):

* reconstruct "Leave out synthetic tilts with confidence below" (engine
  ``reconstruct --min-confidence``): exactly the FILM tilts below the value
  are left out, the same views the engine picks from its own record;
* interpolate "Synthesise at these angles" (engine ``--at``) with a
  time-aware model, refused for a midpoint-only model and in mode restore;
* "Aligned image size" (engine ``--aligned-size NX,NY``) on both protocols
  when they apply the series' transforms: a centred NX x NY frame.

Small series (11 tilts of 48 x 48 px) and tiny random FILM models
(``cryotiger model init --config small``) on the CPU, to stay fast.
"""
import json
import os

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import (IMPORT_OUTPUT, addAlignedCopy, importTiltSeries, makeFilmTestModel,
                    runOnTiltSeries, simulateTiltSeries, tiltImages)
from cryotiger_scipion.constants import ATTR_CONFIDENCE, ATTR_SYNTHETIC, OUT_TILTSERIES, OUT_TOMOGRAMS
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.record import low_confidence_views
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate, ProtCryoTigerReconstruct

ANGLES = list(range(-30, 31, 6))          # 11 tilts, 6 degree steps
PIXEL = 10.0
DOSE = 2.0
NO_CTF = 2                                # ProtCryoTigerReconstruct.ctfCorrection "none"


def _synthetic(ti):
    return bool(getattr(ti, ATTR_SYNTHETIC).get())


class TestCryoTigerEngineOptions(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        cls.sim = simulateTiltSeries(cls.data, "TS_01", ANGLES, pixelSize=PIXEL, dosePerTilt=DOSE,
                                     seed=1)
        cls.protImport = importTiltSeries(cls, cls.data, "TS_01.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=DOSE, aligned=True, label="aligned")

    # -------------------------------------------------------------- 1. min confidence
    def test_reconstruct_leaves_out_synthetic_tilts_below_the_confidence(self):
        model = makeFilmTestModel(self.getOutputPath("film_model"))
        protInt, interp = runOnTiltSeries(self, ProtCryoTigerInterpolate, self.protImport,
                                          IMPORT_OUTPUT, OUT_TILTSERIES, threads=1, method=1,
                                          modelSource=3, modelFolder=model, tiltsPerGap=1,
                                          useGpu=False)
        tis = tiltImages(interp.getFirstItem())
        conf = {ti.getIndex(): getattr(ti, ATTR_CONFIDENCE).get() for ti in tis if _synthetic(ti)}
        self.assertEqual(len(conf), len(ANGLES) - 1)
        values = sorted(set(conf.values()))
        self.assertGreaterEqual(len(values), 2, "the random model gave one confidence for all: %s"
                                % values)
        # a threshold between two confidences: some synthetic tilts below it, some above
        mid = len(values) // 2
        threshold = round((values[mid - 1] + values[mid]) / 2, 6)
        low = sorted(i for i, c in conf.items() if c < threshold)
        self.assertTrue(0 < len(low) < len(conf))

        prot, out = runOnTiltSeries(self, ProtCryoTigerReconstruct, protInt, OUT_TILTSERIES,
                                    OUT_TOMOGRAMS, threads=1, ctfCorrection=NO_CTF, thickness=16,
                                    minConfidence=threshold)
        with open(prot._getExtraPath("TS_01", "TS_01_reconstruct.json")) as f:
            settings = json.load(f)
        self.assertEqual(settings["exclude"], low)          # 1-based stack positions
        for p in low:
            self.assertIn("confidence", settings["excludedWhy"][str(p)])
        # the same views as the engine's own --min-confidence reads from its record
        stack = tis[0].getFileName()
        with open(os.path.splitext(stack)[0] + ".json") as f:
            record = sorted(json.load(f), key=lambda e: e["index"])
        self.assertEqual([i + 1 for i in low_confidence_views(record, threshold)], low)
        # all real tilts kept, and the tomogram was made from the rest
        self.assertTrue(all(_synthetic(ti) for ti in tis if ti.getIndex() in low))
        tomo = out.getFirstItem()
        with mrcfile.open(tomo.getFileName(), permissive=True, header_only=True) as m:
            self.assertEqual((int(m.header.nz), int(m.header.ny), int(m.header.nx)), (16, 48, 48))
        self.assertIn("confidence below", "\n".join(prot.summary()))
        # 0 (default) keeps every tilt
        prot0, _ = runOnTiltSeries(self, ProtCryoTigerReconstruct, protInt, OUT_TILTSERIES,
                                   OUT_TOMOGRAMS, threads=1, ctfCorrection=NO_CTF, thickness=16)
        with open(prot0._getExtraPath("TS_01", "TS_01_reconstruct.json")) as f:
            self.assertEqual(json.load(f)["exclude"], [])
        # out of range is refused
        bad = self.newProtocol(ProtCryoTigerReconstruct, ctfCorrection=NO_CTF, minConfidence=1.5)
        bad.inputSetOfTiltSeries.set(protInt)
        bad.inputSetOfTiltSeries.setExtended(OUT_TILTSERIES)
        self.assertTrue(any("0 to 1" in e for e in bad.validate()), bad.validate())

    # -------------------------------------------------------------- 2. --at
    def test_interpolate_at_given_angles_with_a_time_aware_model(self):
        model = makeFilmTestModel(self.getOutputPath("film_model_ta"), timeAware=True)
        at = [-27.0, -10.5, 14.0]
        prot, out = runOnTiltSeries(self, ProtCryoTigerInterpolate, self.protImport, IMPORT_OUTPUT,
                                    OUT_TILTSERIES, threads=1, method=1, modelSource=3,
                                    modelFolder=model, atAngles="-27, -10.5 ,14", useGpu=False)
        tis = tiltImages(out.getFirstItem())
        self.assertEqual(len(tis), len(ANGLES) + len(at))
        self.assertEqual(out.getAnglesCount(), len(ANGLES) + len(at))
        syn = [ti for ti in tis if _synthetic(ti)]
        np.testing.assert_allclose([ti.getTiltAngle() for ti in syn], at, atol=1e-3)
        real = [ti.getTiltAngle() for ti in tis if not _synthetic(ti)]
        np.testing.assert_allclose(real, ANGLES, atol=1e-3)
        with mrcfile.open(tis[0].getFileName(), permissive=True, header_only=True) as m:
            self.assertEqual(int(m.header.nz), len(ANGLES) + len(at))
        # -10.5 lies at t = 0.25 between -12 and -6: its accumulated dose is weighted 3:1
        accum = {round(ti.getTiltAngle(), 3): ti.getAcquisition().getAccumDose() for ti in tis}
        self.assertNotAlmostEqual(accum[-12.0], accum[-6.0])
        self.assertAlmostEqual(accum[-10.5], 0.75 * accum[-12.0] + 0.25 * accum[-6.0], places=4)
        self.assertIn("-10.5", "\n".join(prot.summary()))

    def test_at_angles_validation(self):
        midpoint = makeFilmTestModel(self.getOutputPath("film_model"))
        timeAware = makeFilmTestModel(self.getOutputPath("film_model_ta"), timeAware=True)

        def errorsFor(**kwargs):
            prot = self.newProtocol(ProtCryoTigerInterpolate, **kwargs)
            prot.inputSetOfTiltSeries.set(self.protImport)
            prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
            return "\n".join(prot.validate())

        self.assertIn("time-aware", errorsFor(method=1, modelSource=3, modelFolder=midpoint,
                                              atAngles="-27"))
        self.assertEqual(errorsFor(method=1, modelSource=3, modelFolder=timeAware, atAngles="-27"), "")
        self.assertEqual(errorsFor(atAngles="-27,3"), "")           # linear needs no model
        self.assertIn("mode add", errorsFor(atAngles="-27", mode=1))
        self.assertIn("outside the usable tilts", errorsFor(atAngles="-27, 31"))
        self.assertIn("degrees separated by commas", errorsFor(atAngles="-27, abc"))

    # -------------------------------------------------------------- 3. aligned size
    def test_aligned_size_frames_the_transformed_images(self):
        aligned = self.sim["data"]
        n = len(ANGLES)
        raw = np.roll(aligned, shift=(-2, 3), axis=(1, 2))       # content moved +3 px x, -2 px y
        folder = self.getOutputPath("raw")
        os.makedirs(folder, exist_ok=True)
        write_stack(os.path.join(folder, "TS_02.mrcs"), raw, PIXEL)
        with open(self.sim["tlt"]) as f, open(os.path.join(folder, "TS_02.tlt"), "w") as g:
            g.write(f.read())
        imp = importTiltSeries(self.__class__, folder, "TS_02.mrcs", pixelSize=PIXEL,
                               dosePerTilt=DOSE, aligned=False, label="with transforms")
        addAlignedCopy(self.__class__, imp, [[[1, 0, -3], [0, 1, 2], [0, 0, 1]]] * n)

        # interpolate: NX=40, NY=44 frame, centred on the aligned image
        prot, out = runOnTiltSeries(self, ProtCryoTigerInterpolate, imp, "alignedTiltSeries",
                                    OUT_TILTSERIES, threads=1, alignedSize="40,44")
        tis = tiltImages(out.getFirstItem())
        with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
            data = np.array(m.data)
        self.assertEqual(data.shape, (2 * n - 1, 44, 40))
        expected = aligned[:, 2:46, 4:44]                         # (48-44)/2 rows, (48-40)/2 columns
        np.testing.assert_allclose(data[::2, 4:-4, 4:-4], expected[:, 4:-4, 4:-4],
                                   rtol=1e-5, atol=1e-5)

        # reconstruct: the tomogram's y, x follow the frame
        protR, tomos = runOnTiltSeries(self, ProtCryoTigerReconstruct, imp, "alignedTiltSeries",
                                       OUT_TOMOGRAMS, threads=1, ctfCorrection=NO_CTF, thickness=8,
                                       alignedSize="40,44")
        with mrcfile.open(tomos.getFirstItem().getFileName(), permissive=True,
                          header_only=True) as m:
            self.assertEqual((int(m.header.nz), int(m.header.ny), int(m.header.nx)), (8, 44, 40))

        # a bad size is refused by validation, on both protocols
        for cls in (ProtCryoTigerInterpolate, ProtCryoTigerReconstruct):
            bad = self.newProtocol(cls, ctfCorrection=NO_CTF, alignedSize="40") \
                if cls is ProtCryoTigerReconstruct else self.newProtocol(cls, alignedSize="40")
            bad.inputSetOfTiltSeries.set(imp)
            bad.inputSetOfTiltSeries.setExtended("alignedTiltSeries")
            self.assertIn("NX,NY", "\n".join(bad.validate()))
