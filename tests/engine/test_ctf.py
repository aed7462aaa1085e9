"""Built-in CTF estimation on tilt series simulated with known defocus and
dose noise (engine.simulate), and the `cryotiger ctf` contract.

Specimen: phantom blobs plus a fine random texture (ice and protein give
Thon rings in real data); 2.5 A/px, 3 e/A^2 per tilt, 300 kV."""
import json
import os
import subprocess

import numpy as np
import pytest
from scipy import ndimage

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine import ctf
from cryotiger_scipion.engine.formats.ctf_json import read_ctf_json, write_ctf_json
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.simulate import Acquisition, phantom_volume, simulate_tilt_series

from conftest import cryotiger_cmd

PX = 2.5
SCOPE = ctf.Microscope(pixel_size=PX, voltage=300.0, cs=2.7, amp_contrast=0.07)


def textured_volume(shape, seed=0, blobs=60):
    vol = phantom_volume(shape, n_blobs=blobs, seed=seed)
    rng = np.random.default_rng(seed + 100)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.6)
    return vol + 0.5 * tex / tex.std()


@pytest.fixture(scope="module")
def volume512():
    return textured_volume((16, 512, 512), seed=1)


@pytest.fixture(scope="module")
def series(volume512):
    angles = np.arange(-60, 61, 10.0)
    defocus = 30000 + 4000 * np.sin(0.9 * np.arange(len(angles)))     # 2.6..3.4 um
    acq = Acquisition(pixel_size=PX, defocus=defocus, dose_per_tilt=3.0, seed=2)
    return angles, defocus, simulate_tilt_series(volume512, angles, acq)


def test_median_defocus_error_below_50nm(series):
    angles, defocus, ts = series
    results = ctf.estimate_stack(ts, angles, SCOPE, ctf.FitOptions(), progress=False)
    assert len(results) == len(angles)
    err = np.abs(np.array([r.defocus for r in results]) - defocus)
    assert np.median(err) < 250.0, err          # 25 nm (measured 133 A)
    assert np.all(err < 400.0), err              # every tilt (measured at most 270 A)
    for r, a in zip(results, angles):
        assert r.angle == a
        assert r.defocus_u >= r.defocus_v
        assert 0 <= r.astig_angle < 180
        assert -1 <= r.fit_score <= 1 and r.fit_score > 0.05
        assert 2 * PX <= r.resolution <= 50.0
    # the simulated astigmatism is zero: the series fit reports none (issue 10 item 7;
    # before, the astigmatism of a noise fit was reported)
    assert all(r.defocus_u == r.defocus_v for r in results)


def test_astigmatism_recovered(volume512):
    angles = np.arange(-30, 31, 10.0)
    defocus = np.full(len(angles), 25000.0)
    acq = Acquisition(pixel_size=PX, defocus=defocus, dose_per_tilt=3.0, astigmatism=1500.0,
                      astig_angle=30.0, seed=3)
    ts = simulate_tilt_series(volume512, angles, acq)
    results = ctf.estimate_stack(ts, angles, SCOPE, ctf.FitOptions(), progress=False)
    astig = np.array([r.defocus_u - r.defocus_v for r in results])
    ang = np.array([r.astig_angle for r in results])
    assert np.all(np.abs(astig - 1500) < 200), astig          # measured 1405 A
    assert np.all(np.abs((ang - 30 + 90) % 180 - 90) < 5), ang  # measured 28.1 degrees
    err = np.abs(np.array([r.defocus for r in results]) - defocus)
    assert np.all(err < 300), err                             # measured at most 199 A
    # per-tilt astigmatism (each image alone) also finds it on the clearest tilt
    one = ctf.estimate_image(ts[3], SCOPE, ctf.FitOptions(), angle=0.0)
    assert abs((one.defocus_u - one.defocus_v) - 1500) < 200       # measured 1556 A
    assert abs((one.astig_angle - 30 + 90) % 180 - 90) < 5
    # and the 'none' mode reports none
    flat = ctf.estimate_stack(ts[:3], angles[:3], SCOPE, ctf.FitOptions(astigmatism_mode="none"),
                              progress=False)
    assert all(r.defocus_u == r.defocus_v for r in flat)


@pytest.fixture(scope="module")
def gradient_tilt():
    """One 60-degree tilt with the defocus gradient, cropped from a wide slab so
    that the specimen fills the field of view (5 A/px, 512 px)."""
    rng = np.random.default_rng(5)
    vol = ndimage.gaussian_filter(rng.standard_normal((12, 256, 1024)).astype(np.float32), 0.6)
    ts = simulate_tilt_series(vol, [60.0], Acquisition(pixel_size=5.0, defocus=[30000.0],
                                                       dose_per_tilt=3.0, defocus_gradient=True))
    return ts[0][:, 256:768]


def test_defocus_gradient(gradient_tilt):
    scope = ctf.Microscope(pixel_size=5.0)
    opts = ctf.FitOptions(tile_size=128)
    # strips fitted independently follow defocus + x tan(60)
    x, dz = ctf.estimate_strips(gradient_tilt, scope, opts, angle=60.0, n_strips=4)
    slope, intercept = np.polyfit(x, dz, 1)
    assert abs(slope - np.tan(np.radians(60))) < 0.35, (x, dz)
    assert abs(intercept - 30000) < 500
    # the gradient model picks the right sign and a better fit than the wrong one
    g = ctf.FitOptions(tile_size=128, defocus_gradient=True)
    auto = ctf.estimate_image(gradient_tilt, scope, g, angle=60.0)
    assert auto.gradient_sign == 1
    assert abs(auto.defocus - 30000) < 500
    wrong = ctf.estimate_image(gradient_tilt, scope,
                               ctf.FitOptions(tile_size=128, defocus_gradient=True, gradient_sign=-1),
                               angle=60.0)
    assert auto.fit_score > wrong.fit_score
    d = auto.to_json()
    assert d["gradient_sign"] == 1 and len(d["strip_defocus"]) == len(d["strip_x"]) >= 2
    assert d["strip_defocus"][-1] > d["strip_defocus"][0]


def test_options_are_checked():
    with pytest.raises(InputError, match="res-min"):
        ctf.FitOptions(res_min=8, res_max=10).check(PX)
    with pytest.raises(InputError, match="Nyquist"):
        ctf.FitOptions(res_max=3).check(PX)
    with pytest.raises(InputError, match="defocus range"):
        ctf.FitOptions(defocus_min=50000, defocus_max=10000).check(PX)
    with pytest.raises(InputError, match="pixel size"):
        ctf.Microscope(pixel_size=0).check()
    with pytest.raises(InputError, match="tile size"):
        ctf.estimate_image(np.zeros((64, 64)), SCOPE, ctf.FitOptions(tile_size=128))


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctfcli")
    angles = np.array([-20.0, -10.0, 0.0, 10.0, 20.0])
    vol = textured_volume((12, 256, 256), seed=4, blobs=20)
    ts = simulate_tilt_series(vol, angles, Acquisition(pixel_size=PX, defocus=[30000.0] * 5,
                                                       dose_per_tilt=10.0, seed=4))
    stack = str(d / "ts.mrc")
    write_stack(stack, ts, PX)
    write_angles(str(d / "ts.tlt"), angles)
    return d, stack, str(d / "ts.tlt")


def test_cli_contract(small_stack):
    d, stack, tlt = small_stack
    out = str(d / "CTF.json")
    plan = str(d / "out.json")
    with open(plan, "w") as f:
        json.dump([{"angle": a, "synthetic": i % 2 == 1} for i, a in
                   enumerate([-20.0, -10.0, 0.0, 10.0, 20.0])], f)
    r = subprocess.run(cryotiger_cmd() + ["ctf", "--input", stack, "--angles", tlt, "--pixel-size",
                                          str(PX), "--voltage", "300", "--cs", "2.7",
                                          "--amp-contrast", "0.07", "--output", out, "--plan", plan],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "tilt 5/5" in r.stderr                       # progress per tilt
    data = json.load(open(out))
    assert isinstance(data, list) and len(data) == 5
    assert [e["angle"] for e in data] == [-20.0, -10.0, 0.0, 10.0, 20.0]
    for e in data:
        for k in ("angle", "defocus_u", "defocus_v", "astig_angle", "defocus", "fit_score",
                  "resolution", "synthetic"):
            assert k in e
        assert e["defocus_u"] >= e["defocus_v"]
    assert [e["synthetic"] for e in data] == [False, True, False, True, False]
    assert np.median([abs(e["defocus"] - 30000) for e in data]) < 1000


def test_cli_errors(small_stack, tmp_path):
    d, stack, tlt = small_stack
    bad_tlt = str(tmp_path / "bad.tlt")
    write_angles(bad_tlt, [0.0, 10.0])
    r = subprocess.run(cryotiger_cmd() + ["ctf", "--input", stack, "--angles", bad_tlt,
                                          "--output", str(tmp_path / "c.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "5 images in the stack but 2 angles" in r.stderr
    env = dict(os.environ, CRYOTIGER_GCTF_BIN="", GCTF_HOME="", PATH="/usr/bin:/bin")
    r = subprocess.run(cryotiger_cmd() + ["ctf", "--input", stack, "--angles", tlt, "--backend", "gctf",
                                          "--output", str(tmp_path / "c.json")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "CRYOTIGER_GCTF_BIN" in r.stderr
    assert not os.path.exists(tmp_path / "c.json")


def test_ctf_json_roundtrip(tmp_path):
    res = ctf.CtfResult(defocus_u=31000, defocus_v=29000, astig_angle=45, fit_score=0.3,
                        resolution=float("nan"), angle=12.0)
    path = str(tmp_path / "c.json")
    write_ctf_json(path, ctf.results_to_json([res], [True]))
    back = read_ctf_json(path, n_tilts=1)
    assert back[0]["defocus"] == 30000 and back[0]["resolution"] is None and back[0]["synthetic"]
    with pytest.raises(InputError, match="2 images"):
        read_ctf_json(path, n_tilts=2)
    assert ctf.normalise_astigmatism(100, 200, 170) == (200.0, 100.0, 80.0)


def test_ctf_json_one_reader_for_every_consumer(tmp_path):
    """CTF.json has one reader (engine/formats/ctf_json.py): reconstruct and export get
    the same per-tilt values from it.  V > U is the same CTF with U and V
    swapped and the angle turned by 90 degrees; a tilt marked not estimated (or
    a null entry) has no defocus; an unusable defocus of a used tilt is refused."""
    from cryotiger_scipion.engine.reconstruct import load_ctf_settings
    path = str(tmp_path / "c.json")
    entries = [{"angle": -3.0, "defocus_u": 20000.0, "defocus_v": 21000.0, "astig_angle": 170.0},
               {"angle": 0.0, "defocus_u": None, "defocus_v": None, "astig_angle": None,
                "estimated": False},
               None,
               {"angle": 3.0, "defocus_u": 30000.0, "acquisition_order": 2}]
    write_ctf_json(path, entries)
    back = read_ctf_json(path, n_tilts=4)
    assert (back[0]["defocus_u"], back[0]["defocus_v"], back[0]["astig_angle"]) == (21000.0, 20000.0,
                                                                                   80.0)
    assert back[1]["defocus_u"] is None and back[1]["estimated"] is False
    assert back[2]["defocus_u"] is None and back[2]["angle"] is None
    assert (back[3]["defocus_v"], back[3]["astig_angle"], back[3]["acquisition_order"]) == (
        30000.0, 0.0, 2)
    settings = load_ctf_settings(path, 4, angles=[-3.0, 0.0, 1.5, 3.0], keep=[0, 3])
    assert list(settings.defocus_u)[::3] == [21000.0, 30000.0]
    assert list(settings.astig_angle)[::3] == [80.0, 0.0]
    assert np.isnan(settings.defocus_u[1]) and np.isnan(settings.defocus_u[2])
    with pytest.raises(InputError, match="not estimated"):
        settings.subset([0, 1])
    entries[3]["defocus_u"] = float("nan")
    with open(path, "w") as f:
        json.dump(entries, f)
    with pytest.raises(InputError, match="entry 4 has defocus_u"):
        read_ctf_json(path)
    assert read_ctf_json(path, used=[0])[3]["defocus_u"] is None   # tilt 4 not used: not checked

