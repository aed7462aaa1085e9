"""Numbers users rely on, pinned to their right values (issue 10 item 9):
doses of synthetic tilts at t != 0.5 with unequal doses, acquisition orders
with gaps (a subset of a series), and --pixel-size different from the header
(every command uses the given one and writes it)."""
import json
import subprocess

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.plan import make_input_tilts, make_plan
from conftest import cryotiger_cmd


def run(*args):
    return subprocess.run(cryotiger_cmd() + [str(a) for a in args], capture_output=True, text=True)


def test_three_per_gap_with_unequal_doses_and_orders():
    """K = 3: fractions 1/4, 1/2, 3/4; dose and accumulated dose by the pixel
    weights (1 - t, t).  Tilts 0, 4, 10 degrees acquired in the order 2, 1, 3
    with doses 2, 3, 5 e/A^2: accumulated (before each) 3, 0, 5."""
    tilts = make_input_tilts([0.0, 4.0, 10.0], orders=[2, 1, 3], doses=[2.0, 3.0, 5.0])
    assert [t.accum_dose for t in tilts] == [3.0, 0.0, 5.0]
    plan = make_plan(tilts, per_gap=3)
    syn = [o for o in plan if o.synthetic]
    assert [o.angle for o in syn] == pytest.approx([1.0, 2.0, 3.0, 5.5, 7.0, 8.5])
    assert [o.fraction for o in syn] == pytest.approx([0.25, 0.5, 0.75] * 2)
    assert [o.dose for o in syn] == pytest.approx([2.25, 2.5, 2.75, 3.5, 4.0, 4.5])
    assert [o.accum_dose for o in syn] == pytest.approx([2.25, 1.5, 0.75, 1.25, 2.5, 3.75])
    assert [o.weights for o in syn[:3]] == [pytest.approx([0.75, 0.25]), pytest.approx([0.5, 0.5]),
                                            pytest.approx([0.25, 0.75])]
    assert [o.acquisition_order for o in syn] == [4, 5, 6, 7, 8, 9]


def test_three_per_gap_cli_pixels_and_record(tmp_path):
    """The same through `cryotiger interpolate --per-gap 3 --acquisition-json`:
    linear pixels (1 - t) a + t b exactly, and the record's doses."""
    a = np.full((8, 8), 10.0, np.float32)
    b = np.full((8, 8), 30.0, np.float32)
    c = np.full((8, 8), 50.0, np.float32)
    write_stack(str(tmp_path / "ts.mrc"), np.stack([a, b, c]), 2.0)
    write_angles(str(tmp_path / "ts.tlt"), [0.0, 4.0, 10.0])
    (tmp_path / "acq.json").write_text(json.dumps({"order": [2, 1, 3], "dose": [2.0, 3.0, 5.0]}))
    r = run("interpolate", "--input", tmp_path / "ts.mrc", "--angles", tmp_path / "ts.tlt",
            "--output", tmp_path / "out.mrc", "--per-gap", 3, "--acquisition-json",
            tmp_path / "acq.json", "--method", "linear", "--quiet")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "out.json").read_text())
    with mrcfile.open(tmp_path / "out.mrc") as m:
        means = [float(s.mean()) for s in m.data]
    assert means == pytest.approx([10, 15, 20, 25, 30, 35, 40, 45, 50], abs=1e-5)
    syn = [e for e in rec if e["synthetic"]]
    assert [e["dose"] for e in syn] == pytest.approx([2.25, 2.5, 2.75, 3.5, 4.0, 4.5])
    assert [e["accum_dose"] for e in syn] == pytest.approx([2.25, 1.5, 0.75, 1.25, 2.5, 3.75])
    # the same dose before each image under a name that says so, and the dose after it
    # (Scipion's AccumDose): before + own dose
    assert [e["dose_before"] for e in syn] == pytest.approx([2.25, 1.5, 0.75, 1.25, 2.5, 3.75])
    assert [e["accumulated_dose_after"] for e in syn] == pytest.approx(
        [4.5, 4.0, 3.5, 4.75, 6.5, 8.25])
    real = [e for e in rec if not e["synthetic"]]
    assert [e["accumulated_dose_after"] for e in real] == pytest.approx([5.0, 3.0, 10.0])


def test_acquisition_orders_with_gaps():
    """A subset of a series (orders 3, 7, 12, 5: views removed in between):
    orders are kept as given, accumulated dose follows their time order, and
    synthetic tilts are numbered after the largest (12)."""
    tilts = make_input_tilts([-10.0, 0.0, 10.0, 20.0], orders=[3, 7, 12, 5],
                             doses=[1.0, 2.0, 3.0, 4.0])
    # time order: view 0 (3), view 3 (5), view 1 (7), view 2 (12)
    assert [t.accum_dose for t in tilts] == [0.0, 5.0, 7.0, 1.0]
    plan = make_plan(tilts, per_gap=1)
    real = [o for o in plan if not o.synthetic]
    assert [o.acquisition_order for o in real] == [3, 7, 12, 5]
    syn = [o for o in plan if o.synthetic]
    assert [o.acquisition_order for o in syn] == [13, 14, 15]
    assert [o.accum_dose for o in syn] == pytest.approx([2.5, 6.0, 4.0])
    assert [o.dose for o in syn] == pytest.approx([1.5, 2.5, 3.5])
    # the accumulated dose given by the acquisition (SerialEM's PriorRecordDose,
    # counting the removed tilts) wins over the subset's own sum
    given = make_input_tilts([-10.0, 0.0, 10.0, 20.0], orders=[3, 7, 12, 5],
                             doses=[1.0, 2.0, 3.0, 4.0], accum_doses=[6.0, 21.0, 40.0, 12.0])
    syn = [o for o in make_plan(given, per_gap=1) if o.synthetic]
    assert [o.accum_dose for o in syn] == pytest.approx([13.5, 30.5, 26.0])


def test_mdoc_subset_with_gaps(tmp_path):
    """An .mdoc of a subset (ZValues 0, 2, 5, 6 of a longer series, DateTime in
    acquisition order 2, 1, 4, 3): orders by time, PriorRecordDose kept."""
    from cryotiger_scipion.engine.formats.mdoc import read_mdoc
    sections = [(0, 0.0, 3.0, "01-Jan-24  10:00:10", 9.0), (2, -3.0, 3.0, "01-Jan-24  10:00:00", 0.0),
                (5, 3.0, 2.5, "01-Jan-24  10:00:40", 24.0), (6, 6.0, 2.5, "01-Jan-24  10:00:30", 15.5)]
    text = "PixelSpacing = 2.0\n\n"
    for z, ang, dose, when, prior in sections:
        text += (f"[ZValue = {z}]\nTiltAngle = {ang}\nExposureDose = {dose}\nDateTime = {when}\n"
                 f"PriorRecordDose = {prior}\n\n")
    (tmp_path / "ts.mdoc").write_text(text)
    md = read_mdoc(str(tmp_path / "ts.mdoc"))
    assert list(md.acquisition_order) == [2, 1, 4, 3]
    assert list(md.accumulated_dose) == [9.0, 0.0, 24.0, 15.5]


@pytest.fixture(scope="module")
def wrong_header(tmp_path_factory):
    """A series simulated at 2.5 A/px (defocus 25000 A) whose header says 5 A/px."""
    from test_ctf_astigmatism import weak_phase_series
    d = tmp_path_factory.mktemp("px")
    ts = weak_phase_series(5, 256, 2.5, 25000.0, seed=11)
    write_stack(str(d / "ts.mrc"), ts, 5.0)
    write_angles(str(d / "ts.tlt"), [-6.0, -3.0, 0.0, 3.0, 6.0])
    return d


def test_given_pixel_size_is_used_and_written(wrong_header):
    d = wrong_header
    r = run("interpolate", "--input", d / "ts.mrc", "--angles", d / "ts.tlt", "--output",
            d / "out.mrc", "--method", "linear", "--pixel-size", 2.5, "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "out.mrc") as m:
        assert float(m.voxel_size.x) == pytest.approx(2.5)
    r = run("reconstruct", "--input", d / "ts.mrc", "--angles", d / "ts.tlt", "--output",
            d / "rec.mrc", "--thickness", 16, "--binning", 2, "--pixel-size", 2.5, "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "rec.mrc") as m:
        assert float(m.voxel_size.x) == pytest.approx(5.0)     # 2.5 x binning 2
    for px, ok in ((2.5, True), (None, False)):
        extra = ["--pixel-size", px] if px else []
        out = d / f"ctf_{px}.json"
        r = run("ctf", "--input", d / "ts.mrc", "--angles", d / "ts.tlt", "--output", out,
                "--res-max", 12, "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        dz = np.median([e["defocus"] for e in json.loads(out.read_text())])
        # with the given 2.5 A/px the truth; with the header's 5 A/px far off
        assert (abs(dz - 25000.0) < 600.0) == ok, dz


def test_holdout_defocus_uses_the_given_pixel_size(wrong_header):
    d = wrong_header
    r = run("holdout", "--input", d / "ts.mrc", "--angles", d / "ts.tlt", "--method", "linear",
            "--defocus", "--pixel-size", 2.5, "--res-max", 12, "--report", d / "h.json", "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads((d / "h.json").read_text())
    assert len(rep["defocus_real"]) == 2
    assert all(abs(v - 25000.0) < 600.0 for v in rep["defocus_real"]), rep["defocus_real"]
