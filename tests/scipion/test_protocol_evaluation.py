"""Evaluation protocols in a real headless project (issue 6): hold-out,
tomogram contrast, picking metrics and segmentation metrics, with known
answers, and their figures written headless."""
import os
import subprocess

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import (IMPORT_OUTPUT, importTiltSeries, launch, runOnTiltSeries,
                    simulateTiltSeries)
from cryotiger_scipion.engine import metrics as M
from cryotiger_scipion.engine.formats.mrc import write_volume
from cryotiger_scipion.protocols import (ProtCryoTigerCompareTomograms, ProtCryoTigerHoldout,
                                         ProtCryoTigerPickingMetrics,
                                         ProtCryoTigerSegmentationMetrics)
from cryotiger_scipion.viewers.viewer_evaluation import (writeContrastFigures, writePickingFigures,
                                                         writeSegmentationFigures)
from cryotiger_scipion.viewers.viewer_holdout import writeHoldoutFigures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("CRYOTIGER_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
MT_COORDS = os.path.join(SHARED, "cylindra_mt", "14pf_MT_monomer_coords_zyx_px.txt")
ANGLES = list(range(-30, 31, 6))
PIXEL = 10.0


def _isPng(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _checkViewer(test, viewerClass, prot, nAxes):
    """The viewer as Analyze Results opens it: in a real Tk window (Xvfb when
    there is no display), its views shown; a text table and matplotlib plots.
    A screenshot goes to $CRYOTIGER_SCREENSHOTS/<viewer>.png when that is set."""
    from pyworkflow.gui import Window
    from pyworkflow.gui.plotter import Plotter
    from pyworkflow.viewer import TextView
    from common import ensureDisplay, showViewsInTk
    ensureDisplay()
    parent = Window("Scipion project (test)")
    try:
        viewer = viewerClass(project=test.proj, protocol=prot, parent=parent)
        shots = os.environ.get("CRYOTIGER_SCREENSHOTS")
        views = showViewsInTk(test, viewer, prot, shots and os.path.join(
            shots, "viewer_%s.png" % viewerClass.__name__))
    finally:
        parent.root.destroy()
    test.assertIsInstance(views[0], TextView)
    test.assertTrue(os.path.exists(views[0].getFileList()[0]))
    plots = [v for v in views if isinstance(v, Plotter)]
    test.assertTrue(plots)
    test.assertEqual(len(plots[0].figure.axes), nAxes)


def _importTomograms(owner, folder, pattern, pixel, label=None):
    from tomo.protocols import ProtImportTomograms
    prot = owner.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern=pattern,
                             samplingRate=pixel)
    if label:
        prot.setObjLabel(label)
    launch(owner, prot)
    return prot, prot.Tomograms


class TestCryoTigerHoldout(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        cls.sims = {tsId: simulateTiltSeries(cls.data, tsId, ANGLES, pixelSize=PIXEL, seed=k)
                    for k, tsId in enumerate(("TS_01", "TS_02"), 1)}
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL, aligned=True)

    def _holdout(self, **kwargs):
        return runOnTiltSeries(self, ProtCryoTigerHoldout, self.protImport, IMPORT_OUTPUT,
                               **kwargs)[0]

    def test_linear_numbers_summary_and_figures(self):
        prot = self._holdout(useLinear=True)
        r = prot.getSummaryReport()
        self.assertEqual(sorted(r["series"]), ["TS_01", "TS_02"])
        lin = r["methods"]["linear"]
        self.assertEqual(len(lin["psnr"]), 10)                     # 5 held-out tilts per series
        # The numbers are those of the neighbours' mean against each real tilt.
        expected = {"psnr": [], "rmse": [], "ssim": []}
        for tsId in r["series"]:
            data = self.sims[tsId]["data"]
            for i in range(1, len(ANGLES) - 1, 2):
                syn = 0.5 * data[i - 1] + 0.5 * data[i + 1]
                rng = float(np.ptp(data[i]))
                expected["psnr"].append(M.psnr(syn, data[i], rng))
                expected["rmse"].append(M.rmse(syn, data[i]))
                expected["ssim"].append(M.ssim(syn, data[i], rng))
        for k in expected:
            np.testing.assert_allclose(lin[k], expected[k], rtol=1e-5)
            self.assertAlmostEqual(lin["median_%s" % k], float(np.median(expected[k])), places=5)
        self.assertTrue(os.path.exists(prot.getReportFile("TS_01")))
        self.assertTrue(os.path.exists(os.path.join(prot._getExtraPath("TS_01"), "plots",
                                                    "holdout_boxplots.png")))
        self.assertTrue(any("median PSNR" in line for line in prot.summary()))
        from cryotiger_scipion.viewers.viewer_holdout import CryoTigerHoldoutViewer
        _checkViewer(self, CryoTigerHoldoutViewer, prot, 3)
        paths = writeHoldoutFigures(prot, self.getOutputPath("holdout_figs"))
        self.assertIn("linear", open(paths[0]).read())
        for p in paths[1:]:
            self.assertTrue(_isPng(p), p)

    def test_validation_needs_a_method_and_existing_models(self):
        prot = self.newProtocol(ProtCryoTigerHoldout, useLinear=False)
        prot.inputSetOfTiltSeries.set(self.protImport)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        self.assertTrue(any("at least one method" in e for e in prot.validate()))
        prot.modelFolders.set(self.getOutputPath("no_such_model"))
        self.assertTrue(any("no FILM SavedModel" in e for e in prot.validate()))
        # defocus difference: the acquisition's microscope settings go to the engine
        prot.defocusDiff.set(True)
        prot.defocusRange.set("8000 60000")
        args = prot._defocusArgs(10.0)
        for part in ("--defocus ", "--pixel-size 10.0", "--defocus-min 8000.0",
                     "--defocus-max 60000.0", "--voltage 300.0", "--cs 2.7"):
            self.assertIn(part, args)
        prot.defocusRange.set("60000 8000")
        self.assertTrue(any("Defocus search range" in e for e in prot.validate()))

    def test_linear_and_film_side_by_side(self):
        model = self.getOutputPath("film_small")
        engine = os.path.join(ROOT, ".venv-engine", "bin", "cryotiger")
        if not os.path.exists(engine):
            self.skipTest("managed environment (.venv-engine) not built")
        if not os.path.exists(os.path.join(ROOT, "cryotiger_scipion", "engine", "film", "inference.py")):
            self.skipTest("FILM interpolator (engine/film/inference.py) not in this checkout")
        r = subprocess.run([engine, "model", "init", "--config", "small", "--output", model],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            self.skipTest("'cryotiger model init' failed: %s" % r.stderr.strip()[-200:])
        prot = self._holdout(useLinear=True, modelFolders=model, useGpu=False)
        r = prot.getSummaryReport()
        self.assertEqual(list(r["methods"]), ["linear", "film_small"])
        self.assertEqual(len(r["methods"]["film_small"]["ssim"]), 10)
        tests = [t for t in r["paired_tests"] if t["metric"] == "psnr"]
        self.assertEqual((tests[0]["a"], tests[0]["b"], tests[0]["n"]), ("linear", "film_small", 10))
        self.assertTrue(_isPng(writeHoldoutFigures(prot)[1]))


class TestCryoTigerVolumeMetrics(BaseTest):
    """Contrast and segmentation metrics on tomograms with known answers."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        rng = np.random.default_rng(0)
        cls.vols = {}
        for sub, factor in (("plain", 1.0), ("double", 2.0)):
            folder = cls.getOutputPath(sub)
            os.makedirs(folder, exist_ok=True)
            for k in range(3):
                vol = rng.normal(size=(12, 32, 32)).astype(np.float32) if factor == 1.0 \
                    else 2.0 * cls.vols[("plain", k)]
                cls.vols[(sub, k)] = vol
                write_volume(os.path.join(folder, "tomo_%d.mrc" % k), vol, PIXEL)
        # masks: a 10x10x10 cube and the same cube shifted by 3 voxels along x
        for sub, shift in (("maskA", 0), ("maskB", 3)):
            folder = cls.getOutputPath(sub)
            os.makedirs(folder, exist_ok=True)
            m = np.zeros((12, 32, 32), np.float32)
            m[1:11, 10:20, 10 + shift:20 + shift] = 1
            write_volume(os.path.join(folder, "tomo_0.mrc"), m, PIXEL)
        cls.protPlain, cls.plain = _importTomograms(cls, cls.getOutputPath("plain"), "*.mrc", PIXEL,
                                                    "plain")
        cls.protDouble, cls.double = _importTomograms(cls, cls.getOutputPath("double"), "*.mrc",
                                                      PIXEL, "double")

    def test_contrast_known_ratio_and_paired_tests(self):
        prot = self.newProtocol(ProtCryoTigerCompareTomograms, slabThickness=4)
        prot.inputTomograms.set([self.plain, self.double])
        self.launchProtocol(prot)
        r = prot.getResults()
        a, b = r["sets"]
        self.assertEqual(len(r["tsIds"]), 3)
        for k, key in enumerate(r["tsIds"]):
            idx = int(key.split("_")[-1])
            expected = M.tomogram_contrast(self.vols[("plain", idx)], 4)
            self.assertAlmostEqual(r["tomograms"][key][a]["std"], expected["std"], places=6)
            self.assertAlmostEqual(r["tomograms"][key][a]["gradient"], expected["gradient"], places=5)
            # doubling the intensities doubles both contrasts
            self.assertAlmostEqual(r["tomograms"][key][b]["std"] / expected["std"], 2.0, places=5)
            self.assertAlmostEqual(r["tomograms"][key][b]["gradient"] / expected["gradient"], 2.0,
                                   places=5)
        t = [x for x in r["paired_tests"] if x["metric"] == "std"][0]
        self.assertEqual(t["n"], 3)
        self.assertLess(t["mean_diff"], 0)
        from cryotiger_scipion.viewers.viewer_evaluation import CryoTigerCompareTomogramsViewer
        _checkViewer(self, CryoTigerCompareTomogramsViewer, prot, 2)
        paths = writeContrastFigures(prot, self.getOutputPath("contrast_figs"))
        self.assertTrue(_isPng(paths[1]))
        self.assertIn("Paired tests", open(paths[0]).read())

    def test_segmentation_known_overlap(self):
        from tomo.protocols import ProtImportTomomasks
        protA = self.newProtocol(ProtImportTomomasks, filesPath=self.getOutputPath("maskA"),
                                 filesPattern="*.mrc")
        protA.inputTomos.set(self.protPlain)
        protA.inputTomos.setExtended("Tomograms")
        launch(self, protA)
        _, masksB = _importTomograms(self, self.getOutputPath("maskB"), "*.mrc", PIXEL, "mask B")
        prot = self.newProtocol(ProtCryoTigerSegmentationMetrics)
        prot.inputMasksA.set(protA)
        prot.inputMasksA.setExtended("tomomasks")
        prot.inputMasksB.set(masksB)
        self.launchProtocol(prot)
        s = prot.getResults()["per_tomogram"]["tomo_0"]
        # cubes of 1000 voxels overlapping in 10x10x7 = 700
        self.assertAlmostEqual(s["dice"], 0.7)
        self.assertAlmostEqual(s["jaccard"], 700 / 1300)
        self.assertAlmostEqual(s["hausdorff_px"], 3.0)
        self.assertAlmostEqual(s["hausdorff_A"], 30.0)
        from cryotiger_scipion.viewers.viewer_evaluation import CryoTigerSegmentationMetricsViewer
        _checkViewer(self, CryoTigerSegmentationMetricsViewer, prot, 1)
        paths = writeSegmentationFigures(prot, self.getOutputPath("seg_figs"))
        self.assertTrue(_isPng(paths[1]))


class TestCryoTigerPickingMetrics(BaseTest):
    """Real microtubule monomer positions (cylindra), shifted and mixed with
    false picks, against the true positions."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MT_COORDS):
            raise __import__("unittest").SkipTest("shared data folder %s is absent" % SHARED)
        setupTestProject(cls)
        cls.pixel = 10.52
        zyx = np.loadtxt(MT_COORDS, delimiter=",")
        cls.true_xyz = zyx[:, ::-1]
        rng = np.random.default_rng(3)
        v = rng.normal(size=cls.true_xyz.shape)
        v *= 1.5 / np.linalg.norm(v, axis=1, keepdims=True)
        # 300 true positions moved by 1.5 px, then 50 false picks far from any monomer
        picks = np.concatenate([cls.true_xyz[:300] + v[:300],
                                np.column_stack([np.full(50, 5.0), np.linspace(5, 130, 50),
                                                 np.full(50, 40.0)])])
        cls.scores = np.concatenate([np.linspace(1.0, 0.6, 300), np.linspace(0.5, 0.1, 50)])
        for sub, pts in (("tomo", None), ("picks", picks), ("truth", cls.true_xyz)):
            folder = cls.getOutputPath(sub)
            os.makedirs(folder, exist_ok=True)
            if pts is None:
                write_volume(os.path.join(folder, "MT14pf.mrc"), np.zeros((44, 136, 84), np.float32),
                             cls.pixel)
            else:
                np.savetxt(os.path.join(folder, "MT14pf.txt"), pts, fmt="%.4f")
        cls.protTomo, cls.tomos = _importTomograms(cls, cls.getOutputPath("tomo"), "*.mrc", cls.pixel)
        cls.picks = cls._importCoords(cls.getOutputPath("picks"), scores=cls.scores)
        cls.truth = cls._importCoords(cls.getOutputPath("truth"))

    @classmethod
    def _importCoords(cls, folder, scores=None):
        from tomo.protocols import ProtImportCoordinates3D
        prot = cls.newProtocol(ProtImportCoordinates3D, filesPath=folder, filesPattern="*.txt",
                               boxSize=8)
        prot.importTomograms.set(cls.protTomo)
        prot.importTomograms.setExtended("Tomograms")
        launch(cls, prot)
        coords = prot.outputCoordinates
        if scores is not None:       # as a picker would store them
            items = [c.clone() for c in coords.iterItems(orderBy="id")]
            for c, s in zip(items, scores):
                c.setScore(float(s))
                coords.update(c)
            coords.write()
            coords.close()
        return prot

    def _run(self, **kwargs):
        prot = self.newProtocol(ProtCryoTigerPickingMetrics, tolerance=2.0 * self.pixel, **kwargs)
        prot.inputCoordinates.set(self.picks)
        prot.inputCoordinates.setExtended("outputCoordinates")
        return prot

    def _check(self, r):
        a = r["all"]
        self.assertTrue(r["scores"])
        self.assertEqual((a["n_pred"], a["n_true"]), (350, 378))
        self.assertEqual(a["all"]["tp"], 300)
        self.assertAlmostEqual(a["all"]["precision"], 300 / 350)
        self.assertAlmostEqual(a["all"]["recall"], 300 / 378)
        # best F1 when the score threshold drops exactly the false picks
        self.assertAlmostEqual(a["best_f1"], 2 * (300 / 378) / (1 + 300 / 378))
        self.assertAlmostEqual(a["pr_auc"], 300 / 378)

    def test_against_true_coordinates(self):
        prot = self._run(gtSource=0)
        prot.gtCoordinates.set(self.truth)
        prot.gtCoordinates.setExtended("outputCoordinates")
        self.launchProtocol(prot)
        self._check(prot.getResults())
        from cryotiger_scipion.viewers.viewer_evaluation import CryoTigerPickingMetricsViewer
        _checkViewer(self, CryoTigerPickingMetricsViewer, prot, 1)
        paths = writePickingFigures(prot, self.getOutputPath("pick_figs"))
        self.assertEqual(len(paths), 3)
        for p in paths[1:]:
            self.assertTrue(_isPng(p))

    def test_against_text_file_zyx_and_tolerance(self):
        prot = self._run(gtSource=1, gtFile=MT_COORDS, gtColumns=1)
        self.launchProtocol(prot)
        self._check(prot.getResults())
        tight = self._run(gtSource=1, gtFile=MT_COORDS, gtColumns=1)
        tight.tolerance.set(1.0 * self.pixel)      # shifts are 1.5 px: nothing matches
        self.launchProtocol(tight)
        self.assertEqual(tight.getResults()["all"]["all"]["tp"], 0)

    def test_coordinate_origin_is_explicit(self):
        """Corner and centre conventions differ by the tomogram's half size
        (84 x 136 x 44 px); a coordinate without its tomogram is an error in
        the corner convention, never silently read as centre-based; both sets
        in the centre convention give the same matching (issue 10 item 8)."""
        from tomo.constants import SCIPION
        from tomo.objects import Coordinate3D, SetOfCoordinates3D
        from cryotiger_scipion.protocols.protocol_picking_metrics import coordinatesByTomo
        truth = self.truth.outputCoordinates
        corner = coordinatesByTomo(truth, None, origin="corner")["MT14pf"]["pos"]
        centre = coordinatesByTomo(truth, None, origin="centre")["MT14pf"]["pos"]
        self.assertEqual(len(corner), 378)
        self.assertTrue(np.allclose(corner - centre, np.array([42.0, 68.0, 22.0]) * self.pixel))
        self.assertTrue(np.allclose(corner / self.pixel, self.true_xyz, atol=1e-3))
        # a coordinate that lost its tomogram
        orphan = SetOfCoordinates3D.create(self.getOutputPath())
        orphan.setSamplingRate(self.pixel)
        orphan.setPrecedents(self.tomos)              # which do not hold its tomogram
        c = Coordinate3D()
        c.setPosition(1.0, 2.0, 3.0, SCIPION)
        c.setTomoId("MT_missing")
        orphan.append(c)
        orphan.write()
        with self.assertRaisesRegex(ValueError, "bottom-left corner.*tomogram centre"):
            coordinatesByTomo(orphan, None, origin="corner")
        pos = coordinatesByTomo(orphan, None, origin="centre")["MT_missing"]["pos"]
        self.assertTrue(np.allclose(pos, np.array([[1.0, 2.0, 3.0]]) * self.pixel))
        prot = self._run(gtSource=0, origin=1)
        prot.gtCoordinates.set(self.truth)
        prot.gtCoordinates.setExtended("outputCoordinates")
        self.launchProtocol(prot)
        self.assertEqual(prot.getResults()["origin"], "centre")
        self._check(prot.getResults())
