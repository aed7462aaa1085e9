"""Issue 13: the time-aware FILM model shipped with the plugin (models/film_timeaware,
bench/make_starter.py --time-aware), so that new tilts away from the midpoints of their
gaps work without training first.

Pinned here:
* which plans need a time-aware model (``interpolate.needs_time_aware``): a number of
  new tilts per gap other than 1, 3 or 7, ``--at``, restore over uneven steps;
* ``cryotiger interpolate --method film`` without --model uses the shipped time-aware
  model for such plans (and says so); midpoints still need a model chosen by the user;
* ``--fit-minutes`` without --model starts such plans from the shipped time-aware model;
  a midpoint-only --model is refused before any fitting;
* the shipped model is time-aware, aligned, and beats linear interpolation at t = 1/3 on
  a series re-projected from a real tomogram it was not trained on.
"""
import json
import os

import mrcfile
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from cryotiger_scipion.engine import fit  # noqa: E402
from cryotiger_scipion.engine.cli import main  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402
from cryotiger_scipion.engine.interpolate import needs_time_aware  # noqa: E402
from cryotiger_scipion.engine.plan import make_input_tilts, make_plan  # noqa: E402

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "cylindra_mt")


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def series(tmp_path, angles=(-6, 0, 6, 12)):
    rng = np.random.default_rng(0)
    stack = (rng.normal(0, 1, (len(angles), 64, 96)).cumsum(axis=2) * 3 + 500).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 2.5)
    write_angles(str(tmp_path / "TS.tlt"), list(angles))
    return ["--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt"]


FILM = ["--method", "film", "--tile-size", "128", "--tile-overlap", "64"]


@pytest.mark.parametrize("angles, kwargs, needed", [
    ((-6, 0, 6, 12), dict(per_gap=1), False),
    ((-6, 0, 6, 12), dict(per_gap=3), False),
    ((-6, 0, 6, 12), dict(per_gap=7), False),
    ((-6, 0, 6, 12), dict(per_gap=2), True),
    ((-6, 0, 6, 12), dict(per_gap=4), True),
    ((-6, 0, 6, 12), dict(at=[-3.0]), False),           # exactly a midpoint
    ((-6, 0, 6, 12), dict(at=[-4.5]), True),
    ((-6, -3, 0, 3, 6), dict(mode="restore"), False),   # even steps: the dropped tilts are midpoints
    ((-9, -6, 0, 2, 10), dict(mode="restore"), True),   # t = 1/3 and 0.2
])
def test_which_plans_need_a_time_aware_model(angles, kwargs, needed):
    assert needs_time_aware(make_plan(make_input_tilts(list(angles)), **kwargs)) is needed


def test_an_excluded_view_makes_a_restore_plan_need_time(tmp_path):
    tilts = make_input_tilts([-6, -4, -2, 0, 2, 4, 6], excluded=[2])
    assert needs_time_aware(make_plan(tilts, mode="restore"))
    assert not needs_time_aware(make_plan(make_input_tilts([-6, -4, -2, 0, 2, 4, 6]), mode="restore"))


def test_a_time_aware_model_is_shipped_and_is_the_aligned_time_conditioned_network(capsys):
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.savedmodel import read_config
    assert fit.shipped(fit.TIMEAWARE_DIR), "no time-aware model shipped (bench/make_starter.py --time-aware --install)"
    assert read_config(fit.TIMEAWARE_DIR) == FilmConfig.from_json(fit.FIT_CONFIG).aligned().time_aware()
    rc, out, err = cli(capsys, "model", "info", fit.TIMEAWARE_DIR)
    assert rc == 0 and "time-aware: yes" in out, err
    rec = json.load(open(os.path.join(fit.TIMEAWARE_DIR, "cryotiger_train.json")))
    # trained at least as long as the midpoint-only starter it sits beside
    starter = json.load(open(os.path.join(fit.STARTER_DIR, "cryotiger_train.json")))
    assert rec["step"] >= starter["step"]


def test_without_model_per_gap_2_uses_the_shipped_time_aware_model(tmp_path, capsys):
    inp = series(tmp_path)
    out = tmp_path / "OUT.mrc"
    rc, stdout, err = cli(capsys, "interpolate", *inp, "--output", out, "--per-gap", 2, *FILM)
    assert rc == 0, err
    assert "the time-aware model shipped with the plugin" in stdout
    rec = json.load(open(tmp_path / "OUT.json"))
    syn = [e for e in rec if e["synthetic"]]
    assert [e["angle"] for e in syn] == [-4, -2, 2, 4, 8, 10]
    assert [e["fraction"] for e in syn[:2]] == [pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert all(0.0 < e["confidence"] <= 1.0 for e in syn)
    with mrcfile.open(tmp_path / "OUT_confidence.mrc") as m:
        assert m.data.shape[0] == 10
    # --at, and --quiet says nothing
    rc, stdout, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "AT.mrc", "--at=-4.5,11",
                          *FILM, "--quiet")
    assert rc == 0 and stdout == "", err
    assert [e["angle"] for e in json.load(open(tmp_path / "AT.json")) if e["synthetic"]] == [-4.5, 11]


def test_without_model_midpoints_still_need_a_chosen_model(tmp_path, capsys):
    inp = series(tmp_path)
    for k in (1, 3):
        rc, _, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "M.mrc", "--per-gap", k, *FILM)
        assert rc == 2 and "--method film needs --model DIR" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "M.mrc").exists()


def test_fit_with_a_midpoint_model_is_refused_before_fitting_when_the_plan_needs_time(tmp_path, capsys):
    inp = series(tmp_path)
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "F.mrc", "--at=-4.5",
                     "--model", fit.STARTER_DIR, "--fit-minutes", 5, *FILM)
    assert rc == 2 and "midpoint-only" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["TS.mrc", "TS.tlt"]      # nothing fitted, nothing written


def test_fit_without_model_starts_a_time_plan_from_the_shipped_time_aware_model(tmp_path, capsys):
    inp = series(tmp_path, angles=(-9, -6, -3, 0, 3, 6, 9))
    rc, stdout, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "F.mrc", "--per-gap", 2,
                          "--fit-minutes", 0.1, *FILM)
    assert rc == 0, err
    rec = json.load(open(tmp_path / "F_fitted_film" / "cryotiger_fit.json"))
    assert rec["init"] == fit.TIMEAWARE_DIR and "from the time-aware model shipped with the plugin" in stdout
    assert rec["config"]["time_conditioning"] is True
    syn = [e for e in json.load(open(tmp_path / "F.json")) if e["synthetic"]]
    assert [e["fraction"] for e in syn[:2]] == [pytest.approx(1 / 3), pytest.approx(2 / 3)]


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data (real tomograms) not present")
def test_shipped_time_aware_model_beats_linear_at_one_third_on_an_unseen_real_tomogram():
    """Restore at t = 1/3 (keep every 3rd tilt of 2-degree steps) of a series re-projected
    from the real 13pf_MT tomogram (the model was trained on 14pf_MT), Poisson noise at
    1.5 e/A^2 per tilt; PSNR against the noise-free projections."""
    from cryotiger_scipion.engine.film.inference import FilmInterpolator
    from cryotiger_scipion.engine.interpolate import LinearInterpolator
    from cryotiger_scipion.engine.metrics import psnr
    from cryotiger_scipion.engine.simulate import Acquisition, load_volume, simulate_tilt_series
    vol = load_volume(os.path.join(SHARED, "13pf_MT.tif"))[0]
    angles = np.arange(-12, 12.1, 2.0)
    acq = dict(pixel_size=10.52, dose_per_tilt=1.5, seed=3)
    noisy = simulate_tilt_series(vol, angles, Acquisition(**acq))
    clean = simulate_tilt_series(vol, angles, Acquisition(**acq, poisson=False))
    film = FilmInterpolator(fit.TIMEAWARE_DIR, log=lambda m: None)
    lin = LinearInterpolator()
    gains = []
    for i in range(0, len(angles) - 3, 3):
        gap = [(noisy[i], noisy[i + 3], [1 / 3])]
        truth = clean[i + 1]
        rng = (float(truth.min()), float(truth.max()))
        f = psnr(film.interpolate_gaps(gap)[0][0], truth, data_range=rng[1] - rng[0])
        li = psnr(lin.interpolate_gaps(gap)[0][0], truth, data_range=rng[1] - rng[0])
        gains.append(f - li)
    assert min(gains) > 3.0, gains
