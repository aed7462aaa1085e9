"""`cryotiger interpolate --method film --fit-minutes M` (issue 12): the fit uses only
the tilts the interpolation uses as inputs (restore mode: the kept ones, never a
tilt it will be scored against; excluded views never), keeps the fitted model
beside the output (reusable with --model) and says what it did."""
import json
import os

import mrcfile
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from cryotiger_scipion.engine.cli import main  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def series(tmp_path):
    from cryotiger_scipion.engine.simulate import phantom_volume, simulate_tilt_series
    angles = np.arange(-30, 31, 5.0)                       # 13 tilts
    data = simulate_tilt_series(phantom_volume((16, 64, 64), n_blobs=12, seed=1), angles)
    write_stack(str(tmp_path / "TS.mrc"), data, 5.0)
    write_angles(str(tmp_path / "TS.tlt"), angles)
    return tmp_path, data, angles


def test_restore_fit_uses_kept_tilts_only_and_keeps_model(series, capsys):
    folder, data, angles = series
    out = folder / "OUT.mrc"
    rc, stdout, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                          "--output", out, "--method", "film", "--fit-minutes", 0.15, "--mode", "restore",
                          "--exclude", "1", "--quiet")
    assert rc == 0, err
    model = folder / "OUT_fitted_film"
    assert (model / "saved_model.pb").is_file()
    rec = json.load(open(model / "cryotiger_fit.json"))
    plan = json.load(open(folder / "OUT.json"))
    kept = sorted(e["input_index"] for e in plan if not e["synthetic"])
    restored = sorted(e["replaces"] for e in plan if e["synthetic"])
    # usable views (view 1 = index 0 excluded) sorted by angle: 1,2,...,12; kept = every second.
    # (An excluded view inside the series would put held-out tilts off the midpoint of
    # their kept neighbours, which FILM refuses in restore mode: issue 10 item 3.)
    assert kept == [1, 3, 5, 7, 9, 11]
    assert rec["views"] == kept
    assert not set(rec["views"]) & set(restored) and 0 not in rec["views"]
    assert rec["triplets"] == len(kept) - 2
    assert rec["steps"] >= 1
    assert rec["patches"]["train"] > 0
    # The summary says what was fitted, from what, how long, and the validation loss.
    line = [l for l in stdout.splitlines() if l.startswith("fitted FILM")][0]
    assert "on 6 tilts" in line and ("from random weights" in line or "from the starter model" in line)
    assert "validation" in line and "steps in" in line
    assert str(model) in line
    with mrcfile.open(out) as m:
        res = np.array(m.data)
    assert res.shape[0] == len(plan) and np.all(np.isfinite(res))
    for e in plan:
        if not e["synthetic"]:
            np.testing.assert_array_equal(res[e["index"]], data[e["input_index"]])

    # The fitted model is reusable: as --model for interpolation, and as the start of another fit.
    rc, stdout, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                          "--output", folder / "AGAIN.mrc", "--method", "film", "--model", model, "--quiet")
    assert rc == 0, err
    rc, stdout, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                          "--output", folder / "ADD.mrc", "--method", "film", "--model", model,
                          "--fit-minutes", 0.1, "--quiet")
    assert rc == 0, err
    rec2 = json.load(open(folder / "ADD_fitted_film" / "cryotiger_fit.json"))
    assert rec2["init"] == str(model) and rec2["views"] == list(range(13))   # add mode: all tilts


@pytest.mark.parametrize("extra, message", [
    (["--method", "linear", "--fit-minutes", "1"], "give --method film"),
    (["--method", "film", "--fit-minutes", "0"], "positive number of minutes"),
    (["--method", "film"], "cryotiger model download"),
])
def test_fit_option_errors_are_one_line(series, capsys, extra, message):
    folder, _, _ = series
    rc, out, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                       "--output", folder / "X.mrc", *extra)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(folder / "X.mrc")


def test_without_model_the_fit_starts_from_the_starter_model(series, capsys, monkeypatch):
    """The starter model shipped in the package (engine/fit.py STARTER_DIR) is the default
    start of --fit-minutes; here a small model stands in for it (the test does not depend
    on whether a starter is shipped)."""
    from cryotiger_scipion.engine import fit
    folder, _, _ = series
    starter = folder / "starter"
    rc, _, err = run(capsys, "model", "init", "--config", "small", "--output", starter, "--seed", 5)
    assert rc == 0, err
    monkeypatch.setattr(fit, "STARTER_DIR", str(starter))
    rc, stdout, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                          "--output", folder / "S.mrc", "--method", "film", "--fit-minutes", 0.1, "--quiet")
    assert rc == 0, err
    rec = json.load(open(folder / "S_fitted_film" / "cryotiger_fit.json"))
    assert rec["init"] == str(starter) and rec["parameters"] == 9355     # the starter's (small) network
    assert "from the starter model shipped with the plugin" in stdout


def test_fit_from_the_shipped_starter_keeps_the_aligned_network(series, capsys):
    """Issue 10 item 2 for the default deep path: a fit keeps its starting model's
    configuration, so the shipped starter must be the aligned network (centred fusion
    upsampling, symmetric flows, symmetry-averaged inference) and so must every model
    fitted from it; identical inputs then come back unshifted.  (The starter shipped
    before the fix was not aligned: a 1-minute fit from it moved case C20's identical
    pair by (0.01, 0.14) px.)"""
    from cryotiger_scipion.engine import fit
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.film.savedmodel import read_config
    from test_film_alignment import _texture, subpixel_shift
    aligned = FilmConfig.from_json(fit.FIT_CONFIG).aligned()
    assert os.path.isfile(os.path.join(fit.STARTER_DIR, "saved_model.pb")), "no starter model shipped"
    assert read_config(fit.STARTER_DIR) == aligned
    folder, _, _ = series
    rc, stdout, err = run(capsys, "interpolate", "--input", folder / "TS.mrc", "--angles", folder / "TS.tlt",
                          "--output", folder / "S.mrc", "--method", "film", "--fit-minutes", 0.1, "--quiet")
    assert rc == 0, err
    model = folder / "S_fitted_film"
    rec = json.load(open(model / "cryotiger_fit.json"))
    assert rec["init"] == fit.STARTER_DIR and "from the starter model shipped with the plugin" in stdout
    assert FilmConfig.from_json(rec["config"]) == aligned
    assert read_config(str(model)) == aligned
    fi = FilmInterpolator(str(model))
    assert fi.model_info["config"] == aligned
    shifts = []
    for seed in range(26, 30):     # 26: the image of case C20
        a = (1.0 + 0.1 * _texture(seed)).astype(np.float32)
        shifts.append(subpixel_shift(fi.interpolate_gaps([(a, a, [0.5])])[0][0], a))
    shifts = np.array(shifts)
    # film-sci's bound per image (test_film_alignment: the residual shift is image-dependent,
    # up to ~0.14 px here), and no systematic shift: the mean over the textures ~0.02 px.
    assert np.all(np.abs(shifts) < 0.25), shifts
    assert np.all(np.abs(shifts.mean(axis=0)) < 0.1), shifts
