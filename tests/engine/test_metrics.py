"""Evaluation metrics with known answers (issue 6)."""
import math
import os

import numpy as np
import pytest
from scipy.spatial.distance import directed_hausdorff

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine import metrics as M

MT_COORDS = "/work/shared/data/cylindra_mt/14pf_MT_monomer_coords_zyx_px.txt"
if not os.path.exists(MT_COORDS):
    MT_COORDS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                             "cylindra_mt", "14pf_MT_monomer_coords_zyx_px.txt")


# --- image similarity ----------------------------------------------------------
def test_identical_images_psnr_inf_rmse_zero_ssim_one():
    img = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    assert M.psnr(img, img, data_range=np.ptp(img)) == math.inf
    assert M.rmse(img, img) == 0.0
    assert M.ssim(img, img, data_range=np.ptp(img)) == pytest.approx(1.0, abs=1e-12)


def test_psnr_rmse_known_values():
    ref = np.zeros((10, 10))
    test = ref + 0.1                      # MSE 0.01
    assert M.rmse(test, ref) == pytest.approx(0.1)
    assert M.psnr(test, ref, data_range=1.0) == pytest.approx(20.0)
    assert M.psnr(test, ref, data_range=10.0) == pytest.approx(40.0)


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_agrees_with_scikit_image(gaussian):
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(64, 48))
    test = ref + rng.normal(scale=0.5, size=ref.shape)
    for rng_value in (np.ptp(ref), 3.0, 100.0):
        ours = M.ssim(test, ref, data_range=rng_value, gaussian_weights=gaussian)
        theirs = structural_similarity(test, ref, data_range=rng_value, gaussian_weights=gaussian,
                                       use_sample_covariance=not gaussian, sigma=1.5)
        assert abs(ours - theirs) < 1e-6
    # and 3D volumes
    vol = rng.normal(size=(12, 20, 20))
    noisy = vol + rng.normal(scale=0.3, size=vol.shape)
    assert abs(M.ssim(noisy, vol, 5.0) - structural_similarity(noisy, vol, data_range=5.0)) < 1e-6


def test_psnr_agrees_with_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(30, 30))
    test = ref + rng.normal(scale=0.2, size=ref.shape)
    assert M.psnr(test, ref, 4.0) == pytest.approx(peak_signal_noise_ratio(ref, test, data_range=4.0))


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="shapes"):
        M.rmse(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="data range"):
        M.psnr(np.zeros((3, 3)), np.ones((3, 3)), 0)
    with pytest.raises(InputError, match="smaller than the SSIM window"):
        M.ssim(np.zeros((5, 5)), np.zeros((5, 5)), 1.0)


# --- contrast --------------------------------------------------------------------
def test_std_and_gradient_contrast_known_values():
    flat = np.full((20, 20), 3.0)
    assert M.std_contrast(flat) == 0.0
    assert M.gradient_contrast(flat) == 0.0
    # A ramp of slope 1 along x: scipy's Sobel gives 8 * slope inside (weights 1-2-1 and
    # central difference over 2 px); with 'reflect' borders the edge columns differ.
    ramp = np.tile(np.arange(20.0), (20, 1))
    g = M.gradient_contrast(ramp)
    inner_expected = 8.0
    edges = np.hypot(0, np.array([4.0, 4.0]))  # first/last column: reflected difference = 1 -> 4
    expected = (18 * inner_expected + edges.sum()) / 20
    assert g == pytest.approx(expected)
    assert M.std_contrast(np.array([[0.0, 2.0]])) == pytest.approx(1.0)
    vol = np.zeros((9, 8, 8))
    vol[4] = np.tile([0.0, 2.0], (8, 4))
    c = M.tomogram_contrast(vol, thickness=1)
    assert c["std"] == pytest.approx(1.0) and c["slices"] == 1
    c3 = M.tomogram_contrast(vol, thickness=3)
    assert c3["std"] == pytest.approx(1.0 / 3) and c3["slices"] == 3


def test_defocus_difference():
    d = M.defocus_difference([10000, 20000, 30000], [10500, 19000, 30000])
    np.testing.assert_allclose(d, [500, 1000, 0])
    assert np.median(d) == 500


# --- detection --------------------------------------------------------------------
def test_matching_is_optimal_not_greedy():
    # Greedy nearest matching pairs p0-t0 (distance 0.9) and leaves p1 unmatched;
    # the optimal one-to-one assignment matches both.
    true = np.array([[0.0, 0.0], [2.0, 0.0]])
    pred = np.array([[0.9, 0.0], [-0.8, 0.0]])
    p, t, d = M.match_points(pred, true, tolerance=1.2)
    assert list(zip(p, t)) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(d, [1.1, 0.8])


def test_matching_tolerance_is_inclusive_and_one_to_one():
    true = np.array([[0.0, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.5]])
    s = M.detection_scores(pred, true, tolerance=1.0)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 0)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == 1.0
    assert M.detection_scores(pred, true, tolerance=0.99)["tp"] == 0


@pytest.mark.skipif(not os.path.exists(MT_COORDS), reason="shared data folder not present")
def test_detection_on_real_microtubule_positions():
    true = np.loadtxt(MT_COORDS, delimiter=",")
    assert true.shape == (378, 3)
    rng = np.random.default_rng(3)
    # Shift every position by 1.5 px in a random direction: all found within 2 px,
    # none within 1 px.
    v = rng.normal(size=true.shape)
    v *= 1.5 / np.linalg.norm(v, axis=1, keepdims=True)
    pred = true + v
    s = M.detection_scores(pred, true, tolerance=2.0)
    assert (s["tp"], s["fp"], s["fn"]) == (378, 0, 0)
    assert s["mean_distance"] == pytest.approx(1.5)
    # monomers are ~4 nm apart = ~4 px: a 1 px tolerance finds none of the shifted ones
    assert M.detection_scores(pred, true, tolerance=1.0)["tp"] == 0
    # Known mix: first 300 kept (high score), 78 dropped, 100 false positives far away
    # (low score).  Best F1 at the threshold that keeps exactly the true ones.
    fps = true[:100] + np.array([0.0, 0.0, 30.0]) + 200.0
    P = np.concatenate([pred[:300], fps])
    scores = np.concatenate([np.linspace(1.0, 0.6, 300), np.linspace(0.5, 0.1, 100)])
    c = M.detection_curve(P, true, tolerance=2.0, scores=scores, max_thresholds=1000)
    assert c["best_f1"] == pytest.approx(2 * 1.0 * (300 / 378) / (1.0 + 300 / 378))
    assert c["best_threshold"] == pytest.approx(0.6)
    assert c["recall"][-1] == pytest.approx(300 / 378)
    assert c["precision"][-1] == pytest.approx(300 / 400)
    # PR-AUC (step): precision 1 up to recall 300/378, then no further recall.
    assert c["pr_auc"] == pytest.approx(300 / 378)
    assert np.all(np.diff(c["recall"]) >= 0)


def test_pr_auc_definitions():
    assert M.pr_auc([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert M.pr_auc([0.5, 1.0], [1.0, 0.5], method="trapezoid") == pytest.approx(0.5 + 0.5 * 0.75)
    with pytest.raises(InputError):
        M.pr_auc([0.5], [1.0], method="nope")


def test_detection_without_scores_and_empty_sets():
    c = M.detection_curve([[0, 0]], [[0, 0]], 1.0)
    assert c["f1"] == [1.0] and math.isnan(c["pr_auc"])
    s = M.detection_scores(np.zeros((0, 3)), np.zeros((5, 3)), 1.0)
    assert s["recall"] == 0.0 and s["precision"] == 0.0 and s["fn"] == 5


# --- segmentation -------------------------------------------------------------------
def test_mask_overlap_known_values():
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[5:15, 5:15] = True          # 100 px
    b[5:15, 10:20] = True         # 100 px, 50 overlap
    assert M.dice(a, b) == pytest.approx(0.5)
    assert M.jaccard(a, b) == pytest.approx(50 / 150)
    # a square shifted by 5 px along x: Hausdorff exactly 5 px
    assert M.hausdorff(a, b) == pytest.approx(5.0)
    assert M.hausdorff(a, b, spacing=2.5) == pytest.approx(12.5)
    s = M.segmentation_scores(a, b, pixel_size=10.0)
    assert s["hausdorff_A"] == pytest.approx(50.0)
    assert M.dice(a, a) == 1.0 and M.hausdorff(a, a) == 0.0


def test_hausdorff_agrees_with_point_set_definition_3d():
    rng = np.random.default_rng(4)
    a = rng.random((10, 12, 14)) > 0.97
    b = rng.random((10, 12, 14)) > 0.97
    pa, pb = np.argwhere(a) * [2.0, 1.0, 1.0], np.argwhere(b) * [2.0, 1.0, 1.0]
    expected = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
    assert M.hausdorff(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(expected)


def test_empty_masks():
    z = np.zeros((4, 4), bool)
    o = z.copy(); o[1, 1] = True  # noqa: E702
    assert M.dice(z, z) == 1.0 and M.hausdorff(z, z) == 0.0
    assert M.hausdorff(z, o) == math.inf and M.dice(z, o) == 0.0


# --- statistics ---------------------------------------------------------------------
def test_paired_tests_match_scipy_and_handle_degenerate_cases():
    from scipy import stats
    rng = np.random.default_rng(5)
    a = rng.normal(size=20)
    b = a + 0.5 + rng.normal(scale=0.1, size=20)
    r = M.paired_tests(a, b)
    assert r["n"] == 20
    assert r["t_pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert r["mean_diff"] == pytest.approx(np.mean(a - b))
    same = M.paired_tests(a, a)
    assert math.isnan(same["t_pvalue"]) and math.isnan(same["wilcoxon_pvalue"])
    # inf values (identical images) are left out
    r2 = M.paired_tests([math.inf, 1.0, 2.0, 3.0], [5.0, 1.5, 2.2, 3.9])
    assert r2["n"] == 3
