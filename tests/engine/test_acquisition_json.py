"""`cryotiger interpolate --acquisition-json`: per-image order and dose from a
JSON file (what the Scipion protocols write from the tilt images' metadata)."""
import json
import os

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.cli import main
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles


@pytest.fixture
def series(tmp_path):
    data = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    write_stack(str(tmp_path / "ts.mrcs"), data, 2.0)
    write_angles(str(tmp_path / "ts.tlt"), [-20, -10, 0, 10, 20])
    return tmp_path


def _run(folder, acq, *extra):
    with open(folder / "acq.json", "w") as f:
        json.dump(acq, f)
    return main(["interpolate", "--input", str(folder / "ts.mrcs"), "--angles", str(folder / "ts.tlt"),
                 "--output", str(folder / "out.mrcs"), "--acquisition-json", str(folder / "acq.json"),
                 "--quiet", *extra])


def test_orders_and_doses_reach_the_plan(series):
    # dose-symmetric: 0, 10, -10, 20, -20
    assert _run(series, {"order": [5, 3, 1, 2, 4], "dose": [2, 2, 2, 2, 2],
                         "accum_dose": [8, 4, 0, 2, 6]}) == 0
    plan = json.load(open(series / "out.json"))
    real = [p for p in plan if not p["synthetic"]]
    assert [p["acquisition_order"] for p in real] == [5, 3, 1, 2, 4]
    syn = [p for p in plan if p["synthetic"]]
    assert sorted(p["acquisition_order"] for p in syn) == [6, 7, 8, 9]
    # between -10 (accum 4) and 0 (accum 0), halfway: 2
    mid = [p for p in syn if abs(p["angle"] + 5) < 1e-6][0]
    assert mid["accum_dose"] == pytest.approx(2.0)
    assert mid["dose"] == pytest.approx(2.0)


def test_bad_acquisition_json(series, capsys):
    assert _run(series, {"order": [1, 2, 3]}) == 2
    assert "3 acquisition orders for 5 tilts" in capsys.readouterr().err
    assert _run(series, {"order": ["a", 2, 3, 4, 5]}) == 2
    assert "'order' must be a list of numbers" in capsys.readouterr().err
    assert not os.path.exists(series / "out.mrcs")


def test_acquisition_json_and_mdoc_together_refused(series, capsys):
    (series / "ts.mdoc").write_text("[ZValue = 0]\nTiltAngle = 0\n")
    assert _run(series, {"order": [1, 2, 3, 4, 5]}, "--mdoc", str(series / "ts.mdoc")) == 2
    assert "either --mdoc or --acquisition-json" in capsys.readouterr().err


def test_unknown_keys_refused_not_ignored(series, capsys):
    # a file in another layout (e.g. {"acquisition_order": ...}) used to be ignored without a word
    assert _run(series, {"acquisition_order": [5, 3, 1, 2, 4], "dose_per_tilt": 3.0}) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'acquisition_order', 'dose_per_tilt'" in err
    assert not os.path.exists(series / "out.mrcs")


def test_simulate_writes_an_acquisition_file_interpolate_reads(tmp_path):
    stack = str(tmp_path / "sim.mrc")
    assert main(["simulate", "--output", stack, "--phantom-shape", "16,24,24", "--min-angle", "-6",
                 "--max-angle", "6", "--step", "3", "--dose", "2.5", "--dose-symmetric"]) == 0
    acq = json.load(open(tmp_path / "sim.order.json"))
    # dose-symmetric from 0: 0, +3, -3, +6, -6 (group 2 per side after the first) -> stack order -6..6
    assert sorted(acq["order"]) == [1, 2, 3, 4, 5] and acq["order"][2] == 1
    assert acq["dose"] == [2.5] * 5
    assert main(["interpolate", "--input", stack, "--angles", str(tmp_path / "sim.tlt"), "--output",
                 str(tmp_path / "out.mrc"), "--acquisition-json", str(tmp_path / "sim.order.json"),
                 "--quiet"]) == 0
    real = [p for p in json.load(open(tmp_path / "out.json")) if not p["synthetic"]]
    assert [p["acquisition_order"] for p in real] == acq["order"]
    assert [p["dose"] for p in real] == pytest.approx([2.5] * 5)
    # dose before each image follows the acquisition order
    assert [p["accum_dose"] for p in real] == pytest.approx([2.5 * (o - 1) for o in acq["order"]])
