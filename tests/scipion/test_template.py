"""The demo workflow template is found by Scipion and loads into a project
(placeholders filled, protocols linked) - what scripts/demo.py runs."""
from pyworkflow.tests import BaseTest, setupTestProject

from common import simulateTiltSeries
from cryotiger_scipion.workflows import fillTemplate, getTemplate, loadTemplate

TEMPLATE = "cryotiger_interpolate_demo"


class TestDemoTemplate(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        simulateTiltSeries(cls.data, "TS_01", range(-30, 31, 10), shape=(8, 24, 24))

    def test_template_has_the_demo_placeholders(self):
        t = getTemplate(TEMPLATE)
        t.replaceEnvVariables()
        t.parseContent()
        aliases = {p.getAlias() for p in t.getParams().values()}
        self.assertEqual(aliases, {"folder", "pattern", "pixelSize", "dose", "perGap", "mode"})
        with self.assertRaises(ValueError):
            fillTemplate(TEMPLATE, {"nonsense": 1})

    def test_template_loads_into_a_project(self):
        protImport, protInterp = loadTemplate(self.proj, TEMPLATE, {
            "folder": self.data, "pattern": "TS_*.mrcs", "pixelSize": 7.5, "dose": 1.5,
            "perGap": 3, "mode": 1})
        self.assertEqual(protImport.getClassName(), "ProtImportTs")
        self.assertEqual(protInterp.getClassName(), "ProtCryoTigerInterpolate")
        self.assertEqual(protImport.filesPath.get(), self.data)
        self.assertAlmostEqual(protImport.samplingRate.get(), 7.5)
        self.assertAlmostEqual(protImport.dosePerFrame.get(), 1.5)
        self.assertTrue(protImport.interpolated.get())
        self.assertEqual(protImport.validate(), [])
        self.assertEqual(protInterp.tiltsPerGap.get(), 3)
        self.assertEqual(protInterp.mode.get(), 1)
        self.assertEqual(protInterp.method.get(), 0)
        pointer = protInterp.inputSetOfTiltSeries
        self.assertEqual(pointer.getObjValue().getObjId(), protImport.getObjId())
        self.assertEqual(pointer.getExtended(), "outputTiltSeries")
