"""What `cryotiger interpolate` writes is accepted by every command downstream
(issue 10 item 5, case C23), and the aligned frame of a 90-degree tilt axis
(item 6, case C25).

Rule (engine/formats/record.py, README "Excluded views downstream"): views excluded in
the input are carried into the output at their own angle, flagged `excluded`
in OUT.json; ctf does not estimate them, reconstruct and holdout leave them
out, interpolate never uses them as anchors.  The record is read from
--plan/--exclude-synthetic or found beside the stack (STEM.json)."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series
from conftest import cryotiger_cmd

ANGLES = np.arange(-30.0, 30.0 + 1e-9, 3.0)          # 21 evenly spaced tilts


def run(*args, cwd=None):
    return subprocess.run(cryotiger_cmd() + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    vol = phantom_volume((16, 64, 64), n_blobs=20, seed=4)
    ts = simulate_tilt_series(vol, ANGLES, Acquisition(pixel_size=5.0, defocus=[20000.0] * 21,
                                                       dose_per_tilt=20.0, seed=1))
    write_stack(str(d / "ts.mrc"), ts, 5.0)
    write_angles(str(d / "ts.tlt"), ANGLES)
    return d


def _chain(d, name, exclude, mode="add", per_gap=1):
    """interpolate -> ctf -> reconstruct (all tilts, --exclude-synthetic) -> holdout."""
    x = d / f"{name}.mrc"
    r = run("interpolate", "--input", d / "ts.mrc", "--angles", d / "ts.tlt", "--output", x,
            "--method", "linear", "--exclude", exclude, "--mode", mode, "--per-gap", per_gap,
            "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.loads((d / f"{name}.json").read_text())
    angles = np.loadtxt(d / f"{name}.tlt")
    r = run("ctf", "--input", x, "--angles", d / f"{name}.tlt", "--output", d / f"{name}_ctf.json",
            "--plan", d / f"{name}.json", "--defocus-min", 10000, "--defocus-max", 30000,
            "--res-max", 12, "--quiet")
    assert r.returncode == 0, r.stderr
    ctf = json.loads((d / f"{name}_ctf.json").read_text())
    for flag in ("", "--exclude-synthetic"):
        extra = [flag, d / f"{name}.json"] if flag else []
        r = run("reconstruct", "--input", x, "--angles", d / f"{name}.tlt", "--output",
                d / f"{name}_rec{flag}.mrc", "--thickness", 16, "--ctf", d / f"{name}_ctf.json",
                "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        with mrcfile.open(d / f"{name}_rec{flag}.mrc") as m:
            assert m.data.shape == (16, 64, 64) and np.all(np.isfinite(m.data))
    r = run("holdout", "--input", x, "--angles", d / f"{name}.tlt", "--method", "linear",
            "--report", d / f"{name}_h.json", "--quiet")
    assert r.returncode == 0, r.stderr
    return record, angles, ctf, json.loads((d / f"{name}_h.json").read_text())


def test_c23_exclude_one_view_then_ctf_reconstruct_holdout(series):
    d = series
    record, angles, ctf, report = _chain(d, "x", "5")
    # The excluded real view 5 (-18 degrees) and the midpoint of views 4 and 6 share -18.
    at = [i for i, a in enumerate(angles) if abs(a + 18.0) < 1e-6]
    assert len(at) == 2
    assert sorted((record[i]["synthetic"], record[i]["excluded"]) for i in at) == \
        [(False, True), (True, False)]
    syn = next(i for i in at if record[i]["synthetic"])
    assert sorted(record[syn]["sources"]) == [3, 5]          # never anchored on view 5 (index 4)
    assert all(4 not in e["sources"] for e in record if e["synthetic"])
    excl = [i for i, e in enumerate(record) if e["excluded"]]
    assert len(excl) == 1 and record[excl[0]]["input_index"] == 4
    # ctf: one entry per slice; the excluded view is not estimated, flagged.
    assert len(ctf) == len(record)
    assert ctf[excl[0]]["excluded"] is True and ctf[excl[0]]["defocus_u"] is None
    fitted = [e for i, e in enumerate(ctf) if i != excl[0]]
    assert all(e["defocus_u"] is not None for e in fitted)
    # holdout: real, not excluded tilts only (20 of them); held-out tilts are real ones.
    real = [i for i, e in enumerate(record) if not e["synthetic"] and not e["excluded"]]
    assert set(report["input_indices"]) <= set(real)
    assert len(report["input_indices"]) == 9                 # 20 real tilts: 9 restorable
    assert excl[0] not in report["input_indices"]


def test_reconstruct_without_record_refuses_duplicates_then_leaves_excluded_out(series):
    """The record beside the stack is what makes the duplicate angle legal:
    without it the duplicate is refused; with it the excluded view is left
    out (same tomogram as an explicit --exclude of that view)."""
    d = series
    record, angles, _, _ = _chain(d, "y", "5")
    excl = [i for i, e in enumerate(record) if e["excluded"]][0]
    os.makedirs(d / "norecord", exist_ok=True)
    import shutil
    shutil.copy(d / "y.mrc", d / "norecord" / "y.mrc")
    shutil.copy(d / "y.tlt", d / "norecord" / "y.tlt")
    r = run("reconstruct", "--input", d / "norecord" / "y.mrc", "--angles", d / "norecord" / "y.tlt",
            "--output", d / "norecord" / "rec.mrc", "--thickness", 16, "--quiet")
    assert r.returncode != 0 and "-18 appears more than once" in r.stderr
    r = run("reconstruct", "--input", d / "norecord" / "y.mrc", "--angles", d / "norecord" / "y.tlt",
            "--output", d / "norecord" / "rec.mrc", "--thickness", 16, "--quiet",
            "--exclude", excl + 1)
    assert r.returncode == 0, r.stderr
    r = run("reconstruct", "--input", d / "y.mrc", "--angles", d / "y.tlt",
            "--output", d / "rec_auto.mrc", "--thickness", 16, "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "norecord" / "rec.mrc") as a, mrcfile.open(d / "rec_auto.mrc") as b:
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("exclude", ["1", "21", "5,9-10"])
def test_excluded_first_last_and_several_views(series, exclude):
    d = series
    name = "v" + exclude.replace(",", "_").replace("-", "to")
    record, angles, ctf, report = _chain(d, name, exclude)
    excluded_inputs = sorted(e["input_index"] for e in record if e["excluded"])
    want = sorted(int(v) - 1 for part in exclude.split(",") for v in
                  (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)))
    assert excluded_inputs == want
    for i, e in enumerate(record):
        if e["synthetic"]:
            assert not set(e["sources"]) & set(want)
        assert (ctf[i].get("excluded", False)) == e["excluded"]
    # first/last view excluded: no synthetic tilt outside the remaining anchors' range
    used = [ANGLES[i] for i in range(21) if i not in want]
    syn_angles = [e["angle"] for e in record if e["synthetic"]]
    assert min(syn_angles) > min(used) and max(syn_angles) < max(used)


def test_restore_mode_output_is_accepted_downstream(series):
    d = series
    record, angles, ctf, report = _chain(d, "r", "5", mode="restore")
    assert not any(e["excluded"] for e in record)               # restore leaves excluded out
    assert len(set(np.round(angles, 4))) == len(angles)
    assert sum(e["synthetic"] for e in record) == 9


def test_second_interpolation_on_interpolated_output(series):
    """interpolate on an interpolated stack: the excluded view stays excluded
    (found in the record beside it) and is never an anchor."""
    d = series
    _chain(d, "z", "5")
    r = run("interpolate", "--input", d / "z.mrc", "--angles", d / "z.tlt", "--output",
            d / "z2.mrc", "--method", "linear", "--quiet")
    assert r.returncode == 0, r.stderr
    rec2 = json.loads((d / "z2.json").read_text())
    z = json.loads((d / "z.json").read_text())
    excl = [i for i, e in enumerate(z) if e["excluded"]]
    assert [e["input_index"] for e in rec2 if e["excluded"]] == excl
    assert all(not set(e["sources"]) & set(excl) for e in rec2 if e["synthetic"])


def test_c25_ninety_degree_axis_on_non_square_images(tmp_path):
    """raw 48 rows x 24 columns with the tilt axis along x; .xf '0 -1 1 0 0 0'
    turns it into the 24 x 48 aligned frame: interpolate writes (n, 24, 48) and
    reconstruct gives the same (z, 24, 48) tomogram as from the aligned stack."""
    from cryotiger_scipion.engine.align import apply_xf
    from cryotiger_scipion.engine.formats.xf import write_xf
    angles = np.arange(-30.0, 30.0 + 1e-9, 6.0)
    vol = phantom_volume((12, 24, 48), n_blobs=8, seed=2)
    ali = simulate_tilt_series(vol, angles)                       # (n, 24, 48), axis along y
    raw = np.stack([np.rot90(a) for a in ali])                     # (n, 48, 24)
    xf = np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]] * len(angles))
    np.testing.assert_allclose(apply_xf(raw[0], xf[0], (24, 48)), ali[0], atol=1e-5)
    write_stack(str(tmp_path / "raw.mrc"), raw, 5.0)
    write_stack(str(tmp_path / "ali.mrc"), ali, 5.0)
    write_angles(str(tmp_path / "ts.tlt"), angles)
    write_xf(str(tmp_path / "rot90.xf"), xf)
    r = run("interpolate", "--input", tmp_path / "raw.mrc", "--angles", tmp_path / "ts.tlt", "--xf",
            tmp_path / "rot90.xf", "--output", tmp_path / "out.mrc", "--method", "linear", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    with mrcfile.open(tmp_path / "out.mrc") as m:
        assert m.data.shape == (2 * len(angles) - 1, 24, 48)
        np.testing.assert_allclose(m.data[::2], ali, atol=1e-4)
    for name, extra in (("tomo_raw", ["--input", tmp_path / "raw.mrc", "--xf", tmp_path / "rot90.xf"]),
                        ("tomo_ali", ["--input", tmp_path / "ali.mrc"])):
        r = run("reconstruct", *extra, "--angles", tmp_path / "ts.tlt", "--output",
                tmp_path / f"{name}.mrc", "--thickness", 12, "--quiet")
        assert r.returncode == 0, r.stderr
    with mrcfile.open(tmp_path / "tomo_raw.mrc") as a, mrcfile.open(tmp_path / "tomo_ali.mrc") as b:
        assert a.data.shape == (12, 24, 48)
        np.testing.assert_allclose(a.data, b.data, atol=1e-4 * float(np.abs(b.data).max()))


def test_aligned_size_sets_the_frame(tmp_path):
    """--aligned-size NX,NY (as newstack -size) overrides the automatic frame:
    the 90-degree aligned images centred in a 48 x 48 frame; without --xf, or
    with a malformed size, refused in one line."""
    from cryotiger_scipion.engine.formats.xf import write_xf
    angles = np.array([-6.0, 0.0, 6.0])
    vol = phantom_volume((8, 24, 48), n_blobs=6, seed=3)
    ali = simulate_tilt_series(vol, angles)                        # (3, 24, 48)
    raw = np.stack([np.rot90(a) for a in ali])                     # (3, 48, 24)
    write_stack(str(tmp_path / "raw.mrc"), raw, 5.0)
    write_angles(str(tmp_path / "ts.tlt"), angles)
    write_xf(str(tmp_path / "rot90.xf"), np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]] * 3))
    base = ["interpolate", "--input", tmp_path / "raw.mrc", "--angles", tmp_path / "ts.tlt",
            "--output", tmp_path / "out.mrc", "--method", "linear", "--quiet"]
    r = run(*base, "--xf", tmp_path / "rot90.xf", "--aligned-size", "48,48")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(tmp_path / "out.mrc") as m:
        assert m.data.shape == (5, 48, 48)
        np.testing.assert_allclose(m.data[::2, 12:36, :], ali, atol=1e-4)
    r = run("reconstruct", "--input", tmp_path / "raw.mrc", "--angles", tmp_path / "ts.tlt",
            "--xf", tmp_path / "rot90.xf", "--aligned-size", "48,40", "--output",
            tmp_path / "rec.mrc", "--thickness", 8, "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(tmp_path / "rec.mrc") as m:
        assert m.data.shape == (8, 40, 48)
    for extra, msg in ((["--aligned-size", "48,48"], "give --xf"),
                       (["--xf", tmp_path / "rot90.xf", "--aligned-size", "48"], "two whole numbers")):
        r = run(*base, *extra)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
