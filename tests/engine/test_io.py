"""Tilt-series I/O: MRC stacks, tilt files, .mdoc, atomic writes and bad input."""
import os

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.formats.mrc import StackWriter, read_stack, write_stack
from cryotiger_scipion.engine.formats.tlt import check_angles_match, read_angles, write_angles
from cryotiger_scipion.engine.formats.mdoc import read_mdoc


def test_stack_round_trip_keeps_values_and_pixel_size(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 12, 16)).astype(np.float32) * 1000 + 3
    for suffix in (".mrc", ".mrcs", ".st", ".ali"):
        path = str(tmp_path / f"ts{suffix}")
        write_stack(path, data, pixel_size=2.37)
        back, px = read_stack(path)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, data)
        assert px == pytest.approx(2.37, abs=1e-3)
        with mrcfile.open(path) as m:
            assert m.is_image_stack()


def test_read_stack_of_16bit_integers(tmp_path):
    path = str(tmp_path / "int.mrc")
    raw = np.arange(2 * 4 * 4, dtype=np.int16).reshape(2, 4, 4)
    with mrcfile.new(path) as m:
        m.set_data(raw)
        m.voxel_size = 5.0
    back, px = read_stack(path)
    np.testing.assert_array_equal(back, raw.astype(np.float32))
    assert px == 5.0


def test_truncated_mrc_is_refused_with_clear_message(tmp_path):
    path = str(tmp_path / "ts.mrc")
    write_stack(path, np.ones((4, 32, 32), np.float32), 1.0)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(InputError, match="truncated"):
        read_stack(path)


def test_missing_and_non_mrc_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_stack(str(tmp_path / "absent.mrc"))
    bad = tmp_path / "text.mrc"
    bad.write_text("hello")
    with pytest.raises(InputError, match="MRC"):
        read_stack(str(bad))


def test_nan_images_are_named(tmp_path):
    data = np.zeros((4, 8, 8), np.float32)
    data[2, 3, 3] = np.nan
    path = str(tmp_path / "nan.mrc")
    write_stack(path, data, 1.0)
    with pytest.raises(InputError, match=r"NaN.*image\(s\) 3"):
        read_stack(path)


def test_writer_leaves_nothing_on_crash(tmp_path):
    path = str(tmp_path / "out.mrcs")
    with pytest.raises(RuntimeError):
        with StackWriter(path, 3, (8, 8), 1.0) as w:
            w[0] = np.zeros((8, 8))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # A stack with unwritten slices is not renamed into place either.
    with pytest.raises(RuntimeError, match="never written"):
        with StackWriter(path, 3, (8, 8), 1.0) as w:
            w[0] = np.zeros((8, 8))
    assert os.listdir(tmp_path) == []


def test_angles_round_trip_and_errors(tmp_path):
    p = str(tmp_path / "a.tlt")
    write_angles(p, [-3, 0, 3.5])
    np.testing.assert_allclose(read_angles(p), [-3, 0, 3.5])
    bad = tmp_path / "bad.tlt"
    bad.write_text("1.0\nabc\n")
    with pytest.raises(InputError, match="line 2"):
        read_angles(str(bad))
    far = tmp_path / "far.tlt"
    far.write_text("1.0\n120\n")
    with pytest.raises(InputError, match="outside"):
        read_angles(str(far))
    empty = tmp_path / "empty.tlt"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no tilt angles"):
        read_angles(str(empty))
    with pytest.raises(InputError, match="41 images in the stack but 40 angles"):
        check_angles_match(np.arange(40.0), 41, "TS_03.mrc", "TS_03.tlt")
    with pytest.raises(InputError, match="more than once"):
        check_angles_match(np.array([0.0, 3.0, 3.0]), 3, "ts", "ts.tlt")


def test_mdoc_cryocat_dose_symmetric(shared_data):
    mdoc = read_mdoc(os.path.join(shared_data, "metadata", "cryocat_TS_017", "017.mdoc"))
    assert len(mdoc.tilts) == 60
    angles = np.array([t.angle for t in mdoc.tilts])
    tlt = read_angles(os.path.join(shared_data, "metadata", "cryocat_TS_017", "017.tlt"))
    assert len(tlt) == 60
    order = mdoc.acquisition_order
    assert sorted(order.tolist()) == list(range(1, 61))
    # Sections are stored by angle; the acquisition (by DateTime) is dose-symmetric
    # around the lamella pre-tilt (+8 degrees): the direction in time changes many times.
    assert np.all(np.diff(angles) > 0)
    by_time = angles[np.argsort(order)]
    np.testing.assert_allclose(by_time[:4], [7.97729, 9.98604, 11.9893, 5.99103], atol=1e-4)
    assert np.sum(np.diff(np.sign(np.diff(by_time))) != 0) > 10
    first = int(np.flatnonzero(order == 1)[0])
    accum = mdoc.accumulated_dose
    assert accum[first] == pytest.approx(accum.min())
    # Accumulated dose grows with acquisition order.
    assert np.all(np.diff(accum[np.argsort(order)]) > 0)


def test_mdoc_empiar(shared_data):
    mdoc = read_mdoc(os.path.join(shared_data, "metadata", "empiar10164_TS_01", "TS_01.mrc.mdoc"))
    assert len(mdoc.tilts) == 41
    angles = [t.angle for t in mdoc.tilts]
    assert angles[0] == pytest.approx(0.0, abs=0.01) and angles[1] == pytest.approx(3.0, abs=0.01)
    assert mdoc.tilts[0].pixel_size == pytest.approx(5.4)
    assert sorted(mdoc.acquisition_order.tolist()) == list(range(1, 42))
