"""tomo's per-image Transform -> the .xf the protocols write -> the engine's
resampling: one convention end to end (issue 10 item 6).

tomo (as scipion-em-imod reads and writes it) stores an IMOD line
``A11 A12 A21 A22 DX DY`` as the matrix [[A11, A12, DX], [A21, A22, DY], [0, 0, 1]];
convert.writeXf (the engine's formats.xf.write_xf) must write it back unchanged, and the engine must map a
raw point X to X' = A X + D about the centre (n - 1) / 2 (IMOD's convention)."""
import os
import tempfile
import unittest

import numpy as np


class TestXfConvention(unittest.TestCase):
    def test_tomo_transform_to_xf_to_engine(self):
        from pwem.objects import Transform
        from cryotiger_scipion.engine.align import apply_xf
        from cryotiger_scipion.engine.formats.xf import read_xf
        from cryotiger_scipion.convert import TiltRecord, writeXf

        # magnification 1.02, stretch 1.06 along 30 degrees, rotation 12 degrees, shift (3, -2)
        a = np.array([[1.0370978, -0.1893297], [0.2475344, 1.0181859]])
        m = np.eye(3)
        m[:2, :2] = a
        m[:2, 2] = (3.0, -2.0)
        t = Transform()
        t.setMatrix(m)
        rec = TiltRecord(position=1, objId=1, fileName="ts.mrcs", index=1, angle=0.0, acqOrder=1,
                         enabled=True, matrix=np.asarray(t.getMatrix(), dtype=float).tolist())
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ts.xf")
            writeXf(path, [rec])
            with open(path) as f:
                values = [float(v) for v in f.read().split()]
            np.testing.assert_allclose(values, [1.0370978, -0.1893297, 0.2475344, 1.0181859,
                                                3.0, -2.0], atol=1e-6)
            xf = read_xf(path)[0]
        # a dot at raw (row 20, column 30) of a 48 x 64 image lands where IMOD puts it
        ny, nx = 48, 64
        yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
        raw = np.exp(-((yy - 20.0) ** 2 + (xx - 30.0) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)
        out = apply_xf(raw, xf).astype(float)
        x, y = 30.0 - (nx - 1) / 2.0, 20.0 - (ny - 1) / 2.0
        want_col = a[0, 0] * x + a[0, 1] * y + 3.0 + (nx - 1) / 2.0
        want_row = a[1, 0] * x + a[1, 1] * y - 2.0 + (ny - 1) / 2.0
        self.assertAlmostEqual((out * yy).sum() / out.sum(), want_row, delta=0.02)
        self.assertAlmostEqual((out * xx).sum() / out.sum(), want_col, delta=0.02)
