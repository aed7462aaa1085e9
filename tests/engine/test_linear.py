"""Linear interpolation: the maths by hand, units kept, pair-by-pair driver."""
import json

import numpy as np
import pytest

from cryotiger_scipion.engine.interpolate import (LinearInterpolator, describe_input,
                                                  run_interpolation)
from cryotiger_scipion.engine.formats.mrc import read_stack, write_stack
from cryotiger_scipion.engine.formats.tlt import read_angles, write_angles


def test_weights_by_angular_distance_hand_computed():
    a = np.array([[0.0, 2.0]], np.float32)
    b = np.array([[4.0, 8.0]], np.float32)
    (res,) = LinearInterpolator().interpolate_gaps([(a, b, [0.25, 0.5])])
    np.testing.assert_allclose(res[0], [[1.0, 3.5]])
    np.testing.assert_allclose(res[1], [[2.0, 5.0]])
    assert res.dtype == np.float32


def test_non_uniform_gap_in_original_units(tmp_path):
    # Angles -2, 0, 6: the new tilt between 0 and 6 is at 3 (t = 0.5), between -2 and 0 at -1.
    stack = np.stack([np.full((4, 5), v, np.float32) for v in (-1000.0, 10.0, 30010.0)])
    write_stack(str(tmp_path / "ts.mrc"), stack, 3.1)
    write_angles(str(tmp_path / "ts.tlt"), [-2, 0, 6])
    tilts = describe_input(str(tmp_path / "ts.mrc"), str(tmp_path / "ts.tlt"))
    plan = run_interpolation(str(tmp_path / "ts.mrc"), str(tmp_path / "out.mrcs"), tilts,
                             LinearInterpolator(), per_gap=1, progress=False)
    out, px = read_stack(str(tmp_path / "out.mrcs"))
    assert px == pytest.approx(3.1, abs=1e-3)
    np.testing.assert_allclose(out[:, 0, 0], [-1000, -495, 10, 15010, 30010])
    np.testing.assert_allclose(read_angles(str(tmp_path / "out.tlt")), [-2, -1, 0, 3, 6])
    record = json.load(open(tmp_path / "out.json"))
    assert [r["synthetic"] for r in record] == [False, True, False, True, False]
    assert record[3]["sources"] == [1, 2] and len(plan) == 5


def test_excluded_view_copied_not_used(tmp_path):
    stack = np.stack([np.full((3, 3), v, np.float32) for v in (0.0, 999.0, 20.0)])
    write_stack(str(tmp_path / "ts.mrc"), stack, 1.0)
    write_angles(str(tmp_path / "ts.tlt"), [0, 1, 2])
    tilts = describe_input(str(tmp_path / "ts.mrc"), str(tmp_path / "ts.tlt"), exclude=[1])
    run_interpolation(str(tmp_path / "ts.mrc"), str(tmp_path / "o.mrc"), tilts, LinearInterpolator(),
                      progress=False)
    out, _ = read_stack(str(tmp_path / "o.mrc"))
    record = json.load(open(tmp_path / "o.json"))
    # the synthetic tilt at 1 degree is made from views 1 and 3, not from the excluded one
    syn = [r for r in record if r["synthetic"]]
    assert syn[0]["sources"] == [0, 2]
    assert out[syn[0]["index"], 0, 0] == pytest.approx(10.0)
    excl = [r for r in record if r["excluded"]]
    assert out[excl[0]["index"], 0, 0] == pytest.approx(999.0)


def test_input_untouched_and_no_output_on_failure(tmp_path):
    stack = np.random.default_rng(1).normal(size=(4, 6, 6)).astype(np.float32)
    stack[3, 1, 1] = np.nan
    path = tmp_path / "ts.mrc"
    write_stack(str(path), stack, 1.0)
    before = path.read_bytes()
    write_angles(str(tmp_path / "ts.tlt"), [0, 2, 4, 6])
    tilts = describe_input(str(path), str(tmp_path / "ts.tlt"))
    from cryotiger_scipion.engine import InputError
    with pytest.raises(InputError, match=r"image\(s\) 4"):
        run_interpolation(str(path), str(tmp_path / "out.mrc"), tilts, LinearInterpolator(),
                          progress=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts.mrc", "ts.tlt"]


def test_memory_does_not_grow_with_tilts(tmp_path):
    """The driver holds a handful of images, not the stack: peak traced memory for
    an 81-tilt series stays far below the stack size."""
    import tracemalloc
    n, size = 81, 128
    stack = np.random.default_rng(0).normal(size=(n, size, size)).astype(np.float32)
    write_stack(str(tmp_path / "ts.mrc"), stack, 1.0)
    write_angles(str(tmp_path / "ts.tlt"), np.linspace(-60, 60, n))
    del stack
    tilts = describe_input(str(tmp_path / "ts.mrc"), str(tmp_path / "ts.tlt"))
    tracemalloc.start()
    run_interpolation(str(tmp_path / "ts.mrc"), str(tmp_path / "o.mrc"), tilts, LinearInterpolator(),
                      progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stack_bytes = n * size * size * 4
    assert peak < stack_bytes / 4, (peak, stack_bytes)
