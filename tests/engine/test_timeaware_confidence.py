"""Issue 13: confidence maps of synthetic tilts and time-aware FILM models.

Contracts pinned here:
* ``cryotiger interpolate --method film --model DIR`` writes OUT_confidence.mrc
  (one map per output slice, values in [0, 1], real tilts exactly 1.0) and a
  numeric ``confidence`` (the map's mean) for every synthetic entry of OUT.json;
* ``cryotiger model info DIR`` prints ``time-aware: yes|no``;
* a time-aware model makes ``--per-gap K`` for any K and ``--at ANGLES``, with
  the fraction t and the doses at t recorded; midpoint-only models refuse them;
* ``cryotiger reconstruct --min-confidence C`` leaves out the synthetic tilts
  below C.
"""
import json

import mrcfile
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from cryotiger_scipion.engine.cli import main  # noqa: E402
from cryotiger_scipion.engine.film.confidence import confidence_map  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A midpoint-only and a time-aware small model (random weights)."""
    folder = tmp_path_factory.mktemp("models")
    assert main(["model", "init", "--config", "small", "--output", str(folder / "mid"), "--seed", "1"]) == 0
    assert main(["model", "init", "--config", "small", "--time-aware", "--output", str(folder / "ta"),
                 "--seed", "1"]) == 0
    return folder / "mid", folder / "ta"


def series(tmp_path, angles=(-6, -3, 0, 3), doses=None):
    rng = np.random.default_rng(0)
    n = len(angles)
    stack = (rng.normal(0, 1, (n, 64, 96)).cumsum(axis=2) * 3 + 500).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 2.5)
    write_angles(str(tmp_path / "TS.tlt"), list(angles))
    args = ["--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt"]
    if doses is not None:
        acq = tmp_path / "acq.json"
        acq.write_text(json.dumps({"dose": list(doses)}))
        args += ["--acquisition-json", acq]
    return stack, args


FILM = ["--method", "film", "--tile-size", "128", "--tile-overlap", "64", "--quiet"]


# -- the confidence definition ---------------------------------------------------------
def _noisy_pair(sigma=0.05, shape=(96, 96), seed=3, contrast=0.15):
    """The same smooth signal (std ``contrast``) in two images, each with its own
    white noise of std ``sigma``: signal fraction contrast^2 / (contrast^2 + sigma^2)."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    signal = gaussian_filter(rng.normal(0, 1, shape), 6)
    signal *= contrast / signal.std()
    a = (0.5 + signal + rng.normal(0, sigma, shape)).astype(np.float32)
    b = (0.5 + signal + rng.normal(0, sigma, shape)).astype(np.float32)
    return a, b


def _w(a, b):
    from cryotiger_scipion.engine.film.confidence import signal_fraction
    return 0.5 * (signal_fraction(a) + signal_fraction(b))


def test_spread_confidence_is_exp_of_minus_spread_over_input_noise():
    sigma = 0.05
    a, b = _noisy_pair(sigma)
    spread = np.zeros((96, 96), np.float32)        # the four passes agree on the left
    spread[:, 48:] = sigma                          # spread by the noise level on the right
    spread[30:66, 78:] = 2 * sigma                  # twice the noise in a block
    c = confidence_map(spread, a, b)                # kind='spread' is the default
    assert c.shape == (96, 96) and c.dtype == np.float32
    assert float(c.min()) > 0.0 and float(c.max()) <= 1.0
    w = _w(a, b)                                    # the signal fraction, 0.9 here
    np.testing.assert_allclose(c[:, :30], w, atol=1e-6)
    # exp(-1) and exp(-2) within the noise estimate's accuracy (~3 %).
    assert float(np.mean(c[:20, 56:70])) == pytest.approx(w * np.exp(-1.0), rel=0.04)
    assert float(np.mean(c[40:56, 86:])) == pytest.approx(w * np.exp(-2.0), rel=0.08)


def test_signal_fraction_is_the_wiener_gain_and_low_signal_lowers_confidence():
    """W = s^2 / (s^2 + n^2): 0.9 for contrast 0.15 over noise 0.05, ~0 for pure
    noise (whatever is made of it is invented: the minimum confidence), 1 for a
    flat image; with the same noise and the same disagreement, the pair with less
    signal gets the lower confidence (issue 13: 'low signal')."""
    from cryotiger_scipion.engine.film.confidence import CONFIDENCE_MIN, signal_fraction
    for contrast, sigma in ((0.15, 0.05), (0.05, 0.05), (0.1, 0.02)):
        a, _ = _noisy_pair(sigma, (192, 192), contrast=contrast)
        assert signal_fraction(a) == pytest.approx(contrast ** 2 / (contrast ** 2 + sigma ** 2), abs=0.03)
    a, b = _noisy_pair(0.05, contrast=0.0)
    assert signal_fraction(a) < 0.03
    zero = np.zeros((96, 96), np.float32)
    assert float(confidence_map(zero, a, b).max()) < 0.03
    assert signal_fraction(np.full((96, 96), 0.3, np.float32)) == 1.0
    rng = np.random.default_rng(0)
    pure = rng.normal(0.5, 0.05, (96, 96)).astype(np.float32)
    assert float(confidence_map(zero, pure, pure[::-1]).min()) == pytest.approx(CONFIDENCE_MIN, abs=0.01)
    strong = confidence_map(zero + 0.02, *_noisy_pair(0.05, contrast=0.2))
    weak = confidence_map(zero + 0.02, *_noisy_pair(0.05, contrast=0.05))
    assert float(weak.mean()) < 0.6 * float(strong.mean())


def test_warped_confidence_is_one_where_warped_inputs_agree_within_noise_and_low_where_not():
    sigma = 0.05
    a, b = _noisy_pair(sigma)
    dis = np.abs(a - b)                            # noise only
    dis[30:60, 30:60] += 0.3                       # a region where the inputs disagree (6 sigma)
    c = confidence_map(dis, a, b, kind="warped")
    assert float(c.min()) > 0.0 and float(c.max()) <= 1.0
    w = _w(a, b)                                   # the signal fraction, 0.9
    assert float(np.mean(c[:20, :20])) > 0.9 * w  # agree within the noise
    assert float(np.mean(c[38:52, 38:52])) < 0.05 * w  # exp(-(1 + 0.3/(2 sigma/sqrt(pi)) - 1 - 1)) ~ 0.01
    with pytest.raises(ValueError):
        confidence_map(dis, a, b, kind="flow")


def test_structure_factor_is_flow_error_times_gradient_plus_smoothing_times_laplacian():
    """T = hypot(2 px |grad y|, 16 px^2 |lap y|): a ramp of slope s gives exactly
    2 s (no curvature) away from the borders, a flat image gives 0, and a parabola
    y = k x^2 / 2 (lap = k) adds 16 k in quadrature; the map is exp(-T / sigma)."""
    from cryotiger_scipion.engine.film.confidence import BLUR_PX2, FLOW_ERROR_PX, structure_error
    assert (FLOW_ERROR_PX, BLUR_PX2) == (2.0, 16.0)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    slope = 0.01
    ramp = 0.5 + slope * xx
    t = structure_error(ramp)
    np.testing.assert_allclose(t[30:66, 30:66], 2.0 * slope, rtol=1e-2)   # truncated kernels: 0.5 %
    np.testing.assert_allclose(structure_error(np.full((96, 96), 0.4, np.float32)), 0.0, atol=1e-7)
    k = 1e-4
    bowl = 0.5 + slope * xx + 0.5 * k * (yy - 48) ** 2
    t = structure_error(bowl)
    np.testing.assert_allclose(t[40:56, 30:66], np.hypot(2.0 * slope, 16.0 * k), rtol=1e-2)
    sigma = 0.05
    a, b = _noisy_pair(sigma)
    c = confidence_map(np.zeros((96, 96), np.float32), a, b, image=ramp)
    assert float(np.mean(c[30:66, 30:66])) == pytest.approx(_w(a, b) * np.exp(-2.0 * slope / sigma), rel=0.04)
    with pytest.raises(ValueError):
        confidence_map(np.zeros((96, 96), np.float32), a, b, image=ramp[:, :90])


def test_noise_free_pairs_are_measured_against_one_percent_of_the_range_and_never_reach_zero():
    """A noise-free pair has noise ~0: the map is measured against SIGMA_FLOOR
    (1 % of the normalised range), and a strong edge gives the documented
    minimum 1e-6, never 0 (the range is (0, 1])."""
    from cryotiger_scipion.engine.film.confidence import CONFIDENCE_MIN, SIGMA_FLOOR
    assert (SIGMA_FLOOR, CONFIDENCE_MIN) == (1e-2, 1e-6)
    xx = np.mgrid[0:96, 0:96][1].astype(np.float32)
    ramp = 0.5 + 0.002 * xx                          # no noise at all
    c = confidence_map(np.zeros((96, 96), np.float32), ramp, ramp, image=ramp)
    assert float(np.mean(c[30:66, 30:66])) == pytest.approx(np.exp(-2 * 0.002 / SIGMA_FLOOR), rel=0.02)
    step = np.where(xx < 48, 0.0, 1.0).astype(np.float32)
    c = confidence_map(np.zeros((96, 96), np.float32), step, step, image=step)
    assert float(c.min()) == pytest.approx(CONFIDENCE_MIN) and float(c.max()) <= 1.0
    flat = np.full((96, 96), 0.3, np.float32)
    np.testing.assert_allclose(confidence_map(np.full((96, 96), 1e-7, np.float32), flat, flat, image=flat),
                               1.0, atol=1e-4)


def test_network_spread_is_the_std_of_the_four_symmetric_passes():
    import tensorflow as tf

    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.network import FilmNet
    rng = np.random.default_rng(5)
    x0 = tf.constant(rng.random((1, 64, 64, 3), dtype=np.float32))
    x1 = tf.constant(rng.random((1, 64, 64, 3), dtype=np.float32))
    net = FilmNet(FilmConfig.small().aligned(), seed=3)
    out = net(x0, x1, aux=True)
    r = lambda t: t[:, ::-1, ::-1]  # noqa: E731
    passes = np.stack([net.forward_once(x0, x1).numpy(), r(net.forward_once(r(x0), r(x1)).numpy()),
                       net.forward_once(x1, x0).numpy(), r(net.forward_once(r(x1), r(x0)).numpy())])
    np.testing.assert_allclose(out["image"].numpy(), passes.mean(0), atol=1e-5)
    np.testing.assert_allclose(out["image_spread"].numpy(), passes.std(0), atol=1e-5)
    assert float(out["image_spread"].numpy().max()) > 1e-4     # random weights: the passes differ


def test_aligned_model_confidence_comes_from_the_pass_spread():
    import tensorflow as tf
    from scipy.ndimage import gaussian_filter

    from cryotiger_scipion.engine.film.confidence import SMOOTH_SIGMA, noise_sigma, structure_error
    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.inference import LUMA, FilmInterpolator
    from cryotiger_scipion.engine.film.network import FilmNet
    net = FilmNet(FilmConfig.small().aligned(), seed=3)
    fi = FilmInterpolator(net, tile_size=64, tile_overlap=0, log=lambda m: None)
    assert fi.uncertainty_kind == "spread"
    a, b = _noisy_pair(0.05, (64, 64), seed=8)
    _, confs = fi.interpolate_gaps_with_confidence([(a, b, [0.5])])
    ua, ub, _, _ = fi._to_unit(a, b)
    g = lambda u: tf.constant(np.repeat(u[None, ..., None], 3, -1).astype(np.float32))  # noqa: E731
    out = net(g(ua), g(ub), aux=True)
    spread = out["image_spread"].numpy()[0] @ LUMA
    image = out["image"].numpy()[0] @ LUMA
    sigma = 0.5 * (noise_sigma(ua) + noise_sigma(ub))
    expected = _w(ua, ub) * np.exp(-(gaussian_filter(spread, SMOOTH_SIGMA) + structure_error(image)) / sigma)
    np.testing.assert_allclose(confs[0][0], expected, atol=2e-4)
    # the structure factor is part of it: without it the map would be higher
    assert float(np.mean(_w(ua, ub) * np.exp(-gaussian_filter(spread, SMOOTH_SIGMA) / sigma) - confs[0][0])) > 1e-3
    assert float(confs[0][0].min()) < 0.999           # a random network's passes never agree exactly
    # A model without the symmetric passes keeps the warped-input disagreement.
    plain = FilmInterpolator(FilmNet(FilmConfig.small(), seed=3), tile_size=64, tile_overlap=0,
                             log=lambda m: None)
    assert plain.uncertainty_kind == "warped"


# -- contract: OUT_confidence.mrc + confidence in OUT.json -----------------------------------
def test_film_interpolate_writes_confidence_map_and_record(tmp_path, models, capsys):
    mid, _ = models
    stack, inp = series(tmp_path)
    out = tmp_path / "OUT.mrc"
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", mid, *FILM)
    assert rc == 0, err
    with mrcfile.open(out) as m:
        data = np.array(m.data)
    with mrcfile.open(tmp_path / "OUT_confidence.mrc") as m:
        conf = np.array(m.data)
        assert float(m.voxel_size.x) == pytest.approx(2.5, abs=1e-3)
    assert conf.shape == data.shape == (7, 64, 96)
    assert conf.dtype == np.float32
    assert float(conf.min()) >= 0.0 and float(conf.max()) <= 1.0
    record = json.load(open(tmp_path / "OUT.json"))
    for e in record:
        if e["synthetic"]:
            assert isinstance(e["confidence"], float)
            assert e["confidence"] == pytest.approx(float(conf[e["index"]].mean()), abs=1e-5)
            assert e["confidence"] < 1.0           # a random network's warps never agree exactly
        else:
            assert e["confidence"] == 1.0
            np.testing.assert_array_equal(conf[e["index"]], 1.0)
    # Linear has no confidence maps: none written, an old one is removed with the set.
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--method", "linear", "--quiet")
    assert rc == 0, err
    assert not (tmp_path / "OUT_confidence.mrc").exists()
    assert all("confidence" not in e for e in json.load(open(tmp_path / "OUT.json")))


def test_recursive_midpoints_confidence_never_exceeds_parents(tmp_path, models, capsys):
    mid, _ = models
    _, inp = series(tmp_path, angles=(-8, 0, 8))
    out = tmp_path / "OUT.mrc"
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", mid, "--per-gap", 3, *FILM)
    assert rc == 0, err
    with mrcfile.open(tmp_path / "OUT_confidence.mrc") as m:
        conf = np.array(m.data)
    # Gap 1: slices 1, 2, 3 = t 1/4, 1/2, 3/4; 1/4 and 3/4 are made from the 1/2 frame.
    assert np.all(conf[1] <= conf[2] + 1e-6) and np.all(conf[3] <= conf[2] + 1e-6)


# -- contract: model info ------------------------------------------------------------------
def test_model_info_prints_time_awareness(models, capsys):
    mid, ta = models
    rc, out, _ = cli(capsys, "model", "info", mid)
    assert rc == 0 and "time-aware: no" in out.splitlines()
    rc, out, _ = cli(capsys, "model", "info", ta)
    assert rc == 0 and "time-aware: yes" in out.splitlines()
    assert "(time-aware)" in out


# -- time-aware synthesis ------------------------------------------------------------------
def test_time_network_uses_t_only_when_time_conditioned():
    import tensorflow as tf

    from cryotiger_scipion.engine.film.config import FilmConfig
    from cryotiger_scipion.engine.film.network import FilmNet
    rng = np.random.default_rng(0)
    x0 = tf.constant(rng.random((2, 64, 64, 3)), tf.float32)
    x1 = tf.constant(rng.random((2, 64, 64, 3)), tf.float32)
    for aligned in (False, True):
        cfg = FilmConfig.small().time_aware()
        cfg = cfg.aligned() if aligned else cfg
        net = FilmNet(cfg, seed=2)
        a = net(x0, x1, time=tf.constant([0.25, 0.25])).numpy()
        b = net(x0, x1, time=tf.constant([0.75, 0.75])).numpy()
        assert np.max(np.abs(a - b)) > 1e-4
        if aligned:     # exact symmetry: swapping the inputs is t -> 1 - t
            c = net(x1, x0, time=tf.constant([0.75, 0.75])).numpy()
            np.testing.assert_allclose(a, c, atol=1e-5)
    plain = FilmNet(FilmConfig.small(), seed=2)
    np.testing.assert_array_equal(plain(x0, x1, time=tf.constant([0.25, 0.25])).numpy(),
                                  plain(x0, x1).numpy())


def test_time_aware_per_gap_2_records_t_and_doses(tmp_path, models, capsys):
    mid, ta = models
    _, inp = series(tmp_path, angles=(-6, 0, 6, 12), doses=(2.0, 3.0, 4.0, 5.0))
    out = tmp_path / "OUT.mrc"
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", ta, "--per-gap", 2, *FILM)
    assert rc == 0, err
    rec = json.load(open(tmp_path / "OUT.json"))
    syn = [e for e in rec if e["synthetic"]]
    assert [e["angle"] for e in syn] == [-4, -2, 2, 4, 8, 10]
    assert [e["fraction"] for e in syn[:2]] == [pytest.approx(1 / 3, abs=1e-6), pytest.approx(2 / 3, abs=1e-6)]
    # dose at t = (1 - t) dose_a + t dose_b: between views of 2 and 3 e/A^2
    assert syn[0]["dose"] == pytest.approx(2 + 1 / 3, abs=1e-9)
    assert syn[1]["dose"] == pytest.approx(2 + 2 / 3, abs=1e-9)
    assert syn[5]["dose"] == pytest.approx(4 + 2 / 3, abs=1e-9)
    assert all(0.0 < e["confidence"] <= 1.0 for e in syn)
    with mrcfile.open(out) as m:
        data = np.array(m.data)
    assert data.shape[0] == 10 and np.all(np.isfinite(data))
    # t is used: the images at t = 1/3 and 2/3 of one gap differ
    assert np.max(np.abs(data[1] - data[2])) > 1e-3
    # A midpoint-only model refuses K = 2 (not 1, 3 or 7) in one line, nothing written.
    out2 = tmp_path / "OUT2.mrc"
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out2, "--model", mid, "--per-gap", 2, *FILM)
    assert rc != 0 and "time-aware" in err and not out2.exists()


def test_at_angles_synthesises_exactly_there(tmp_path, models, capsys):
    mid, ta = models
    _, inp = series(tmp_path, angles=(-6, 0, 6, 12), doses=(2.0, 3.0, 4.0, 5.0))
    out = tmp_path / "OUT.mrc"
    tlt = tmp_path / "at.tlt"
    tlt.write_text("-4.5\n1.5\n11\n")
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", ta, "--at", tlt, *FILM)
    assert rc == 0, err
    rec = json.load(open(tmp_path / "OUT.json"))
    syn = [e for e in rec if e["synthetic"]]
    assert [e["angle"] for e in syn] == [-4.5, 1.5, 11]
    assert [e["fraction"] for e in syn] == [pytest.approx(0.25), pytest.approx(0.25), pytest.approx(5 / 6)]
    assert syn[2]["dose"] == pytest.approx(4 + 5 / 6, abs=1e-9)
    assert [float(a) for a in open(tmp_path / "OUT.tlt").read().split()] == [-6, -4.5, 0, 1.5, 6, 11, 12]
    with mrcfile.open(tmp_path / "OUT_confidence.mrc") as m:
        assert m.data.shape[0] == 7
    # the list form, and the refusals (outside the series; midpoint-only model off the midpoint)
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", ta, "--at=-3,3", *FILM)
    assert rc == 0, err
    assert [e["angle"] for e in json.load(open(tmp_path / "OUT.json")) if e["synthetic"]] == [-3, 3]
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "X.mrc", "--model", ta,
                     "--at", "13", *FILM)
    assert rc != 0 and "outside the usable tilts" in err
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "Y.mrc", "--model", mid,
                     "--at=-4.5", *FILM)
    assert rc != 0 and "time-aware" in err and not (tmp_path / "Y.mrc").exists()


def test_restore_uneven_steps_with_time_aware_model(tmp_path, models, capsys):
    _, ta = models
    _, inp = series(tmp_path, angles=(-9, -6, 0, 2, 10))
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", tmp_path / "R.mrc", "--model", ta,
                     "--mode", "restore", *FILM)
    assert rc == 0, err
    syn = [e for e in json.load(open(tmp_path / "R.json")) if e["synthetic"]]
    assert [(e["angle"], e["replaces"]) for e in syn] == [(-6, 1), (2, 3)]
    assert [e["fraction"] for e in syn] == [pytest.approx(1 / 3), pytest.approx(0.2)]


# -- training data at any t -------------------------------------------------------------------
def test_time_aware_triplets_from_non_adjacent_tilts():
    from cryotiger_scipion.engine.train.data import select_triplets
    angles = [0, 3, 6, 12, 15]
    trips = select_triplets(angles, spacings=(2, 3), time_aware=True)
    ts = {(a, m, b): (angles[m] - angles[a]) / (angles[b] - angles[a]) for a, m, b, _ in trips}
    assert ts[(0, 1, 2)] == pytest.approx(0.5)
    assert ts[(1, 2, 3)] == pytest.approx(1 / 3)
    assert ts[(0, 1, 3)] == pytest.approx(0.25) and ts[(0, 2, 3)] == pytest.approx(0.5)
    assert len(trips) == 3 + 2 * 2
    # t = 0.1: skipped for midpoint-only models, trained on by time-aware ones
    assert select_triplets([0, 1, 10], spacings=(1,)) == []
    assert select_triplets([0, 1, 10], spacings=(2,), time_aware=True) == [(0, 1, 2, 2)]


def test_train_time_aware_records_it(tmp_path, capsys):
    rng = np.random.default_rng(1)
    stack = (rng.normal(0, 1, (7, 64, 64)).cumsum(axis=2) + 100).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 2.0)
    write_angles(str(tmp_path / "TS.tlt"), [-9, -6, -3, 0, 3, 6, 9])
    rc, out, err = cli(capsys, "train", "--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt",
                       "--output", tmp_path / "m", "--config", "small", "--time-aware", "--steps", 2,
                       "--patch-size", 64, "--batch-size", 2, "--val-fraction", 0, "--shards", 1,
                       "--quiet")
    assert rc == 0, err
    rc, out, _ = cli(capsys, "model", "info", tmp_path / "m")
    assert "time-aware: yes" in out.splitlines()
    man = json.load(open(tmp_path / "m.work" / "database" / "database.json"))
    assert man["request"]["params"]["time_aware"] is True


def test_train_init_without_config_fine_tunes_the_init_models_configuration(tmp_path, capsys):
    """--config left out with --init: the model's own configuration (here the fit network of
    the shipped time-aware model, not the 'small' default), so a fine-tune needs no --config."""
    from cryotiger_scipion.engine.fit import TIMEAWARE_DIR
    from cryotiger_scipion.engine.film.savedmodel import read_config
    rng = np.random.default_rng(1)
    stack = (rng.normal(0, 1, (7, 64, 64)).cumsum(axis=2) + 100).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 2.0)
    write_angles(str(tmp_path / "TS.tlt"), [-9, -6, -3, 0, 3, 6, 9])
    rc, out, err = cli(capsys, "train", "--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt",
                       "--output", tmp_path / "m", "--init", TIMEAWARE_DIR, "--time-aware", "--steps", 1,
                       "--patch-size", 64, "--batch-size", 2, "--val-fraction", 0, "--shards", 1, "--quiet")
    assert rc == 0, err
    assert read_config(str(tmp_path / "m")) == read_config(TIMEAWARE_DIR)
    assert read_config(TIMEAWARE_DIR).filters == 16          # not the small network (4 filters)


# -- reconstruct --min-confidence ---------------------------------------------------------------
def test_reconstruct_min_confidence_leaves_out_low_confidence_tilts(tmp_path, models, capsys):
    from cryotiger_scipion.engine.formats.record import low_confidence_views
    mid, _ = models
    _, inp = series(tmp_path, angles=(-9, -6, -3, 0, 3, 6, 9))
    out = tmp_path / "OUT.mrc"
    rc, _, err = cli(capsys, "interpolate", *inp, "--output", out, "--model", mid, *FILM)
    assert rc == 0, err
    rec = json.load(open(tmp_path / "OUT.json"))
    confs = sorted(e["confidence"] for e in rec if e["synthetic"])
    thr = 0.5 * (confs[2] + confs[3])              # 3 of 6 below
    low = low_confidence_views(rec, thr)
    assert len(low) == 3 and all(rec[i]["synthetic"] for i in low)
    base = ["reconstruct", "--input", out, "--angles", tmp_path / "OUT.tlt", "--thickness", 16, "--quiet"]
    rc, _, err = cli(capsys, *base, "--output", tmp_path / "a.mrc", "--min-confidence", thr)
    assert rc == 0, err
    rc, _, err = cli(capsys, *base, "--output", tmp_path / "b.mrc",
                     "--exclude", ",".join(str(i + 1) for i in low))
    assert rc == 0, err
    rc, _, err = cli(capsys, *base, "--output", tmp_path / "c.mrc")
    assert rc == 0, err
    a, b, c = (np.array(mrcfile.open(tmp_path / f"{k}.mrc").data) for k in "abc")
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 0
    rc, _, err = cli(capsys, *base, "--output", tmp_path / "d.mrc", "--min-confidence", 1.5)
    assert rc != 0 and "from 0 to 1" in err
