"""The `cryotiger interpolate` command-line contract (used by outside checks)."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from conftest import cryotiger_cmd


def run(*args, cwd=None):
    return subprocess.run(cryotiger_cmd() + list(args), capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.normal(100, 5, size=(7, 16, 20)).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 4.25)
    write_angles(str(tmp_path / "TS.tlt"), np.arange(-9, 9.1, 3.0))
    return tmp_path, stack


def test_add_mode_contract(series):
    d, stack = series
    r = run("interpolate", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "OUT.mrc"), "--method", "linear", "--per-gap", "1", "--mode", "add")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "OUT.mrc") as m:
        assert m.data.shape == (13, 16, 20)
        assert float(m.voxel_size.x) == pytest.approx(4.25, abs=1e-3)
        out = np.array(m.data)
    angles = [float(x) for x in open(d / "OUT.tlt").read().split()]
    assert angles == pytest.approx(np.arange(-9, 9.1, 1.5))
    record = json.load(open(d / "OUT.json"))
    assert isinstance(record, list) and len(record) == 13
    for entry, a in zip(record, angles):
        assert {"angle", "synthetic", "sources"} <= set(entry)
        assert entry["angle"] == pytest.approx(a)
        assert isinstance(entry["synthetic"], bool)
    np.testing.assert_allclose(out[1], 0.5 * (stack[0] + stack[1]), rtol=1e-6)
    np.testing.assert_array_equal(out[0], stack[0])


def test_restore_mode_contract(series):
    d, stack = series
    r = run("interpolate", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "R.mrc"), "--method", "linear", "--mode", "restore")
    assert r.returncode == 0, r.stderr
    record = json.load(open(d / "R.json"))
    assert [e["synthetic"] for e in record] == [False, True] * 3 + [False]
    assert [e["angle"] for e in record] == pytest.approx(np.arange(-9, 9.1, 3.0))
    with mrcfile.open(d / "R.mrc") as m:
        np.testing.assert_allclose(m.data[1], 0.5 * (stack[0] + stack[2]), rtol=1e-6)


@pytest.mark.parametrize("case", ["angles", "missing", "truncated", "nan", "method", "tlt_text"])
def test_bad_input_one_line_message(series, case):
    d, stack = series
    args = ["interpolate", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "OUT.mrc"), "--method", "linear"]
    expect = None
    if case == "angles":
        write_angles(str(d / "short.tlt"), np.arange(6.0))
        args[4] = str(d / "short.tlt")
        expect = "7 images in the stack but 6 angles"
    elif case == "missing":
        args[2] = str(d / "absent.mrc")
        expect = "not found"
    elif case == "truncated":
        with open(d / "TS.mrc", "r+b") as f:
            f.truncate(os.path.getsize(d / "TS.mrc") - 64)
        expect = "truncated"
    elif case == "nan":
        stack[2, 0, 0] = np.nan
        write_stack(str(d / "TS.mrc"), stack, 4.25)
        expect = "NaN"
    elif case == "method":
        args[-1] = "cubic"
        expect = "invalid choice"
    elif case == "tlt_text":
        (d / "TS.tlt").write_text("0\nzero\n")
        expect = "not a tilt angle"
    r = run(*args)
    assert r.returncode != 0
    assert expect in r.stderr
    if case != "method":
        lines = [l for l in r.stderr.splitlines() if l.strip() and "pair" not in l]
        assert len(lines) == 1, r.stderr
    assert not (d / "OUT.mrc").exists() and not (d / "OUT.json").exists()


def test_mdoc_gives_orders_and_doses(tmp_path, shared_data):
    """Real SerialEM metadata (cryocat TS_017: 60 tilts, dose-symmetric from +8 degrees)."""
    meta = os.path.join(shared_data, "metadata", "cryocat_TS_017")
    angles = [float(x) for x in open(os.path.join(meta, "017.tlt")).read().split()]
    write_stack(str(tmp_path / "TS.mrc"), np.zeros((len(angles), 8, 8), np.float32), 1.971)
    r = run("interpolate", "--input", str(tmp_path / "TS.mrc"),
            "--angles", os.path.join(meta, "017.tlt"), "--mdoc", os.path.join(meta, "017.mdoc"),
            "--output", str(tmp_path / "OUT.mrc"), "--method", "linear", "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.load(open(tmp_path / "OUT.json"))
    real = [e for e in record if not e["synthetic"]]
    syn = [e for e in record if e["synthetic"]]
    assert len(real) == 60 and len(syn) == 59
    assert sorted(e["acquisition_order"] for e in real) == list(range(1, 61))
    assert sorted(e["acquisition_order"] for e in syn) == list(range(61, 120))
    first = min(real, key=lambda e: e["acquisition_order"])
    assert first["angle"] == pytest.approx(7.977, abs=0.01)
    by_index = {e["input_index"]: e for e in real}
    for e in syn:
        a, b = (by_index[i] for i in e["sources"])
        assert e["accum_dose"] == pytest.approx(0.5 * (a["accum_dose"] + b["accum_dose"]), abs=1e-3)
    assert max(e["accum_dose"] for e in real) > 100
