"""ProtImportTs -> ProtCryoTigerInterpolate in a real headless project.

Checks what the output tilt series are (counts, angles, synthetic flags on
every image, sources, acquisition orders, doses, excluded views, headers,
acquisition range/step) and that the inputs are left untouched; and that
validation refuses unaligned input and FILM without a model.
"""
import os

import mrcfile
import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from common import (IMPORT_OUTPUT, doseSymmetricOrder, excludeViews, fileChecksum,
                    importTiltSeries, makeFilmTestModel, addAlignedCopy, simulateTiltSeries,
                    runOnTiltSeries, tiltImages)
from cryotiger_scipion.constants import ATTR_SOURCES, ATTR_SYNTHETIC, OUT_TILTSERIES
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.protocols import ProtCryoTigerInterpolate

ANGLES = list(range(-30, 31, 6))          # 11 tilts, 6 degree steps
PIXEL = 10.0
DOSE = 2.0


def _synthetic(ti):
    return bool(getattr(ti, ATTR_SYNTHETIC).get())


class TestCryoTigerInterpolate(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = cls.getOutputPath("data")
        cls.sims = {
            # dose-symmetric acquisition (Hagen) read from the .tlt's 3rd column
            "TS_01": simulateTiltSeries(cls.data, "TS_01", ANGLES, pixelSize=PIXEL, dosePerTilt=DOSE,
                                        orders=doseSymmetricOrder(ANGLES), seed=1),
            "TS_02": simulateTiltSeries(cls.data, "TS_02", ANGLES, pixelSize=PIXEL, dosePerTilt=DOSE,
                                        seed=2),
        }
        cls.checksums = {f: fileChecksum(f) for s in cls.sims.values() for f in (s["stack"], s["tlt"])}
        cls.protImport = importTiltSeries(cls, cls.data, "TS_*.mrcs", pixelSize=PIXEL,
                                          dosePerTilt=DOSE, aligned=True, label="aligned")
        cls.protExcl = importTiltSeries(cls, cls.data, "TS_01.mrcs", pixelSize=PIXEL,
                                        dosePerTilt=DOSE, aligned=True, label="excluded view 4")
        excludeViews(getattr(cls.protExcl, IMPORT_OUTPUT), "TS_01", [4])   # -12 degrees

    # -------------------------------------------------------------- helpers
    def _interpolate(self, protImport, inputName=IMPORT_OUTPUT, threads=1, **kwargs):
        """Run the protocol; threads=2 runs the per-series steps in parallel
        threads (one worker), 1 runs them serially (no polling delays: faster)."""
        return runOnTiltSeries(self, ProtCryoTigerInterpolate, protImport, inputName,
                               OUT_TILTSERIES, threads=threads, **kwargs)

    def _checkCommon(self, inSet, outSet, nOut):
        """What every output must satisfy."""
        self.assertEqual(outSet.getSize(), inSet.getSize())
        self.assertEqual(outSet.getAnglesCount(), nOut)
        self.assertFalse(outSet.isHeterogeneousSet())
        self.assertTrue(outSet.interpolated())
        self.assertFalse(outSet.hasAlignment())
        self.assertAlmostEqual(outSet.getSamplingRate(), PIXEL)
        for ts in outSet.iterItems():
            tis = tiltImages(ts)
            self.assertEqual(len(tis), nOut)
            self.assertTrue(ts.interpolated())
            self.assertEqual(ts.getAnglesCount(), nOut)
            # one new .mrcs per series, pixel size in its header, images in stack order
            files = {ti.getFileName() for ti in tis}
            self.assertEqual(len(files), 1)
            stack = files.pop()
            self.assertTrue(stack.endswith(".mrcs"))
            self.assertNotIn(self.data, os.path.abspath(stack))
            with mrcfile.open(stack, permissive=True, header_only=True) as m:
                self.assertEqual(int(m.header.nz), nOut)
                self.assertAlmostEqual(float(m.voxel_size.x), PIXEL, places=3)
            self.assertEqual([ti.getIndex() for ti in tis], list(range(1, nOut + 1)))
            angles = [ti.getTiltAngle() for ti in tis]
            self.assertEqual(angles, sorted(angles))
            # the flag and the sources on EVERY image
            for ti in tis:
                self.assertTrue(hasattr(ti, ATTR_SYNTHETIC), "image %d has no synthetic flag" % ti.getIndex())
                self.assertTrue(getattr(ti, ATTR_SOURCES).get())
                self.assertAlmostEqual(ti.getSamplingRate(), PIXEL)
                self.assertFalse(ti.hasTransform())
            # acquisition orders unique, synthetic ones after all real ones
            orders = [ti.getAcquisitionOrder() for ti in tis]
            self.assertEqual(len(set(orders)), len(orders))
            real = [ti.getAcquisitionOrder() for ti in tis if not _synthetic(ti)]
            syn = [ti.getAcquisitionOrder() for ti in tis if _synthetic(ti)]
            self.assertGreater(min(syn), max(real))
            acq = ts.getAcquisition()
            self.assertAlmostEqual(acq.getAngleMin(), angles[0])
            self.assertAlmostEqual(acq.getAngleMax(), angles[-1])
        # inputs untouched
        for f, digest in self.checksums.items():
            self.assertEqual(fileChecksum(f), digest, "%s was modified" % f)

    # -------------------------------------------------------------- tests
    def test_add_one_per_gap(self):
        inSet = getattr(self.protImport, IMPORT_OUTPUT)
        prot, out = self._interpolate(self.protImport, threads=2, tiltsPerGap=1, mode=0)
        n = len(ANGLES)
        self._checkCommon(inSet, out, 2 * n - 1)
        for ts in out.iterItems():
            tsId = ts.getTsId()
            tis = tiltImages(ts)
            np.testing.assert_allclose([ti.getTiltAngle() for ti in tis], np.arange(-30, 30.1, 3))
            self.assertEqual([_synthetic(ti) for ti in tis], [i % 2 == 1 for i in range(2 * n - 1)])
            self.assertAlmostEqual(ts.getAcquisition().getStep(), 3.0)
            # real tilts keep their acquisition order (dose-symmetric for TS_01) and pixels
            sim = self.sims[tsId]
            realOrders = [ti.getAcquisitionOrder() for ti in tis if not _synthetic(ti)]
            self.assertEqual(realOrders, list(sim["orders"]))
            with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
                data = np.array(m.data)
            np.testing.assert_array_equal(data[::2], sim["data"])
            # a synthetic tilt: mean of its neighbours, sources = their positions, dose by weights
            mid = tis[5]                              # -15 degrees, between inputs 3 and 4
            self.assertTrue(_synthetic(mid))
            self.assertEqual(getattr(mid, ATTR_SOURCES).get(), "3,4")
            np.testing.assert_allclose(data[5], 0.5 * (sim["data"][2] + sim["data"][3]), rtol=1e-5, atol=1e-6)
            a, b = tis[4].getAcquisition(), tis[6].getAcquisition()
            prior = 0.5 * (a.getAccumDose() - a.getDosePerFrame()) + 0.5 * (b.getAccumDose() - b.getDosePerFrame())
            self.assertAlmostEqual(mid.getAcquisition().getDosePerFrame(), DOSE)
            self.assertAlmostEqual(mid.getAcquisition().getAccumDose(), prior + DOSE)
        # the input set is unchanged
        self.assertEqual(inSet.getAnglesCount(), n)
        self.assertIn("tilts out", "\n".join(prot.summary()))

    def test_restore_three_per_gap(self):
        inSet = getattr(self.protImport, IMPORT_OUTPUT)
        prot, out = self._interpolate(self.protImport, tiltsPerGap=3, mode=1)
        # kept: -30, -6, 18 (one in 4); restored: -24 -18 -12, 0 6 12; 24 and 30 cannot be
        self._checkCommon(inSet, out, 9)
        for ts in out.iterItems():
            tis = tiltImages(ts)
            np.testing.assert_allclose([ti.getTiltAngle() for ti in tis], np.arange(-30, 18.1, 6))
            synthetic = [ti.getTiltAngle() for ti in tis if _synthetic(ti)]
            np.testing.assert_allclose(synthetic, [-24, -18, -12, 0, 6, 12])
            self.assertEqual(getattr(tis[1], ATTR_SOURCES).get(), "1,5")
            self.assertAlmostEqual(ts.getAcquisition().getStep(), 6.0)

    def test_excluded_view_stays_disabled_and_is_not_an_anchor(self):
        inSet = getattr(self.protExcl, IMPORT_OUTPUT)
        ts0 = inSet.getFirstItem()
        self.assertEqual([ti.isEnabled() for ti in tiltImages(ts0)].count(False), 1)
        prot, out = self._interpolate(self.protExcl, tiltsPerGap=1, mode=0)
        n = len(ANGLES)
        self._checkCommon(inSet, out, n + (n - 2))       # all real + one per gap of 10 anchors
        tis = tiltImages(out.getFirstItem())
        disabled = [ti for ti in tis if not ti.isEnabled()]
        self.assertEqual(len(disabled), 1)
        self.assertAlmostEqual(disabled[0].getTiltAngle(), -12.0)
        self.assertFalse(_synthetic(disabled[0]))
        self.assertTrue(all(ti.isEnabled() for ti in tis if _synthetic(ti)))
        # no tilt made from the excluded view: the gap -18 .. -6 gets one at -12
        sources = [getattr(ti, ATTR_SOURCES).get() for ti in tis if _synthetic(ti)]
        self.assertFalse(any("4" in s.split(",") for s in sources), sources)
        self.assertIn("3,5", sources)

    def test_validation_refuses_bad_input(self):
        unaligned = importTiltSeries(self.__class__, self.data, "TS_02.mrcs", pixelSize=PIXEL,
                                     dosePerTilt=DOSE, aligned=False, label="not aligned")
        prot = self.newProtocol(ProtCryoTigerInterpolate)
        prot.inputSetOfTiltSeries.set(unaligned)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        errors = "\n".join(prot.validate())
        self.assertIn("not aligned", errors)

        def errorsFor(**kw):
            p = self.newProtocol(ProtCryoTigerInterpolate, **kw)
            p.inputSetOfTiltSeries.set(self.protImport)
            p.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
            return "\n".join(p.validate())

        self.assertEqual(errorsFor(tiltsPerGap=1), "")
        # FILM without a model
        self.assertIn("FILM needs a model", errorsFor(method=1, modelSource=3))
        self.assertIn("FILM needs a model", errorsFor(method=1, modelSource=2))
        # a published model that is not installed: names the folder and where it is published
        msg = errorsFor(method=1, modelSource=0)
        self.assertIn("cryoTIGER_model", msg)
        self.assertIn("CRYOTIGER_MODELS", msg)
        self.assertIn("doi", msg)
        # FILM makes 1, 3 or 7 per gap
        self.assertIn("1, 3 or 7", errorsFor(method=1, modelSource=3, tiltsPerGap=2))
        # restore with K per gap needs K + 2 usable tilts; we have 11
        self.assertEqual(errorsFor(tiltsPerGap=9, mode=1), "")
        self.assertIn("needs at least 12", errorsFor(tiltsPerGap=10, mode=1))

    def test_transforms_are_applied(self):
        """A series with per-image transforms (not resampled): the engine applies
        them (IMOD .xf convention) and the output is aligned, without transforms."""
        aligned = self.sims["TS_02"]["data"]
        n = len(ANGLES)
        # raw content moved by +3 px in x (columns) and -2 px in y (rows) ...
        raw = np.roll(aligned, shift=(-2, 3), axis=(1, 2))
        folder = self.getOutputPath("raw")
        os.makedirs(folder, exist_ok=True)
        write_stack(os.path.join(folder, "TS_03.mrcs"), raw, PIXEL)
        with open(self.sims["TS_02"]["tlt"]) as f, open(os.path.join(folder, "TS_03.tlt"), "w") as g:
            g.write(f.read())
        before = fileChecksum(os.path.join(folder, "TS_03.mrcs"))
        imp = importTiltSeries(self.__class__, folder, "TS_03.mrcs", pixelSize=PIXEL,
                               dosePerTilt=DOSE, aligned=False, label="with transforms")
        # ... so the alignment moves it back: x' = x + d with d = (-3, +2)
        inSet = addAlignedCopy(self.__class__, imp, [[[1, 0, -3], [0, 1, 2], [0, 0, 1]]] * n)
        self.assertTrue(inSet.hasAlignment())
        self.assertFalse(inSet.interpolated())
        prot, out = self._interpolate(imp, tiltsPerGap=1, inputName="alignedTiltSeries")
        self._checkCommon(inSet, out, 2 * n - 1)
        tis = tiltImages(out.getFirstItem())
        with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
            data = np.array(m.data)
        np.testing.assert_allclose(data[::2, 4:-4, 4:-4], aligned[:, 4:-4, 4:-4], rtol=1e-5, atol=1e-5)
        self.assertEqual(fileChecksum(os.path.join(folder, "TS_03.mrcs")), before)

    def test_film_with_a_model_folder(self):
        """FILM through the protocol (a tiny random model, CPU): the options reach
        the engine and the output is complete and flagged."""
        model = makeFilmTestModel(self.getOutputPath("film_model"))
        inSet = getattr(self.protExcl, IMPORT_OUTPUT)
        prot, out = self._interpolate(self.protExcl, method=1, modelSource=3, modelFolder=model,
                                      tiltsPerGap=1, useGpu=False)
        n = len(ANGLES)
        self._checkCommon(inSet, out, 2 * n - 2)
        tis = tiltImages(out.getFirstItem())
        self.assertEqual(sum(_synthetic(ti) for ti in tis), n - 2)
        with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
            self.assertTrue(np.all(np.isfinite(m.data)))
        self.assertIn("FILM", "\n".join(prot.summary()))
        # Confidence (issue 13): per tilt (real 1.0, synthetic in (0, 1]) and the map stack.
        ts = out.getFirstItem()
        for ti in tis:
            c = ti._cryotigerConfidence.get()
            if _synthetic(ti):
                self.assertTrue(0.0 < c <= 1.0, c)
            else:
                self.assertEqual(c, 1.0)
        confMap = ts._cryotigerConfidenceMap.get()
        with mrcfile.open(confMap, permissive=True) as m:
            self.assertEqual(m.data.shape[0], 2 * n - 2)
            self.assertTrue(float(m.data.min()) >= 0.0 and float(m.data.max()) <= 1.0)
        from cryotiger_scipion.viewers.viewer_confidence import writeConfidenceFigure
        png = writeConfidenceFigure(prot)
        self.assertGreater(os.path.getsize(png), 1000)

    def test_film_time_aware_model_two_per_gap(self):
        """A time-aware model (issue 13) makes 2 per gap (refused for midpoint-only
        models): synthetic tilts at t = 1/3 and 2/3 with their doses."""
        model = makeFilmTestModel(self.getOutputPath("film_model_ta"), timeAware=True)
        self.assertTrue(self.newProtocol(ProtCryoTigerInterpolate, method=1, modelSource=3,
                                         modelFolder=model).isTimeAwareModel())
        prot, out = self._interpolate(self.protImport, method=1, modelSource=3, modelFolder=model,
                                      tiltsPerGap=2, useGpu=False)
        n = len(ANGLES)
        tis = tiltImages(out.getFirstItem())
        self.assertEqual(len(tis), 3 * n - 2)
        syn = [ti for ti in tis if _synthetic(ti)]
        self.assertEqual(len(syn), 2 * (n - 1))
        a0, a1 = ANGLES[0], ANGLES[1]
        self.assertAlmostEqual(syn[0].getTiltAngle(), a0 + (a1 - a0) / 3, places=3)
        self.assertAlmostEqual(syn[1].getTiltAngle(), a0 + 2 * (a1 - a0) / 3, places=3)
        self.assertTrue(all(0.0 < ti._cryotigerConfidence.get() <= 1.0 for ti in syn))

    def test_film_shipped_time_aware_model_at_given_angles(self):
        """The time-aware model shipped with the plugin (issue 13): chosen in the form, it
        synthesises at the angles asked for (a quarter and three quarters into a gap), is
        described as time-aware, and fitting from the starter counts as time-aware too
        (the engine then starts from the shipped time-aware model)."""
        from cryotiger_scipion.protocols.protocol_interpolate import (MODEL_SOURCE_STARTER,
                                                                      MODEL_SOURCE_TIMEAWARE)
        a0, a1, a2 = ANGLES[0], ANGLES[1], ANGLES[2]
        at = "%g, %g" % (a0 + (a1 - a0) / 4, a1 + 3 * (a2 - a1) / 4)
        self.assertEqual(self._validateOnly(method=1, modelSource=MODEL_SOURCE_TIMEAWARE, atAngles=at), [])
        self.assertEqual(self._validateOnly(method=1, modelSource=MODEL_SOURCE_TIMEAWARE, tiltsPerGap=2), [])
        self.assertEqual(self._validateOnly(method=1, modelSource=MODEL_SOURCE_STARTER, fitMinutes=1,
                                            atAngles=at), [])
        self.assertIn("1, 3 or 7", "\n".join(self._validateOnly(method=1, modelSource=MODEL_SOURCE_STARTER,
                                                                tiltsPerGap=2)))
        prot, out = self._interpolate(self.protImport, method=1, modelSource=MODEL_SOURCE_TIMEAWARE,
                                      atAngles=at, useGpu=False)
        tis = tiltImages(out.getFirstItem())
        self.assertEqual(len(tis), len(ANGLES) + 2)
        syn = [ti for ti in tis if _synthetic(ti)]
        self.assertEqual([round(ti.getTiltAngle(), 3) for ti in syn],
                         [round(a0 + (a1 - a0) / 4, 3), round(a1 + 3 * (a2 - a1) / 4, 3)])
        self.assertTrue(all(0.0 < ti._cryotigerConfidence.get() <= 1.0 for ti in syn))
        self.assertIn("time-aware: each new tilt made at its own angle", "\n".join(prot.methods()))

    def test_film_fitted_to_each_series_registers_the_fitted_model(self):
        """'Fit to each tilt series first (minutes)' (issue 12): the engine fits FILM on the
        series' usable tilts (the excluded view never), interpolates with it, and the fitted
        model is an output of its own, usable as a trained model."""
        import json
        from cryotiger_scipion.protocols.protocol_interpolate import (MODEL_SOURCE_STARTER,
                                                                      fittedModelOutput)
        self.assertIn("set 'Fit to each tilt series first (minutes)' above 0",
                      "\n".join(self._validateOnly(method=1, modelSource=MODEL_SOURCE_STARTER)))
        inSet = getattr(self.protExcl, IMPORT_OUTPUT)
        prot, out = self._interpolate(self.protExcl, method=1, modelSource=MODEL_SOURCE_STARTER,
                                      fitMinutes=0.1, tiltsPerGap=1, useGpu=False)
        n = len(ANGLES)
        self._checkCommon(inSet, out, 2 * n - 2)
        model = getattr(prot, fittedModelOutput("TS_01"))
        self.assertTrue(model.exists())
        with open(os.path.join(model.getAbsPath(), "cryotiger_fit.json")) as f:
            record = json.load(f)
        excluded = [ti.getIndex() - 1 for ti in tiltImages(inSet.getFirstItem()) if not ti.isEnabled()]
        self.assertEqual(len(excluded), 1)
        self.assertEqual(record["views"], sorted(set(range(n)) - set(excluded)))
        self.assertIn("fitted to each series", "\n".join(prot.summary()))

    def _validateOnly(self, **kw):
        p = self.newProtocol(ProtCryoTigerInterpolate, **kw)
        p.inputSetOfTiltSeries.set(self.protImport)
        p.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        return p.validate()

    def test_a_failing_series_is_reported_and_the_others_are_kept(self):
        folder = self.getOutputPath("broken")
        simulateTiltSeries(folder, "TS_08", ANGLES, pixelSize=PIXEL, dosePerTilt=DOSE, seed=8)
        simulateTiltSeries(folder, "TS_09", ANGLES, pixelSize=PIXEL, dosePerTilt=DOSE, seed=9)
        imp = importTiltSeries(self.__class__, folder, "TS_*.mrcs", pixelSize=PIXEL,
                               dosePerTilt=DOSE, aligned=True, label="one broken")
        stack = os.path.join(folder, "TS_09.mrcs")
        with open(stack, "r+b") as f:          # a copy cut short after the import
            f.truncate(os.path.getsize(stack) - 4096)
        prot = self.newProtocol(ProtCryoTigerInterpolate, tiltsPerGap=1, numberOfThreads=1)
        prot.inputSetOfTiltSeries.set(imp)
        prot.inputSetOfTiltSeries.setExtended(IMPORT_OUTPUT)
        self.launchProtocol(prot)
        out = getattr(prot, OUT_TILTSERIES)
        self.assertEqual([ts.getTsId() for ts in out.iterItems()], ["TS_08"])
        failed = prot.getFailedItems()
        self.assertEqual(list(failed), ["TS_09"])
        self.assertIn("truncated MRC file", failed["TS_09"])      # the engine's own message
        self.assertIn("TS_09", "\n".join(prot.summary()))

    def test_film_gpu_arguments_reach_the_engine(self):
        """useGpu: the command carries --device gpu --gpu-ids "%(GPU)s" when TensorFlow
        in the managed environment sees a GPU (else --device cpu: issue 11 item 1);
        Scipion fills it with the thread's GPUs, space separated, which the engine
        accepts."""
        from cryotiger_scipion import Plugin
        from cryotiger_scipion.protocols.protocol_base import CPU_DEVICE_ARGS, GPU_DEVICE_ARGS
        from pyworkflow.utils.process import buildRunCommand
        from cryotiger_scipion.engine.cli import build_parser
        from cryotiger_scipion.engine.commands.interpolate import film_options
        model = makeFilmTestModel(self.getOutputPath("film_model"))
        prot = self.newProtocol(ProtCryoTigerInterpolate, method=1, modelSource=3, modelFolder=model,
                                useGpu=True, gpuList="0 1", tiltsPerGap=3, tileSize=256,
                                tileOverlap=32, maxMemory=6, batchSize=4)
        seesGpu = bool(Plugin.engineSeesGpu(probe=True))
        self.assertEqual(prot.stepNeedsGpu(prot.isFilm()), seesGpu)
        args = "--input a.mrcs --angles a.tlt --output b.mrcs " + prot._getMethodArgs()
        self.assertIn(GPU_DEVICE_ARGS if seesGpu else CPU_DEVICE_ARGS, args)
        if not seesGpu:     # what a GPU machine gets
            args = args.replace(CPU_DEVICE_ARGS, GPU_DEVICE_ARGS)
        command = buildRunCommand("cryotiger interpolate", args, 1, gpuList=[0, 1])
        self.assertIn('--gpu-ids "0 1"', command)
        import shlex
        parsed = build_parser().parse_args(["interpolate"] + shlex.split(command.split("cryotiger interpolate", 1)[1]))
        opts = film_options(parsed)
        self.assertEqual(opts["gpu_ids"], "0,1")
        self.assertEqual(opts["device"], "gpu")
        self.assertEqual((opts["tile_size"], opts["tile_overlap"], opts["max_memory"], opts["batch_size"]),
                         (256, 32, 6.0, 4))
        self.assertEqual(os.path.realpath(opts["model"]), os.path.realpath(model))
        self.assertEqual(parsed.per_gap, 3)
        # linear never asks for a GPU
        lin = self.newProtocol(ProtCryoTigerInterpolate, method=0, useGpu=True)
        self.assertFalse(lin.stepNeedsGpu(lin.isFilm()))
        self.assertNotIn("--device", lin._getMethodArgs())

    def test_stack_in_acquisition_order(self):
        """A raw stack written in acquisition (dose-symmetric) order, not sorted by
        angle: neighbours are found by angle, sources are stack positions."""
        order = doseSymmetricOrder(ANGLES)                 # order of each sorted angle
        byTime = [ANGLES[i] for i in np.argsort(order)]   # stack = acquisition order
        folder = self.getOutputPath("acqorder")
        sim = simulateTiltSeries(folder, "TS_05", byTime, pixelSize=PIXEL, dosePerTilt=DOSE,
                                 orders=range(1, len(byTime) + 1), seed=5)
        imp = importTiltSeries(self.__class__, folder, "TS_05.mrcs", pixelSize=PIXEL,
                               dosePerTilt=DOSE, aligned=True, label="acquisition order")
        prot, out = self._interpolate(imp, tiltsPerGap=1)
        n = len(ANGLES)
        self._checkCommon(getattr(imp, IMPORT_OUTPUT), out, 2 * n - 1)
        tis = tiltImages(out.getFirstItem())
        np.testing.assert_allclose([ti.getTiltAngle() for ti in tis], np.arange(-30, 30.1, 3))
        with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
            data = np.array(m.data)
        pos = {a: i for i, a in enumerate(byTime)}        # stack position of each angle
        for k, a in enumerate(ANGLES):                     # real tilts, by angle
            np.testing.assert_array_equal(data[2 * k], sim["data"][pos[a]])
            self.assertEqual(tis[2 * k].getAcquisitionOrder(), pos[a] + 1)
        mid = tis[1]                                       # -27: between -30 and -24
        self.assertEqual(getattr(mid, ATTR_SOURCES).get(), "%d,%d" % (pos[-30] + 1, pos[-24] + 1))
        np.testing.assert_allclose(data[1], 0.5 * (sim["data"][pos[-30]] + sim["data"][pos[-24]]),
                                   rtol=1e-5, atol=1e-6)

    def test_pixel_size_from_the_set_not_the_header(self):
        """Header 7 Å/px, set (import) 10 Å/px: the output stack's header and
        the output set and images carry the set's 10 Å/px (issue 10 item 9)."""
        folder = self.getOutputPath("wrong_header")
        sim = simulateTiltSeries(folder, "TS_07", ANGLES, pixelSize=7.0, seed=7)
        with mrcfile.open(sim["stack"], header_only=True) as m:
            self.assertAlmostEqual(float(m.voxel_size.x), 7.0, places=3)
        imp = importTiltSeries(self.__class__, folder, "TS_07.mrcs", pixelSize=PIXEL,
                               dosePerTilt=DOSE, aligned=True, label="header 7 A/px")
        prot, out = self._interpolate(imp, tiltsPerGap=1)
        self.assertIn("--pixel-size %s" % PIXEL, "\n".join(prot.getLogsLastLines(200, logFile=0)))
        self._checkCommon(getattr(imp, IMPORT_OUTPUT), out, 2 * len(ANGLES) - 1)   # header 10
        for ti in tiltImages(out.getFirstItem()):
            self.assertAlmostEqual(ti.getSamplingRate(), PIXEL)
