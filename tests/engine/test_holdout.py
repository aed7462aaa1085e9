"""`cryotiger holdout`: restore-mode evaluation (issue 6)."""
import importlib.util
import json
import math
import os
import subprocess

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine import metrics as M
from cryotiger_scipion.engine.commands.holdout import method_entries
from cryotiger_scipion.engine.holdout import MethodSpec, kept_files, method_specs, run_holdout
from cryotiger_scipion.engine.formats.mrc import read_stack, write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.simulate import phantom_volume, simulate_tilt_series

from conftest import cryotiger_cmd

ANGLES = np.arange(-30.0, 31.0, 6.0)          # 11 tilts -> 5 held out


@pytest.fixture(scope="module")
def ts(tmp_path_factory):
    d = tmp_path_factory.mktemp("holdout")
    vol = phantom_volume((16, 40, 40), n_blobs=12, seed=1)
    stack = simulate_tilt_series(vol, ANGLES)
    path = str(d / "ts.mrc")
    write_stack(path, stack, pixel_size=10.0)
    write_angles(str(d / "ts.tlt"), ANGLES)
    return path, str(d / "ts.tlt")


def run_cli(args, cwd=None):
    return subprocess.run(cryotiger_cmd() + ["holdout"] + args, capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_contract_report_keys_values_and_plots(ts, tmp_path):
    stack, tlt = ts
    report = tmp_path / "R.json"
    plots = tmp_path / "plots"
    r = run_cli(["--input", stack, "--angles", tlt, "--method", "linear", "--report", str(report),
                 "--plot", str(plots), "--quiet"])
    assert r.returncode == 0, r.stderr
    R = json.loads(report.read_text())
    lin = R["methods"]["linear"]
    for k in ("psnr", "rmse", "ssim"):
        assert len(lin[k]) == 5
        assert lin[f"median_{k}"] == pytest.approx(float(np.median(lin[k])))
    # held-out tilts: every second one, compared at their own angles
    assert R["input_indices"] == [1, 3, 5, 7, 9]
    assert R["angles"] == pytest.approx(list(ANGLES[1::2]))
    # the numbers are the metrics of (mean of neighbours) against the real tilt
    data, _ = read_stack(stack)
    for j, i in enumerate(R["input_indices"]):
        syn = 0.5 * data[i - 1] + 0.5 * data[i + 1]
        rng = float(np.ptp(data[i]))
        assert R["data_range"][j] == pytest.approx(rng, rel=1e-6)
        assert lin["rmse"][j] == pytest.approx(M.rmse(syn, data[i]), rel=1e-5)
        assert lin["psnr"][j] == pytest.approx(M.psnr(syn, data[i], rng), rel=1e-5)
        assert lin["ssim"][j] == pytest.approx(M.ssim(syn, data[i], rng), rel=1e-5)
    assert 0 < lin["median_ssim"] < 1
    for name in ("holdout_boxplots.png", "holdout_psnr.png", "holdout_rmse.png",
                 "holdout_ssim.png", "holdout_per_tilt.png"):
        p = plots / name
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_linear_is_exact_on_linearly_varying_tilts(tmp_path):
    # image(angle) = A + angle * B: the neighbours' mean IS the held-out tilt.
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(24, 24)), rng.normal(size=(24, 24))
    angles = np.arange(-8.0, 9.0, 2.0)
    stack = np.stack([A + a / 10.0 * B for a in angles]).astype(np.float64)
    # exact in float32 arithmetic: use values on a coarse grid
    stack = (np.round(stack * 64) / 64).astype(np.float32)
    stack[1::2] = 0.5 * stack[0:-1:2] + 0.5 * stack[2::2]
    write_stack(str(tmp_path / "lin.mrc"), stack, 5.0)
    R = run_holdout(str(tmp_path / "lin.mrc"), [MethodSpec("linear", "linear")], angles=angles,
                    report_path=str(tmp_path / "R.json"), progress=False)
    lin = R["methods"]["linear"]
    assert all(v == math.inf for v in lin["psnr"]) and lin["median_psnr"] == math.inf
    assert lin["rmse"] == [0.0] * 4
    assert lin["ssim"] == pytest.approx([1.0] * 4)
    # inf survives the JSON round trip
    assert json.loads((tmp_path / "R.json").read_text())["methods"]["linear"]["median_psnr"] == math.inf


def test_two_methods_names_and_paired_tests(ts, tmp_path):
    stack, tlt = ts
    R = run_holdout(stack, method_specs([{"method": "linear"}, {"method": "linear", "name": "lin-b"}]),
                    angles_path=tlt, data_range="robust", progress=False)
    assert list(R["methods"]) == ["linear", "lin-b"]
    assert R["methods"]["linear"]["psnr"] == R["methods"]["lin-b"]["psnr"]
    assert R["data_range_mode"] == "robust"
    data, _ = read_stack(stack)
    assert R["data_range"][0] == pytest.approx(M.robust_data_range(data[1]), rel=1e-6)
    tests = {(t["a"], t["b"], t["metric"]): t for t in R["paired_tests"]}
    assert set(tests) == {("linear", "lin-b", m) for m in ("psnr", "rmse", "ssim")}
    assert tests[("linear", "lin-b", "psnr")]["n"] == 5
    assert tests[("linear", "lin-b", "psnr")]["mean_diff"] == 0.0


def test_method_naming_rules():
    e = method_entries([("method", "linear"), ("method", "film"), ("model", "/m1"),
                        ("method", "film"), ("model", "/m2"), ("method", "film"),
                        ("name", "vimeo"), ("model", "/m3")])
    assert e == [{"method": "linear"}, {"method": "film", "model": "/m1"},
                 {"method": "film", "model": "/m2"},
                 {"method": "film", "name": "vimeo", "model": "/m3"}]
    assert [s.name for s in method_specs(e)] == ["linear", "film", "film-2", "vimeo"]
    # --model before --method attaches to the next method
    assert method_entries([("model", "/m"), ("method", "film")]) == [{"method": "film", "model": "/m"}]
    with pytest.raises(InputError, match="needs --model"):
        method_specs([{"method": "film"}])
    with pytest.raises(InputError, match="given twice"):
        method_specs([{"method": "linear", "name": "a"}, {"method": "film", "model": "/m", "name": "a"}])
    with pytest.raises(InputError, match="not followed by a --method"):
        method_entries([("method", "linear"), ("name", "x"), ("name", "y")])
    with pytest.raises(InputError, match="after --method film"):
        method_specs([{"method": "linear", "model": "/m"}])


def test_cli_user_errors_exit_2(ts, tmp_path):
    stack, tlt = ts
    r = run_cli(["--input", stack, "--angles", tlt, "--method", "film", "--report", str(tmp_path / "R.json")])
    assert r.returncode == 2 and "--model" in r.stderr
    r = run_cli(["--input", stack, "--angles", tlt, "--method", "linear", "--data-range", "huge",
                 "--report", str(tmp_path / "R.json")])
    assert r.returncode == 2 and "huge" in r.stderr
    assert not (tmp_path / "R.json").exists()


def _film_available():
    return importlib.util.find_spec("cryotiger_scipion.engine.film.inference") is not None


@pytest.mark.skipif(not _film_available(), reason="FILM interpolator (engine/film/inference.py) "
                    "not in this checkout yet")
def test_linear_and_random_film_side_by_side(ts, tmp_path):
    stack, tlt = ts
    model = tmp_path / "model"
    r = subprocess.run(cryotiger_cmd() + ["model", "init", "--config", "small", "--output", str(model)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"'cryotiger model init' is not available yet: {r.stderr.strip()[-200:]}")
    report = tmp_path / "R.json"
    r = run_cli(["--input", stack, "--angles", tlt, "--method", "linear", "--method", "film",
                 "--model", str(model), "--report", str(report), "--plot", str(tmp_path / "p"),
                 "--quiet"])
    assert r.returncode == 0, r.stderr
    R = json.loads(report.read_text())
    assert list(R["methods"]) == ["linear", "film"]
    assert len(R["methods"]["film"]["psnr"]) == 5
    assert R["methods"]["film"]["model"] == str(model)
    assert any(t["a"] == "linear" and t["b"] == "film" for t in R["paired_tests"])


@pytest.mark.skipif(not _film_available(), reason="FILM interpolator not in this checkout")
def test_film_confidence_is_scored_against_the_real_error(ts, tmp_path):
    """Issue 13: for a method with confidence maps the report ranks them against
    the real error: per tilt the map's mean, per pixel Spearman(map, |syn - real|),
    recomputed here from the kept restored stack and its OUT_confidence.mrc."""
    from scipy.stats import spearmanr
    stack, tlt = ts
    model = tmp_path / "model"
    assert subprocess.run(cryotiger_cmd() + ["model", "init", "--config", "small", "--output", str(model),
                                             "--seed", "2"], capture_output=True, timeout=300).returncode == 0
    keep = tmp_path / "keep"
    r = run_cli(["--input", stack, "--angles", tlt, "--method", "linear", "--method", "film",
                 "--model", str(model), "--report", str(tmp_path / "R.json"), "--keep", str(keep), "--quiet"])
    assert r.returncode == 0, r.stderr
    R = json.loads((tmp_path / "R.json").read_text())
    assert "confidence" not in R["methods"]["linear"]          # linear writes no map
    film = R["methods"]["film"]
    maps, _ = read_stack(str(keep / "02_film_confidence.mrc"))
    syn, _ = read_stack(str(keep / "02_film.mrc"))
    real, _ = read_stack(stack)
    idx = R["input_indices"]
    out_rows = [i for i in range(syn.shape[0]) if maps[i].min() < 1.0]   # synthetic slices
    assert len(out_rows) == len(idx) == len(film["confidence"]) == 5
    from cryotiger_scipion.engine.film.confidence import noise_sigma
    rhos, means, errs, excess, relative = [], [], [], [], []
    for row, i in zip(out_rows, idx):
        err = np.abs(syn[row].astype(np.float64) - real[i])
        rhos.append(spearmanr(maps[row].ravel(), err.ravel()).correlation)
        means.append(float(maps[row].mean()))
        errs.append(float(err.mean()))
        excess.append(float(np.mean(err ** 2)) - noise_sigma(real[i]) ** 2)
        relative.append(float(err.mean()) / float(real[i].max() - real[i].min()))   # --data-range tilt
    assert R["data_range"] == pytest.approx([float(real[i].max() - real[i].min()) for i in idx])
    assert film["confidence_rho_tilt_relative"] == pytest.approx(spearmanr(means, relative).correlation)
    np.testing.assert_allclose(film["excess_mse"], excess, rtol=1e-6)
    assert film["confidence_rho_tilt_excess"] == pytest.approx(spearmanr(means, excess).correlation)
    np.testing.assert_allclose(film["confidence_rho_pixel"], rhos, atol=1e-9)
    np.testing.assert_allclose(film["confidence"], means, rtol=1e-6)
    assert film["median_confidence_rho_pixel"] == pytest.approx(float(np.median(rhos)))
    assert film["confidence_rho_tilt"] == pytest.approx(spearmanr(means, errs).correlation)
    assert sorted(os.listdir(keep)) == sorted(os.path.basename(p) for p in
                                              kept_files(str(keep), ["linear", "film"], ["linear", "film"]))


def test_xf_aligns_real_tilts_before_comparison(tmp_path):
    # Aligned tilts vary linearly with angle (linear restore is exact); the raw images
    # are shifted by a different whole number of pixels each, undone by the .xf.
    from cryotiger_scipion.engine.formats.xf import write_xf
    rng = np.random.default_rng(7)
    angles = np.arange(-8.0, 9.0, 2.0)
    A = np.zeros((32, 32)); B = np.zeros((32, 32))  # noqa: E702
    A[6:26, 6:26] = np.round(rng.normal(size=(20, 20)) * 16) / 16
    B[6:26, 6:26] = np.round(rng.normal(size=(20, 20)) * 16) / 16
    aligned = np.stack([A + (k / 4.0) * B for k in range(len(angles))]).astype(np.float32)
    aligned[1::2] = 0.5 * aligned[0:-1:2] + 0.5 * aligned[2::2]
    shifts = [0, 2, -3, 1, 3, -1, 2, -2, 0]
    raw = np.stack([np.roll(im, -s, axis=1) for im, s in zip(aligned, shifts)])
    write_stack(str(tmp_path / "raw.mrc"), raw, 5.0)
    xf = np.array([[[1.0, 0.0, s], [0.0, 1.0, 0.0]] for s in shifts])
    write_xf(str(tmp_path / "raw.xf"), xf)
    write_angles(str(tmp_path / "raw.tlt"), angles)
    report = tmp_path / "R.json"
    r = run_cli(["--input", str(tmp_path / "raw.mrc"), "--angles", str(tmp_path / "raw.tlt"),
                 "--xf", str(tmp_path / "raw.xf"), "--method", "linear", "--report", str(report),
                 "--quiet"])
    assert r.returncode == 0, r.stderr
    lin = json.loads(report.read_text())["methods"]["linear"]
    assert max(lin["rmse"]) < 1e-6
    # without the transforms the shifted raw tilts do not match their neighbours' mean
    R = run_holdout(str(tmp_path / "raw.mrc"), [MethodSpec("linear", "linear")], angles=angles,
                    progress=False)
    assert min(R["methods"]["linear"]["rmse"]) > 0.1


def test_combine_reports_pools_series(ts):
    from cryotiger_scipion.engine.holdout import combine_reports
    stack, tlt = ts
    r1 = run_holdout(stack, method_specs([{"method": "linear"}, {"method": "linear", "name": "b"}]),
                     angles_path=tlt, progress=False)
    r2 = json.loads(json.dumps(r1))
    r2["methods"]["b"]["psnr"] = [v + 1.0 for v in r2["methods"]["b"]["psnr"]]
    C = combine_reports({"TS_01": r1, "TS_02": r2})
    assert C["methods"]["linear"]["series"] == ["TS_01"] * 5 + ["TS_02"] * 5
    assert C["methods"]["linear"]["psnr"] == r1["methods"]["linear"]["psnr"] * 2
    assert C["methods"]["b"]["median_psnr"] == pytest.approx(
        float(np.median(r1["methods"]["b"]["psnr"] + r2["methods"]["b"]["psnr"])))
    t = [x for x in C["paired_tests"] if x["metric"] == "psnr"][0]
    assert t["n"] == 10 and t["mean_diff"] == pytest.approx(-0.5)
    assert set(C["per_series"]) == {"TS_01", "TS_02"}


def test_defocus_difference_with_builtin_ctf(tmp_path):
    # Constant 2 um underfocus: real tilts fit ~20000 A, and the mean of two neighbours
    # with the same CTF keeps it (paper: linear ~50 nm median |dz|).
    from cryotiger_scipion.engine.simulate import Acquisition
    angles = np.arange(-12.0, 13.0, 4.0)
    vol = phantom_volume((24, 128, 128), n_blobs=200, seed=2)
    stack = simulate_tilt_series(vol, angles, Acquisition(pixel_size=4.0, defocus=[20000.0] * 7))
    write_stack(str(tmp_path / "dz.mrc"), stack, 4.0)
    write_angles(str(tmp_path / "dz.tlt"), angles)
    report = tmp_path / "R.json"
    r = run_cli(["--input", str(tmp_path / "dz.mrc"), "--angles", str(tmp_path / "dz.tlt"),
                 "--method", "linear", "--defocus", "--defocus-min", "5000", "--defocus-max", "40000",
                 "--report", str(report), "--plot", str(tmp_path / "p"), "--quiet"])
    assert r.returncode == 0, r.stderr
    R = json.loads(report.read_text())
    assert R["metrics"] == ["psnr", "rmse", "ssim", "defocus_diff"]
    assert len(R["defocus_real"]) == 3
    assert all(abs(d - 20000) < 1000 for d in R["defocus_real"])
    lin = R["methods"]["linear"]
    assert len(lin["defocus_diff"]) == 3 and max(lin["defocus_diff"]) < 500
    assert lin["median_defocus_diff"] == pytest.approx(float(np.median(lin["defocus_diff"])))
    assert (tmp_path / "p" / "holdout_defocus_diff.png").exists()


def test_rerun_with_the_report_beside_the_stack_works_but_a_real_record_stays_protected(ts, tmp_path):
    """A hold-out report named like the stack (ts.json beside ts.mrc) is not an
    interpolation record: the same command runs again and replaces it.  A real
    OUT.json beside an interpolated stack stays an input and is refused."""
    import shutil
    stack, tlt = ts
    s = tmp_path / "b2.mrc"
    shutil.copy(stack, s)
    shutil.copy(tlt, tmp_path / "b2.tlt")
    for _ in range(2):
        r = run_cli(["--input", str(s), "--angles", str(tmp_path / "b2.tlt"), "--method", "linear",
                     "--report", str(tmp_path / "b2.json"), "--quiet"])
        assert r.returncode == 0, r.stderr
        assert "methods" in json.loads((tmp_path / "b2.json").read_text())
    r = subprocess.run(cryotiger_cmd() + ["interpolate", "--input", str(s), "--angles", str(tmp_path / "b2.tlt"),
                                          "--method", "linear", "--output", str(tmp_path / "o.mrc"), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    record = (tmp_path / "o.json").read_bytes()
    r = run_cli(["--input", str(tmp_path / "o.mrc"), "--angles", str(tmp_path / "o.tlt"), "--method", "linear",
                 "--report", str(tmp_path / "o.json"), "--quiet"])
    assert r.returncode == 2 and "replace the input" in r.stderr
    assert (tmp_path / "o.json").read_bytes() == record


@pytest.mark.skipif(not _film_available(), reason="FILM interpolator not in this checkout")
def test_confidence_correlations_of_a_constant_series_are_null_not_nan(tmp_path):
    """Constant tilts: every correlation is undefined and written as null (strict
    JSON), and the table says 'undefined'."""
    stack = tmp_path / "c.mrc"
    write_stack(str(stack), np.full((7, 32, 32), 5.0, np.float32), pixel_size=10.0)
    write_angles(str(tmp_path / "c.tlt"), [-9, -6, -3, 0, 3, 6, 9])
    model = tmp_path / "model"
    assert subprocess.run(cryotiger_cmd() + ["model", "init", "--config", "small", "--output", str(model)],
                          capture_output=True, timeout=300).returncode == 0
    r = run_cli(["--input", str(stack), "--angles", str(tmp_path / "c.tlt"), "--method", "film", "--model",
                 str(model), "--data-range", "1", "--report", str(tmp_path / "R.json")])
    assert r.returncode == 0, r.stderr

    film = json.loads((tmp_path / "R.json").read_text())["methods"]["film"]
    for key in ("confidence_rho_tilt", "confidence_rho_tilt_excess", "confidence_rho_tilt_relative",
                "median_confidence_rho_pixel"):
        assert film[key] is None or math.isfinite(film[key]), key
    assert all(v is None or math.isfinite(v) for v in film["confidence_rho_pixel"])
    assert film["confidence_rho_tilt"] is None and film["confidence_rho_tilt_excess"] is None
    assert all(v is None for v in film["confidence_rho_pixel"]) or film["median_confidence_rho_pixel"] is not None
    assert "undefined" in r.stdout
