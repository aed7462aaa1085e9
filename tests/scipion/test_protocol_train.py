"""ProtImportTs -> ProtCryoTigerTrain -> ProtCryoTigerInterpolate (FILM with the
trained model) in a real headless project: tiny (small config, few steps,
32-pixel patches, CPU)."""
import json
import os

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import IMPORT_OUTPUT, excludeViews, importTiltSeries, simulateTiltSeries, tiltImages
from cryotiger_scipion.constants import ATTR_SYNTHETIC, OUT_MODEL, OUT_TILTSERIES
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate, ProtCryoTigerTrain

ANGLES = list(range(-30, 31, 6))          # 11 tilts
PIXEL = 10.0


class TestCryoTigerTrain(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        data = cls.getOutputPath("data")
        for k in (1, 2):
            simulateTiltSeries(data, "TS_%02d" % k, ANGLES, pixelSize=PIXEL, seed=k)
        cls.protImport = importTiltSeries(cls, data, "TS_*.mrcs", pixelSize=PIXEL, aligned=True)
        excludeViews(getattr(cls.protImport, IMPORT_OUTPUT), "TS_01", [4])

    def test_train_then_interpolate_with_the_model(self):
        prot = self.newProtocol(ProtCryoTigerTrain, config=0, steps=4, spacing="1,2", patchSize=32,
                                batchSize=2, valEvery=2, checkpointEvery=2, useGpu=False)
        prot.inputSetsOfTiltSeries.append(getattr(self.protImport, IMPORT_OUTPUT))
        self.launchProtocol(prot)
        model = getattr(prot, OUT_MODEL, None)
        self.assertIsNotNone(model, "no output model")
        self.assertTrue(model.exists(), model.getAbsPath())
        info = json.load(open(os.path.join(model.getAbsPath(), "cryotiger_train.json")))
        self.assertEqual(info["step"], 4)
        db = info["database"]
        self.assertEqual(db["spacings"], [1, 2])
        self.assertEqual(len(db["series"]), 2)
        # The excluded view 4 of TS_01 is skipped: 10 usable views -> 8 + 6 triplets.
        ts1 = [s for s in db["series"] if s["name"].startswith("TS_01")][0]
        self.assertEqual(ts1["triplets"], 8 + 6)
        self.assertEqual(model.getTrainingPairs(), 14 + 9 + 7)
        self.assertIn("trained 4 steps", "\n".join(prot.summary()))
        # the model viewer (issue 11 item 11): curves, configuration, parameter count,
        # opened as Analyze Results does, in a real Tk window
        self.assertEqual(len(info["losses"]), 4)
        self.assertGreater(info["parameters"], 1000)
        from test_protocol_evaluation import _checkViewer
        from cryotiger_scipion.viewers.viewer_model import CryoTigerModelViewer, writeModelFigures
        _checkViewer(self, CryoTigerModelViewer, prot, 2)
        table, png = writeModelFigures(model, self.getOutputPath("model_figs"))
        text = open(table).read()
        self.assertIn("parameters: {:,}".format(info["parameters"]), text)
        self.assertIn("validation: PSNR", text)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        interp = self.newProtocol(ProtCryoTigerInterpolate, method=1, modelSource=2, tiltsPerGap=1,
                                  useGpu=False)
        interp.inputSetOfTiltSeries.set(self.protImport)
        interp.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        interp.trainedModel.set(prot)
        interp.trainedModel.setExtended(OUT_MODEL)
        self.launchProtocol(interp)
        out = getattr(interp, OUT_TILTSERIES)
        ts = out.getTiltSeriesFromTsId("TS_02")
        tis = tiltImages(ts)
        self.assertEqual(len(tis), 2 * len(ANGLES) - 1)
        self.assertEqual(sum(bool(getattr(ti, ATTR_SYNTHETIC).get()) for ti in tis), len(ANGLES) - 1)
        with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
            self.assertTrue(np.all(np.isfinite(m.data)))

    def test_validation(self):
        prot = self.newProtocol(ProtCryoTigerTrain, config=1, patchSize=100, spacing="0")
        prot.inputSetsOfTiltSeries.append(getattr(self.protImport, IMPORT_OUTPUT))
        errors = "\n".join(prot.validate())
        self.assertIn("multiple of 64", errors)
        self.assertIn("spacing", errors)
        prot = self.newProtocol(ProtCryoTigerTrain, initSource=4, initFolder="/nonexistent/model")
        prot.inputSetsOfTiltSeries.append(getattr(self.protImport, IMPORT_OUTPUT))
        self.assertIn("not found", "\n".join(prot.validate()))
