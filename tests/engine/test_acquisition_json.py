"""`cryotiger interpolate --acquisition-json`: per-image order and dose from a
JSON file (what the Scipion protocols write from the tilt images' metadata)."""
import json
import os

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.cli import main
from cryotiger_scipion.engine.io import write_angles, write_stack


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
