"""Built-in reconstruction (WBP, 2D/3D CTF correction), the novaCTF wrapper and
the `cryotiger reconstruct` contract (issue 5)."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine import reconstruct as R
from cryotiger_scipion.engine.interpolate import LinearInterpolator, describe_input, run_interpolation
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.record import experimental_views
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.simulate import phantom_volume, simulate_thick_ctf, simulate_tilt_series
from conftest import cryotiger_cmd


def cc(a, b):
    a = np.asarray(a, float) - np.mean(a)
    b = np.asarray(b, float) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def band(v, lo, hi):
    f = np.sqrt(sum(g ** 2 for g in np.meshgrid(*[np.fft.fftfreq(s) for s in v.shape], indexing="ij")))
    return np.real(np.fft.ifftn(np.fft.fftn(v) * ((f >= lo) & (f < hi))))


def dots(shape, n, seed=0):
    """``n`` small Gaussian dots (sigma 0.6 pixel): power up to Nyquist."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    v = np.zeros(shape, np.float32)
    pos = (rng.uniform(0.1, 0.9, (n, 3)) * np.array(shape)).astype(int)
    np.add.at(v, tuple(pos.T), 1.0)
    return ndimage.gaussian_filter(v, 0.6)


def run(*args):
    return subprocess.run(cryotiger_cmd() + list(args), capture_output=True, text=True)


ANGLES = np.arange(-60, 60.1, 3.0)


# --- geometry ---------------------------------------------------------------
def test_reconstruction_matches_simulator_geometry():
    vol = phantom_volume((24, 40, 48), seed=1)
    ts = simulate_tilt_series(vol, ANGLES)
    rec, px = R.reconstruct(ts, ANGLES, 24, 10.0)
    assert rec.shape == (24, 40, 48) and rec.dtype == np.float32 and px == 10.0
    good = cc(rec, -vol)                      # images are 1 - projection: density is dark
    assert good > 0.78
    # The opposite tilt sense (u = x cos - z sin) must be clearly worse.
    assert cc(R.reconstruct(ts, -ANGLES, 24, 10.0)[0], -vol) < good - 0.2


def test_single_ball_lands_at_its_position():
    vol = np.zeros((20, 24, 40), np.float32)
    z, y, x = np.meshgrid(np.arange(20), np.arange(24), np.arange(40), indexing="ij")
    vol += np.exp(-((z - 5) ** 2 + (y - 17) ** 2 + (x - 29) ** 2) / 2.0)
    rec, _ = R.reconstruct(simulate_tilt_series(vol, ANGLES), ANGLES, 20, 1.0)
    assert np.unravel_index(np.argmin(rec), rec.shape) == (5, 17, 29)


def test_filters_and_weights():
    f = np.fft.rfftfreq(256)
    ramp = R.radial_filter(256, "ramp", 0.5, 0.0)
    mid = (f > 0.05) & (f < 0.45)
    assert np.allclose(ramp[mid], f[mid], rtol=0.05)
    assert 0 < ramp[0] < ramp[1]                           # Ram-Lak keeps the mean
    cut = R.radial_filter(256, "ramp", 0.25, 0.0)
    assert np.all(cut[f > 0.25] == 0) and cut[10] > 0
    soft = R.radial_filter(256, "hamming", 0.3, 0.05)
    assert np.all(soft <= ramp + 1e-6) and soft[f > 0.3][0] > 0
    w = R.angular_weights([0, -3, 3, 6])
    assert w.tolist() == pytest.approx(np.deg2rad([3, 3, 3, 3]))
    assert R.angular_weights([-6, 0, 1.5, 3, 6]) == pytest.approx(np.deg2rad([6, 3.75, 1.5, 2.25, 3]))
    with pytest.raises(InputError, match="cutoff"):
        R.radial_filter(64, "ramp", 0.8, 0.1)


# --- CTF ----------------------------------------------------------------------
def test_ctf_correction_beats_none_at_high_defocus():
    vol = phantom_volume((32, 32, 48), n_blobs=40, seed=2)
    px, df = 2.0, 50000.0
    ts = simulate_thick_ctf(vol, ANGLES, px, [df] * len(ANGLES))
    ctf = R.CtfSettings([df] * len(ANGLES), [df] * len(ANGLES), [0.0] * len(ANGLES))
    res = {c: cc(R.reconstruct(ts, ANGLES, 32, px, ctf=ctf, correction=c, radial=(0.5, 0))[0], -vol)
           for c in ("none", "phaseflip", "3d")}
    assert res["3d"] > res["none"] + 0.15, res
    assert res["phaseflip"] > res["none"] + 0.15, res
    mult = cc(R.reconstruct(ts, ANGLES, 32, px, ctf=ctf, correction="3d", ctf_mode="multiply")[0], -vol)
    assert mult > res["none"] + 0.1


def test_3d_ctf_uses_each_height_with_the_right_sign():
    """A thick sample at fine sampling: back-projecting each height from images
    corrected at its own defocus beats one defocus per image; the same series
    simulated with the height sign flipped gets worse instead."""
    px, df = 1.5, 10000.0
    shape = (128, 8, 192)
    angles = np.arange(-60, 60.1, 2.0)
    vol = dots(shape, 800)
    ctf = R.CtfSettings([df] * len(angles), [df] * len(angles), [0.0] * len(angles))
    right = simulate_thick_ctf(vol, angles, px, [df] * len(angles))
    # vol[::-1] seen at -theta is vol at theta with every height negated.
    wrong = simulate_thick_ctf(vol[::-1], -angles, px, [df] * len(angles))
    hi = band(-vol, 0.3, 0.5)

    def score(ts, correction):
        rec = R.reconstruct(ts, angles, shape[0], px, ctf=ctf, correction=correction,
                            radial=(0.5, 0), defocus_step=50)[0]
        return cc(band(rec, 0.3, 0.5), hi)
    assert score(right, "3d") > score(right, "phaseflip") + 0.004
    assert score(wrong, "3d") < score(wrong, "phaseflip") - 0.01


def test_auto_defocus_step():
    # pi/4 phase change at Nyquist of 2 A pixels, 300 kV: 1/(4 lambda s^2) = 203 A
    assert R.auto_defocus_step(2.0, 300.0) == pytest.approx(203.2, abs=0.5)
    assert R.auto_defocus_step(20.0, 300.0) > 10000
    assert R.auto_defocus_step(2.0, 300.0, cutoff=0.25) == pytest.approx(4 * 203.2, abs=2)


# --- files, exclusion, binning, contract ---------------------------------------
@pytest.fixture
def series(tmp_path):
    vol = phantom_volume((16, 24, 32), n_blobs=15, seed=4)
    angles = np.arange(-60, 60.1, 6.0)
    ts = simulate_tilt_series(vol, angles)
    write_stack(str(tmp_path / "TS.mrc"), ts, 7.5)
    write_angles(str(tmp_path / "TS.tlt"), angles)
    return tmp_path, vol, ts, angles


def test_exclude_synthetic_drops_exactly_the_synthetic_tilts(series):
    d, vol, ts, angles = series
    tilts = describe_input(str(d / "TS.mrc"), angles_path=str(d / "TS.tlt"), exclude=[0])
    plan = run_interpolation(str(d / "TS.mrc"), str(d / "OUT.mrc"), tilts, LinearInterpolator(),
                             per_gap=2, progress=False)
    keep = experimental_views(str(d / "OUT.json"), len(plan))
    assert [plan[i].input_index for i in keep] == list(range(1, len(angles)))   # view 1 excluded
    info = R.reconstruct_file(str(d / "OUT.mrc"), str(d / "OUT.tlt"), str(d / "REAL.mrc"), 16,
                              exclude_synthetic=str(d / "OUT.json"), progress=False)
    assert len(info["views"]) == len(angles) - 1
    ref, _ = R.reconstruct(ts[1:], angles[1:], 16, 7.5)
    with mrcfile.open(d / "REAL.mrc") as m:
        assert np.allclose(m.data, ref, atol=1e-5)
    # With the synthetic tilts the volume differs (they are used).
    R.reconstruct_file(str(d / "OUT.mrc"), str(d / "OUT.tlt"), str(d / "ALL.mrc"), 16, progress=False)
    with mrcfile.open(d / "ALL.mrc") as m:
        assert not np.allclose(m.data, ref, atol=1e-3)
    with pytest.raises(InputError, match="entries"):
        experimental_views(str(d / "OUT.json"), len(plan) + 1)


def test_cli_contract_with_ctf(series):
    d, vol, ts, angles = series
    ctf = [{"angle": float(a), "defocus_u": 21000.0, "defocus_v": 20000.0, "astig_angle": 30.0}
           for a in angles]
    (d / "CTF.json").write_text(json.dumps(ctf))
    r = run("reconstruct", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "TOMO.mrc"), "--thickness", "16", "--ctf", str(d / "CTF.json"),
            "--ctf-correction", "3d")
    assert r.returncode == 0, r.stderr
    assert "view 21/21" in r.stderr or "21/21" in r.stderr
    with mrcfile.open(d / "TOMO.mrc") as m:
        assert m.data.shape == (16, 24, 32) and m.data.dtype == np.float32
        assert float(m.voxel_size.x) == pytest.approx(7.5, abs=1e-3)
        assert float(m.voxel_size.z) == pytest.approx(7.5, abs=1e-3)
    assert not [f for f in os.listdir(d) if f.endswith(".part")]


def test_cli_binning_and_plain(series):
    d, vol, ts, angles = series
    r = run("reconstruct", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "BIN.mrc"), "--thickness", "16", "--binning", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "BIN.mrc") as m:
        assert m.data.shape == (8, 12, 16)
        assert float(m.voxel_size.x) == pytest.approx(15.0, abs=1e-3)
        binned = np.array(m.data)
    truth = vol.reshape(8, 2, 12, 2, 16, 2).mean(axis=(1, 3, 5))
    assert cc(binned, -truth) > 0.7


def test_cli_errors_name_the_problem(series):
    d, vol, ts, angles = series
    base = ["reconstruct", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "X.mrc"), "--thickness", "16"]
    r = run(*base, "--ctf-correction", "phaseflip")
    assert r.returncode == 2 and "--ctf CTF.json" in r.stderr
    (d / "SHORT.json").write_text(json.dumps([{"defocus_u": 1e4, "defocus_v": 1e4, "astig_angle": 0}]))
    r = run(*base, "--ctf", str(d / "SHORT.json"))
    assert r.returncode == 2 and "1 CTF entries but 21 images" in r.stderr
    r = run(*base[:-1], "0")
    assert r.returncode == 2 and "thickness" in r.stderr
    assert not (d / "X.mrc").exists()


# --- novaCTF -------------------------------------------------------------------
def _novactf_or_skip():
    path = os.environ.get("CRYOTIGER_NOVACTF_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("novaCTF binary not available: set CRYOTIGER_NOVACTF_BIN to a built novaCTF "
                    "(github.com/turonova/novaCTF) to test the wrapper")
    return path


def test_novactf_defocus_file_layouts(tmp_path):
    from cryotiger_scipion.engine.novactf import write_defocus_file
    write_defocus_file(str(tmp_path / "a"), [-3, 0], [20000, 21000], [19000, 20500], [10, 12])
    assert (tmp_path / "a").read_text().splitlines() == [
        "1 0 0.0 0.0 0.0 3", "1 1 -3.00 -3.00 2000.0 1900.0 10.00", "2 2 0.00 0.00 2100.0 2050.0 12.00"]
    write_defocus_file(str(tmp_path / "b"), [-3, 0], [20000, 21000], [19000, 20500], [10, 12],
                       astigmatism=False)
    assert (tmp_path / "b").read_text().splitlines() == ["1 1 -3.00 -3.00 1950.0 2", "2 2 0.00 0.00 2075.0"]


def test_novactf_missing_binary_is_a_clear_error(tmp_path):
    from cryotiger_scipion.engine.novactf import find_novactf
    with pytest.raises(InputError, match="--backend builtin"):
        find_novactf(str(tmp_path / "nope"))


@pytest.mark.parametrize("backend", ["builtin", "novactf"])
def test_view_selection_errors_before_any_work(series, backend):
    """Both back ends refuse an excluded view outside the stack, a wrong-length
    .xf and too few tilts with the same message, before running anything (the
    novaCTF 'binary' here would fail if it were ever run)."""
    from cryotiger_scipion.engine import novactf as N
    d, vol, ts, angles = series
    n = len(angles)

    def run(**kw):
        if backend == "builtin":
            return R.reconstruct_file(str(d / "TS.mrc"), str(d / "TS.tlt"), str(d / "T.mrc"),
                                      thickness=16, progress=False, **kw)
        return N.reconstruct_file_novactf("/bin/false", str(d / "TS.mrc"), str(d / "TS.tlt"),
                                          str(d / "T.mrc"), thickness=16, progress=False, **kw)
    with pytest.raises(InputError, match=f"excluded view {n + 5} does not exist"):
        run(exclude=[n + 4])
    with pytest.raises(InputError, match="3 transforms for"):
        run(xf=np.zeros((3, 2, 3)))
    with pytest.raises(InputError, match="1 tilt\\(s\\) left"):
        run(exclude=list(range(1, n)))
    assert not (d / "T.mrc").exists()


def test_novactf_agrees_with_builtin(tmp_path):
    binary = _novactf_or_skip()
    from cryotiger_scipion.engine import novactf as N
    vol = phantom_volume((32, 48, 48), seed=3)
    px, df = 5.0, 30000.0
    ts = simulate_thick_ctf(vol, ANGLES, px, [df] * len(ANGLES))
    ctf = R.CtfSettings([df] * len(ANGLES), [df] * len(ANGLES), [0.0] * len(ANGLES))
    for corr in ("none", "3d"):
        work = tmp_path / corr
        work.mkdir()
        nova = N.reconstruct_novactf(binary, ts, ANGLES, 32, px, str(work), ctf=ctf, correction=corr,
                                     defocus_step=50)
        ours = R.reconstruct(ts, ANGLES, 32, px, ctf=ctf, correction=corr, defocus_step=50)[0]
        assert nova.shape == ours.shape == (32, 48, 48)
        assert cc(nova, ours) > 0.98, corr


def test_novactf_misspelt_parameter_fails(tmp_path):
    binary = _novactf_or_skip()
    from cryotiger_scipion.engine.novactf import NovaCtfError, run_novactf
    with pytest.raises(NovaCtfError, match="Ignoring following parameter"):
        run_novactf(binary, ["-Algorithm", "filterProjections", "-Volts", "300"], str(tmp_path))


def test_cli_novactf_backend(series):
    binary = _novactf_or_skip()
    d, vol, ts, angles = series
    r = run("reconstruct", "--input", str(d / "TS.mrc"), "--angles", str(d / "TS.tlt"),
            "--output", str(d / "NOVA.mrc"), "--thickness", "16", "--backend", "novactf",
            "--novactf", binary)
    assert r.returncode == 0, r.stderr
    with mrcfile.open(d / "NOVA.mrc") as m:
        assert m.data.shape == (16, 24, 32)
        assert cc(m.data, -vol) > 0.6
    assert not [f for f in os.listdir(d) if f.startswith(".novactf-")]


def test_cli_applies_xf_transforms(series):
    from cryotiger_scipion.engine.align import apply_xf
    from cryotiger_scipion.engine.formats.xf import write_xf
    d, vol, ts, angles = series
    n = len(angles)
    move = np.array([[[1.0, 0.0, 4.0], [0.0, 1.0, -3.0]]] * n)
    back = np.array([[[1.0, 0.0, -4.0], [0.0, 1.0, 3.0]]] * n)
    shifted = np.stack([apply_xf(im, m) for im, m in zip(ts, move)])
    write_stack(str(d / "RAW.mrc"), shifted, 7.5)
    write_xf(str(d / "RAW.xf"), back)
    args = ["reconstruct", "--input", str(d / "RAW.mrc"), "--angles", str(d / "TS.tlt"),
            "--thickness", "16", "--quiet"]
    assert run(*args, "--output", str(d / "A.mrc"), "--xf", str(d / "RAW.xf")).returncode == 0
    assert run(*args, "--output", str(d / "B.mrc")).returncode == 0
    ref = R.reconstruct(ts, angles, 16, 7.5)[0][:, 4:-4, 5:-5]
    with mrcfile.open(d / "A.mrc") as a, mrcfile.open(d / "B.mrc") as b:
        assert cc(a.data[:, 4:-4, 5:-5], ref) > 0.97
        assert cc(b.data[:, 4:-4, 5:-5], ref) < 0.9


def test_sirt_like_weighting_suppresses_noise():
    from cryotiger_scipion.engine.simulate import Acquisition
    vol = phantom_volume((24, 40, 64), seed=2)
    ts = simulate_tilt_series(vol, ANGLES, Acquisition(pixel_size=10.0, dose_per_tilt=1.0))
    plain = cc(R.reconstruct(ts, ANGLES, 24, 10.0)[0], -vol)
    sirt = cc(R.reconstruct(ts, ANGLES, 24, 10.0, sirt_like=5)[0], -vol)
    assert sirt > plain + 0.1, (plain, sirt)
    f = np.fft.rfftfreq(256)
    w = R.radial_filter(256, "ramp", 0.5, 0.0, sirt_iterations=5, n_image=128)
    ramp = R.radial_filter(256, "ramp", 0.5, 0.0)
    assert np.all(w <= ramp + 1e-7) and w[f > 0.4].max() < 0.2 * ramp[f > 0.4].min()
    assert np.allclose(R.radial_filter(256, sirt_iterations=100000, n_image=128), R.radial_filter(256),
                       rtol=1e-3)


def test_novactf_odd_width_is_refused(tmp_path):
    from cryotiger_scipion.engine.novactf import reconstruct_novactf
    with pytest.raises(InputError, match="even width"):
        reconstruct_novactf("/nonexistent/novaCTF", np.zeros((3, 8, 9), np.float32), [-3, 0, 3], 4,
                            10.0, str(tmp_path))


def test_astigmatism_is_corrected_along_the_right_axis():
    from cryotiger_scipion.engine.simulate import Acquisition
    n = len(ANGLES)
    vol = phantom_volume((24, 96, 96), n_blobs=60, seed=2)
    ts = simulate_tilt_series(vol, ANGLES, Acquisition(pixel_size=4.0, defocus=[30000.0] * n,
                                                       astigmatism=10000.0, astig_angle=30.0))

    def score(angle):
        ctf = R.CtfSettings([35000.0] * n, [25000.0] * n, [angle] * n)
        return cc(R.reconstruct(ts, ANGLES, 24, 4.0, ctf=ctf, correction="phaseflip",
                                radial=(0.5, 0))[0], -vol)
    assert score(30.0) > score(120.0) + 0.015      # U and V swapped
    assert score(30.0) > score(-30.0) + 0.004      # mirrored axis


def test_astigmatism_in_the_3d_ctf_path():
    """The 3D (novaCTF-scheme) correction applies U along the astigmatism angle
    and V across it: swapping U and V (the same as turning the axis by 90
    degrees) or mirroring the angle reconstructs worse (issue 10 item 8)."""
    from cryotiger_scipion.engine.simulate import Acquisition
    n = len(ANGLES)
    vol = phantom_volume((24, 96, 96), n_blobs=60, seed=2)
    ts = simulate_tilt_series(vol, ANGLES, Acquisition(pixel_size=4.0, defocus=[30000.0] * n,
                                                       astigmatism=10000.0, astig_angle=30.0))

    def score(u, v, angle):
        ctf = R.CtfSettings([u] * n, [v] * n, [angle] * n)
        return cc(R.reconstruct(ts, ANGLES, 24, 4.0, ctf=ctf, correction="3d",
                                radial=(0.5, 0))[0], -vol)
    right = score(35000.0, 25000.0, 30.0)
    assert right > score(25000.0, 35000.0, 30.0) + 0.02        # U and V swapped
    assert right > score(35000.0, 25000.0, -30.0) + 0.006      # mirrored axis
    assert right > score(30000.0, 30000.0, 0.0) + 0.006        # astigmatism ignored
