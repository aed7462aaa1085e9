"""Helpers for Scipion tests (and the demo): simulate small tilt series with the
engine's simulator and import them with tomo's real ProtImportTs.

Reuse from any test in tests/scipion::

    from common import simulateTiltSeries, importTiltSeries, fileChecksum

    class TestMine(BaseTest):
        @classmethod
        def setUpClass(cls):
            setupTestProject(cls)
            folder = cls.getOutputPath("data")
            simulateTiltSeries(folder, "TS_01", angles=range(-30, 31, 6))
            cls.protImport = importTiltSeries(cls, folder, "TS_*.mrcs", pixelSize=10.0)
            tsSet = cls.protImport.outputTiltSeries   # SetOfTiltSeries

Only numpy/scipy/mrcfile are needed (the simulator imports no TensorFlow).
"""
import hashlib
import os
from typing import Optional, Sequence

import numpy as np

from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series

# ProtImportTs.anglesFrom choices: 0 range, 1 header, 2 .tlt/.rawtlt
ANGLES_FROM_TLT = 2
IMPORT_OUTPUT = "outputTiltSeries"   # ProtImportTs.OUTPUT_NAME (tomo 3.12)


def doseSymmetricOrder(angles: Sequence[float], group: int = 2) -> np.ndarray:
    """1-based acquisition order of a Hagen dose-symmetric scheme from 0 degrees
    (the engine's ``cryotiger simulate --dose-symmetric``)."""
    from cryotiger_scipion.engine.commands.simulate import dose_symmetric_order
    return dose_symmetric_order(np.asarray(angles, dtype=float), group=group)


def simulateTiltSeries(folder: str, tsId: str = "TS_01", angles: Sequence[float] = range(-30, 31, 6),
                       shape=(16, 48, 48), pixelSize: float = 10.0,
                       orders: Optional[Sequence[int]] = None, dosePerTilt: float = 2.0,
                       volume: Optional[np.ndarray] = None, noise: bool = False,
                       seed: int = 0) -> dict:
    """Project a phantom (or ``volume``, (z, y, x)) at ``angles`` (degrees) and
    write ``folder/<tsId>.mrcs`` (float32, ``pixelSize`` A/px in the header)
    and ``folder/<tsId>.tlt`` for ProtImportTs ("angles from .tlt"): one line
    per image in stack order, ``angle accumulated_dose order`` (tomo reads the
    2nd column as the accumulated dose after the image, e/A^2, and the 3rd as
    the acquisition order).  ``orders`` (1-based) default to the stack order.
    Returns {'stack', 'tlt', 'angles', 'orders', 'data'}."""
    os.makedirs(folder, exist_ok=True)
    angles = [float(a) for a in angles]
    n = len(angles)
    orders = list(range(1, n + 1)) if orders is None else [int(o) for o in orders]
    vol = phantom_volume(shape, seed=seed) if volume is None else volume
    acq = Acquisition(pixel_size=pixelSize, dose_per_tilt=dosePerTilt if noise else None,
                      order=orders, seed=seed)
    data = simulate_tilt_series(vol, angles, acq)
    stack = os.path.join(folder, "%s.mrcs" % tsId)
    write_stack(stack, data, pixelSize)
    tlt = os.path.join(folder, "%s.tlt" % tsId)
    with open(tlt, "w") as f:
        for a, o in zip(angles, orders):
            f.write("%.2f %.4f %d\n" % (a, o * dosePerTilt, o))
    return {"stack": stack, "tlt": tlt, "angles": angles, "orders": orders, "data": data}


def newImportTsProtocol(owner, folder: str, pattern: str, pixelSize: float = 10.0,
                        dosePerTilt: float = 2.0, aligned: bool = True, label: str = None):
    """A ProtImportTs (not launched) reading stacks ``folder/pattern`` with their
    .tlt files.  ``owner``: a BaseTest class or a pyworkflow Project.
    ``aligned`` sets "Have images been aligned?" (TiltSeries.interpolated())."""
    from tomo.protocols import ProtImportTs
    prot = owner.newProtocol(ProtImportTs, filesPath=os.path.abspath(folder), filesPattern=pattern,
                             anglesFrom=ANGLES_FROM_TLT, voltage=300.0, sphericalAberration=2.7,
                             amplitudeContrast=0.1, magnification=50000, samplingRate=pixelSize,
                             tiltAxisAngle=0.0, dosePerFrame=dosePerTilt, interpolated=aligned)
    if label:
        prot.setObjLabel(label)
    return prot


def launch(owner, prot):
    """Run ``prot`` and wait; raise with the log tail when it fails.
    ``owner``: a BaseTest class (uses its launchProtocol) or a Project."""
    if hasattr(owner, "launchProtocol") and isinstance(owner, type):
        return owner.launchProtocol(prot)
    owner.launchProtocol(prot, wait=True)
    if not prot.isFinished():
        lines = "\n".join(prot.getLogsLastLines(30, logFile=0) + prot.getLogsLastLines(30, logFile=1))
        raise RuntimeError("protocol %s %s:\n%s" % (prot.getRunName(), prot.getStatus(), lines))
    return prot


def runOnTiltSeries(test, protClass, inputProt, inputName: str, outputName: str = None,
                    threads: int = None, **kwargs):
    """Run a new ``protClass`` (form values ``kwargs``) on ``inputProt.<inputName>``
    in ``test`` (a BaseTest); assert that no tilt series failed and, with
    ``outputName``, that the output exists.  Returns (protocol, output or None)."""
    prot = test.newProtocol(protClass, **kwargs)
    prot.inputSetOfTiltSeries.set(inputProt)
    prot.inputSetOfTiltSeries.setExtended(inputName)
    if threads is not None:
        prot.numberOfThreads.set(threads)
    test.launchProtocol(prot)
    out = None
    if outputName:
        out = getattr(prot, outputName, None)
        test.assertIsNotNone(out, "%s: no output %s" % (protClass.__name__, outputName))
    test.assertEqual(prot.getFailedItems(), {})
    return prot, out


def importTiltSeries(owner, folder: str, pattern: str, pixelSize: float = 10.0,
                     dosePerTilt: float = 2.0, aligned: bool = True, label: str = None):
    """Import and wait; returns the finished ProtImportTs (output: ``.outputTiltSeries``)."""
    prot = newImportTsProtocol(owner, folder, pattern, pixelSize, dosePerTilt, aligned, label)
    return launch(owner, prot)


def excludeViews(tsSet, tsId: str, indices: Sequence[int]) -> None:
    """Disable the TiltImages of ``tsId`` at stack ``indices`` (1-based) in
    ``tsSet``, in place, as Scipion's tilt-series viewer does when a user
    excludes views."""
    ts = tsSet.getTiltSeriesFromTsId(tsId)
    items = [ti.clone() for ti in ts.iterItems()]
    for ti in items:
        if ti.getIndex() in set(indices):
            ti.setEnabled(False)
            ts.update(ti)
    ts.write()
    tsSet.update(ts)
    tsSet.write()
    tsSet.close()


def fileChecksum(path: str) -> str:
    """sha256 of a file (follows links), to prove inputs are left untouched."""
    h = hashlib.sha256()
    with open(os.path.realpath(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tiltImages(ts):
    """Clones of the TiltImages of ``ts`` sorted by index (stack order)."""
    return sorted((ti.clone() for ti in ts.iterItems()), key=lambda t: t.getIndex())


def addAlignedCopy(owner, prot, matrices, outputName: str = "alignedTiltSeries",
                   inputName: str = IMPORT_OUTPUT):
    """Add to the finished protocol ``prot`` an output ``outputName``: a copy of
    its output ``inputName`` whose TiltImages (in stack order) carry the 3x3
    transforms ``matrices`` (IMOD .xf layout [[A11, A12, DX], [A21, A22, DY],
    [0, 0, 1]], pixels), as an alignment protocol's output would (aligned but
    not resampled: ``hasAlignment()`` True, ``interpolated()`` False).
    ``owner``: a BaseTest class or a Project.  Returns the new set."""
    from pwem.objects import Transform
    from tomo.objects import SetOfTiltSeries, TiltSeries
    project = owner.proj if isinstance(owner, type) else owner
    inSet = getattr(prot, inputName)
    outSet = SetOfTiltSeries.create(prot._getPath(), suffix=outputName)
    outSet.copyInfo(inSet)
    for ts in inSet.iterItems():
        tsOut = TiltSeries()
        tsOut.copyInfo(ts)
        outSet.append(tsOut)
        items = sorted((ti.clone() for ti in ts.iterItems()), key=lambda t: t.getIndex())
        for ti, m in zip(items, matrices):
            t = Transform()
            t.setMatrix(np.asarray(m, dtype=float))
            ti.setTransform(t)
            tsOut.append(ti)
        outSet.update(tsOut)
        tsOut.write()
    outSet.write()
    prot._defineOutputs(**{outputName: outSet})
    project._storeProtocol(prot)
    return outSet


def makeFilmTestModel(folder: str, timeAware: bool = False) -> str:
    """A tiny randomly initialised FILM SavedModel made by the engine
    (``cryotiger model init --config small [--time-aware]``) in the managed environment."""
    import subprocess
    from cryotiger_scipion import Plugin
    if not os.path.exists(os.path.join(folder, "saved_model.pb")):
        cmd = "%s model init --config small%s --output '%s'" % (
            Plugin.getEngineCommand(), " --time-aware" if timeAware else "", folder)
        subprocess.run(cmd, shell=True, check=True, env=dict(Plugin.getEnviron()),
                       stdout=subprocess.DEVNULL)
    return folder


_XVFB = {}


def ensureDisplay() -> str:
    """A DISPLAY where Tk windows can open: the one set, else a private Xvfb
    (Debian package ``xvfb``; scripts/setup.sh installs it where it can)
    started once per test process and stopped at exit.  Raises
    unittest.SkipTest naming the reason when neither is available."""
    import atexit
    import shutil
    import subprocess
    import time
    import unittest
    if os.environ.get("DISPLAY") and not _XVFB:
        try:
            import tkinter
            tkinter.Tk().destroy()
            return os.environ["DISPLAY"]
        except Exception:
            pass          # a DISPLAY that does not answer: use Xvfb
    if _XVFB:
        return os.environ["DISPLAY"]
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        raise unittest.SkipTest("no X display and no Xvfb: install it ('apt-get install xvfb', "
                                "done by scripts/setup.sh when run as root) to test the viewers "
                                "in real Tk windows")
    for n in range(99, 160):
        if os.path.exists("/tmp/.X%d-lock" % n) or os.path.exists("/tmp/.X11-unix/X%d" % n):
            continue
        proc = subprocess.Popen([xvfb, ":%d" % n, "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if os.path.exists("/tmp/.X11-unix/X%d" % n) or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            _XVFB["proc"] = proc
            os.environ["DISPLAY"] = ":%d" % n
            atexit.register(lambda: (proc.terminate(), proc.wait(10)))
            return os.environ["DISPLAY"]
    raise unittest.SkipTest("Xvfb is installed but did not start (no free display :99-:159)")


def screenshot(path: str) -> Optional[str]:
    """Save the whole X screen (ensureDisplay) as a PNG at ``path`` (Pillow's
    ImageGrab on X11, else ImageMagick's ``import``); returns the path, or
    None when no screenshot could be taken."""
    import shutil
    import subprocess
    try:
        from PIL import ImageGrab
        ImageGrab.grab(xdisplay=os.environ.get("DISPLAY")).save(path)
        return path
    except Exception:
        pass
    if shutil.which("import"):
        subprocess.run(["import", "-window", "root", path], check=False, timeout=60)
    elif shutil.which("xwd") and shutil.which("convert"):
        subprocess.run("xwd -root -silent | convert xwd:- %s" % path, shell=True, check=False,
                       timeout=60)
    return path if os.path.exists(path) else None


def showViewsInTk(test, viewer, obj, screenshotPath: Optional[str] = None) -> list:
    """Open ``viewer`` (made with ``parent=`` a real pyworkflow Window) on
    ``obj`` as Scipion's Analyze Results does: ``_visualize`` and ``show()``
    of every view in a real Tk session (ensureDisplay), let Tk draw for a
    moment, optionally take a screenshot, close everything.  An exception
    in any view (e.g. a wrong Tk parent) fails the test.  Returns the views."""
    import matplotlib.pyplot as plt
    parent = viewer.formWindow
    views = viewer._visualize(obj)
    test.assertTrue(views)
    for view in views:
        parent.root.after(400, parent.root.quit)      # Window.show() enters mainloop
        view.show()
    parent.root.update()
    tops = [w for w in parent.root.winfo_children() if w.winfo_class() == "Toplevel"]
    if screenshotPath:                  # side by side (Xvfb has no window manager)
        import matplotlib.pyplot as plt
        x = 0
        for w in tops + [plt.figure(n).canvas.manager.window for n in plt.get_fignums()
                         if hasattr(plt.figure(n).canvas.manager, "window")]:
            try:
                w.geometry("+%d+0" % x)
                w.update()
                x += w.winfo_width() + 5
            except Exception:
                pass
        parent.root.after(500, parent.root.quit)
        parent.root.mainloop()
        screenshot(screenshotPath)
    plt.close("all")
    for w in tops:
        w.destroy()
    return views
