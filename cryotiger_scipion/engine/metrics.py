"""Evaluation metrics: image similarity, contrast, detection, segmentation, statistics.

Pure numpy/scipy (no TensorFlow, no Scipion): the Scipion layer imports this
module too.  Conventions: images are 2D (y, x) or volumes (z, y, x) arrays in
any real dtype (computed in float64); point sets are (n, d) arrays in one unit
(pixels or Angstrom, the same for both sets and the tolerance); pixel/voxel
sizes are Angstrom.

Definitions (see docs/evaluation.md):

* ``psnr = 10 log10(R^2 / MSE)`` with ``R`` the data range (a number given by
  the caller: never estimated from the image under test, so that every method
  is scored against the same scale); identical images give ``inf``.
* ``rmse = sqrt(mean((test - ref)^2))``, in the images' intensity units.
* ``ssim``: Wang et al. 2004 with scikit-image's defaults (7x7 uniform window,
  sample covariance, K1 = 0.01, K2 = 0.03, borders of (win-1)/2 dropped from
  the mean); agrees with ``skimage.metrics.structural_similarity`` for the same
  ``data_range``.
* ``std_contrast``: standard deviation of the slice (population std).
* ``gradient_contrast``: mean Sobel gradient magnitude,
  ``mean(sqrt(sobel_y^2 + sobel_x^2))`` (scipy.ndimage.sobel, mode 'reflect').
* Detection: predictions and truths are matched one-to-one by optimal
  assignment (maximum number of pairs within the tolerance, then the smallest
  summed distance); precision = TP / predictions, recall = TP / truths.
* Segmentation: Dice, Jaccard, and the symmetric Hausdorff distance between
  the two voxel sets (every foreground voxel, Euclidean, in pixels and, with a
  voxel size, in Angstrom).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Union

import numpy as np

from . import InputError

Number = Union[int, float]


# ----------------------------------------------------------------------------
# Image similarity
# ----------------------------------------------------------------------------
def _pair(test, ref, name: str = "images"):
    a = np.asarray(test, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"{name} have different shapes {a.shape} and {b.shape}; "
                         "compare images of the same size")
    if a.size == 0:
        raise InputError(f"{name} are empty")
    return a, b


def _check_range(data_range) -> float:
    r = float(data_range)
    if not np.isfinite(r) or r <= 0:
        raise InputError(f"data range {data_range} must be a positive number "
                         "(e.g. max - min of the reference image)")
    return r


def mse(test, ref) -> float:
    """Mean squared error mean((test - ref)^2) of two arrays of the same shape
    ((y, x) images or (z, y, x) volumes, any real dtype, computed in float64), in
    squared intensity units.  Raises InputError for different shapes or empty
    arrays."""
    a, b = _pair(test, ref)
    return float(np.mean((a - b) ** 2))


def rmse(test, ref) -> float:
    """Root mean squared error sqrt(mean((test - ref)^2)) in the images'
    intensity units; same arrays as :func:`mse`.

    Raises:
      InputError: for different shapes or empty arrays.
    """
    return math.sqrt(mse(test, ref))


def psnr(test, ref, data_range: Number) -> float:
    """Peak signal-to-noise ratio 10 log10(R^2 / MSE) in dB of ``test`` against
    ``ref`` (same-shape arrays) for the data range R = ``data_range`` (intensity
    units, given by the caller, never estimated from ``test``); ``inf`` when the
    images are identical.  Raises InputError for a data range that is not a
    positive finite number, different shapes or empty arrays."""
    r = _check_range(data_range)
    err = mse(test, ref)
    if err == 0:
        return math.inf
    return float(10.0 * np.log10(r * r / err))


def ssim(test, ref, data_range: Number, win_size: int = 7, gaussian_weights: bool = False,
         K1: float = 0.01, K2: float = 0.03) -> float:
    """Mean structural similarity of two 2D/3D arrays (float64 arithmetic).

    Same definition and defaults as ``skimage.metrics.structural_similarity``:
    uniform ``win_size`` window (or a Gaussian of sigma 1.5 with
    ``gaussian_weights``), sample covariance for the uniform window, filters in
    'reflect' mode, and the mean taken after dropping ``(win_size - 1) // 2``
    pixels at every border.  Source: Wang, Bovik, Sheikh & Simoncelli, "Image
    quality assessment: from error visibility to structural similarity", IEEE
    TIP 13 (2004), eq. 13, with C1 = (K1 R)^2, C2 = (K2 R)^2, R = ``data_range``.

    ``test``, ``ref``: (y, x) or (z, y, x) arrays of the same shape.  Returns
    the mean SSIM (1 for identical images, unitless).  Raises InputError for a
    bad data range, an even or < 3 window, arrays smaller than the window,
    different shapes or empty arrays.
    """
    from scipy import ndimage as ndi

    a, b = _pair(test, ref)
    r = _check_range(data_range)
    if gaussian_weights:
        sigma, truncate = 1.5, 3.5
        win_size = 2 * int(truncate * sigma + 0.5) + 1

        def filt(x):
            return ndi.gaussian_filter(x, sigma=sigma, truncate=truncate)
        cov_norm = 1.0
    else:
        if win_size < 3 or win_size % 2 == 0:
            raise InputError(f"SSIM window size {win_size} must be an odd number >= 3")

        def filt(x):
            return ndi.uniform_filter(x, size=win_size)
        n_px = win_size ** a.ndim
        cov_norm = n_px / (n_px - 1.0)
    if any(s < win_size for s in a.shape):
        raise InputError(f"image of shape {a.shape} is smaller than the SSIM window "
                         f"({win_size}); use larger images or a smaller window")
    ux, uy = filt(a), filt(b)
    uxx, uyy, uxy = filt(a * a), filt(b * b), filt(a * b)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (K1 * r) ** 2
    c2 = (K2 * r) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    s = num / den
    pad = (win_size - 1) // 2
    core = s[tuple(slice(pad, n - pad) for n in s.shape)]
    return float(core.mean())


def robust_data_range(image, low: float = 0.5, high: float = 99.5) -> float:
    """Difference of two percentiles of ``image`` (any shape; ``low``/``high``
    in percent, default 0.5 and 99.5), in intensity units: a data range for
    :func:`psnr`/:func:`ssim` that ignores a few hot pixels or gold beads.
    (Named apart from the FILM normalisation's ``film.normalization.pair_range``,
    which returns the (lo, hi) pair of two images.)"""
    a = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(a, [low, high])
    return float(hi - lo)


# ----------------------------------------------------------------------------
# Contrast and defocus
# ----------------------------------------------------------------------------
def std_contrast(image) -> float:
    """Standard-deviation contrast: population std (ddof 0) of a (y, x) slice or
    a (z, y, x) volume, in intensity units (the contrast measure of the
    cryoTIGER paper's tomogram comparison, Majtner et al. 2025)."""
    a = np.asarray(image, dtype=np.float64)
    return float(a.std())


def gradient_contrast(image) -> float:
    """Gradient contrast: mean Sobel gradient magnitude
    mean(sqrt(sobel_y^2 + sobel_x^2)) of a (y, x) slice (scipy.ndimage.sobel,
    'reflect' borders), in intensity units per pixel; for a (z, y, x) array the
    in-plane value of each slice, averaged.  Raises InputError for other
    dimensions."""
    from scipy import ndimage as ndi

    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"gradient contrast needs a 2D slice or a (z, y, x) slab, got shape {a.shape}")
    total = 0.0
    for sl in a:
        gy = ndi.sobel(sl, axis=0)
        gx = ndi.sobel(sl, axis=1)
        total += float(np.hypot(gy, gx).mean())
    return total / a.shape[0]


def central_slab(volume, thickness: int = 1) -> np.ndarray:
    """The ``thickness`` central z slices of a (z, y, x) volume (all of them if
    the volume is thinner; a (y, x) slice becomes (1, y, x)): a view, not a
    copy.  Raises InputError for other dimensions or ``thickness`` < 1."""
    v = np.asarray(volume)
    if v.ndim == 2:
        return v[None]
    if v.ndim != 3:
        raise InputError(f"expected a (z, y, x) volume, got shape {v.shape}")
    if thickness < 1:
        raise InputError(f"slab thickness {thickness} must be at least 1 slice")
    nz = v.shape[0]
    t = min(int(thickness), nz)
    start = (nz - t) // 2
    return v[start:start + t]


def tomogram_contrast(volume, thickness: int = 1) -> Dict[str, float]:
    """Contrast of a tomogram's central slab: the mean over its slices of the
    std contrast and of the gradient contrast (the measures of the cryoTIGER
    paper's tomogram comparison, Majtner et al. 2025).

    Args:
      volume: (z, y, x) array, any real dtype (a (y, x) slice counts as one).
      thickness: central slices used (see :func:`central_slab`).

    Returns:
      {"std", "gradient" (intensity units, per pixel for the gradient),
      "slices" (count)}.

    Raises:
      InputError: as :func:`central_slab` (not 2D/3D, thickness < 1).
    """
    slab = np.asarray(central_slab(volume, thickness), dtype=np.float64)
    return {"std": float(np.mean([std_contrast(s) for s in slab])),
            "gradient": gradient_contrast(slab),
            "slices": int(slab.shape[0])}


def defocus_difference(defocus_a, defocus_b) -> np.ndarray:
    """Absolute per-tilt defocus differences |a - b| (same unit as the inputs,
    Angstrom in this project), as a float64 1D array; take ``np.median`` for
    the paper's summary (Majtner et al. 2025, Fig. 2).

    Raises:
      InputError: when the two inputs hold different numbers of values.
    """
    a = np.asarray(defocus_a, dtype=np.float64).ravel()
    b = np.asarray(defocus_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"{a.size} and {b.size} defocus values; give one per tilt for both")
    return np.abs(a - b)


# ----------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------
def _points(p, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, a.shape[-1] if a.ndim == 2 else 3)
    if a.ndim != 2:
        raise InputError(f"{name}: expected an (n, d) array of positions, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: NaN or infinite coordinates")
    return a


def match_points(pred, true, tolerance: float):
    """One-to-one matching of predicted to true positions within ``tolerance``.

    Optimal assignment: the largest possible number of pairs closer than or at
    ``tolerance``, and among those the smallest summed distance.  Candidate
    pairs come from a KD-tree; each connected group of candidates is solved
    with ``scipy.optimize.linear_sum_assignment`` (the linear assignment
    problem; Kuhn 1955, Crouse 2016), so large sets stay cheap.

    Args:
      pred: (n, d) predicted positions (pixels or Angstrom).
      true: (m, d) true positions, same unit and d.
      tolerance: largest matching distance, same unit, >= 0.

    Returns:
      (pred_idx, true_idx, distances): int, int and float arrays of the
      matched pairs, sorted by pred index.

    Raises:
      InputError: for positions that are not (n, d) or not finite, a negative
        or non-finite tolerance, or two sets of different dimension.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    P = _points(pred, "predicted positions")
    T = _points(true, "true positions")
    tol = float(tolerance)
    if not np.isfinite(tol) or tol < 0:
        raise InputError(f"matching tolerance {tolerance} must be a non-negative distance")
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    if len(P) == 0 or len(T) == 0:
        return empty
    if P.shape[1] != T.shape[1]:
        raise InputError(f"predicted positions have {P.shape[1]} coordinates, true ones "
                         f"{T.shape[1]}; give both in the same dimension")
    pairs = cKDTree(P).query_ball_tree(cKDTree(T), r=tol)
    rows, cols = [], []
    for i, js in enumerate(pairs):
        rows.extend([i] * len(js))
        cols.extend(js)
    if not rows:
        return empty
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    dist = np.linalg.norm(P[rows] - T[cols], axis=1)
    n_p, n_t = len(P), len(T)
    graph = coo_matrix((np.ones(len(rows)), (rows, n_p + cols)), shape=(n_p + n_t, n_p + n_t))
    _, labels = connected_components(graph, directed=False)
    comp = labels[rows]
    out_p, out_t, out_d = [], [], []
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for group in np.split(order, bounds):
        r, c, d = rows[group], cols[group], dist[group]
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        if len(group) == 1:
            out_p.append(r[0]); out_t.append(c[0]); out_d.append(d[0])  # noqa: E702
            continue
        # Forbidden pairs cost more than any full set of allowed pairs, so the
        # solver first maximises the number of allowed pairs.
        big = (tol + 1.0) * (min(len(ur), len(uc)) + 1)
        cost = np.full((len(ur), len(uc)), big)
        cost[ri, ci] = d
        a, b = linear_sum_assignment(cost)
        ok = cost[a, b] < big
        out_p.extend(ur[a[ok]]); out_t.extend(uc[b[ok]]); out_d.extend(cost[a[ok], b[ok]])  # noqa: E702
    out_p = np.asarray(out_p, dtype=int)
    s = np.argsort(out_p, kind="stable")
    return out_p[s], np.asarray(out_t, dtype=int)[s], np.asarray(out_d, dtype=float)[s]


def _prf(tp: int, n_pred: int, n_true: int) -> tuple:
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def detection_scores(pred, true, tolerance: float) -> Dict[str, float]:
    """Precision, recall and F1 of one set of predictions (no score threshold),
    matched by :func:`match_points`.

    Returns a dict with tp, fp, fn, n_pred, n_true, precision = TP / n_pred,
    recall = TP / n_true, f1 (their harmonic mean) and the mean matched
    distance (NaN without a match).  With no predictions precision is 0 (1
    when there is no truth either); with no truth recall is 1.

    Raises:
      InputError: as :func:`match_points`.
    """
    p_idx, t_idx, d = match_points(pred, true, tolerance)
    n_p, n_t = len(_points(pred, "predicted positions")), len(_points(true, "true positions"))
    tp = len(p_idx)
    precision, recall, f1 = _prf(tp, n_p, n_t)
    return {"tp": tp, "fp": n_p - tp, "fn": n_t - tp, "n_pred": n_p, "n_true": n_t,
            "precision": precision, "recall": recall, "f1": f1,
            "mean_distance": float(d.mean()) if tp else math.nan}


def pr_auc(recall: Sequence[float], precision: Sequence[float], method: str = "step") -> float:
    """Area under a precision-recall curve given at decreasing score thresholds.

    ``step`` (default): average precision, sum of (R_k - R_{k-1}) P_k starting
    from recall 0 (scikit-learn's ``average_precision_score`` definition; no
    interpolation, not optimistic).  ``trapezoid``: trapezoidal rule over the
    recall-sorted points, with the curve started at (recall 0, first precision).

    Args:
      recall, precision: 1D sequences of the same length (fractions 0..1).
      method: "step" or "trapezoid".

    Returns:
      The area (0..1); NaN for empty curves.

    Raises:
      InputError: for sequences that are not 1D of one length, or an unknown method.
    """
    r = np.asarray(recall, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise InputError("recall and precision must be 1D lists of the same length")
    if r.size == 0:
        return math.nan
    if method == "step":
        r_prev = np.concatenate([[0.0], r[:-1]])
        return float(np.sum((r - r_prev) * p))
    if method == "trapezoid":
        o = np.argsort(r, kind="stable")
        rr = np.concatenate([[0.0], r[o]])
        pp = np.concatenate([[p[o][0]], p[o]])
        return float(np.sum(np.diff(rr) * (pp[1:] + pp[:-1]) / 2))
    raise InputError(f"unknown PR-AUC method '{method}'; use 'step' or 'trapezoid'")


def detection_curve(pred, true, tolerance: float, scores: Optional[Sequence[float]] = None,
                    thresholds: Optional[Sequence[float]] = None,
                    max_thresholds: int = 200) -> Dict[str, object]:
    """Precision, recall and F1 over score thresholds, the PR curve and PR-AUC.

    At each threshold ``s`` the predictions with score >= s are matched
    one-to-one to the truths (optimal assignment within ``tolerance``, redone
    for each threshold).  ``thresholds`` default: the distinct scores, or
    ``max_thresholds`` score quantiles when there are more.  Thresholds are
    returned in decreasing order (recall increasing).  Without scores every
    prediction counts (one point; ``pr_auc`` is then NaN).

    Args:
      pred: (n, d) predicted positions; true: (m, d) true positions (one unit).
      tolerance: matching distance in that unit.
      scores: one score per prediction (higher: more confident), or None.
      thresholds: score thresholds to evaluate (default: see above).
      max_thresholds: most thresholds taken from the scores.

    Returns a dict: thresholds, precision, recall, f1, tp (lists), pr_auc
    (step), pr_auc_trapezoid, best_f1, best_threshold, n_pred, n_true and the
    scores at the full set (``all``: the :func:`detection_scores` dict).

    Raises:
      InputError: as :func:`match_points`; for a number of scores other than
        of predictions, or non-finite scores.
    """
    P = _points(pred, "predicted positions")
    T = _points(true, "true positions")
    full = detection_scores(P, T, tolerance)
    if scores is None:
        return {"thresholds": [], "precision": [full["precision"]], "recall": [full["recall"]],
                "f1": [full["f1"]], "tp": [full["tp"]], "pr_auc": math.nan,
                "pr_auc_trapezoid": math.nan, "best_f1": full["f1"], "best_threshold": None,
                "n_pred": len(P), "n_true": len(T), "all": full}
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(s) != len(P):
        raise InputError(f"{len(s)} scores for {len(P)} predicted positions; give one score each")
    if not np.all(np.isfinite(s)):
        raise InputError("NaN or infinite prediction scores")
    if thresholds is None:
        uniq = np.unique(s)
        if len(uniq) > max_thresholds:
            uniq = np.unique(np.quantile(s, np.linspace(0, 1, max_thresholds)))
        thr = uniq
    else:
        thr = np.unique(np.asarray(thresholds, dtype=np.float64))
    thr = thr[::-1]
    prec, rec, f1s, tps = [], [], [], []
    for t in thr:
        keep = s >= t
        tp = len(match_points(P[keep], T, tolerance)[0])
        p_, r_, f_ = _prf(tp, int(keep.sum()), len(T))
        prec.append(p_); rec.append(r_); f1s.append(f_); tps.append(tp)  # noqa: E702
    best = int(np.argmax(f1s)) if f1s else 0
    return {"thresholds": thr.tolist(), "precision": prec, "recall": rec, "f1": f1s, "tp": tps,
            "pr_auc": pr_auc(rec, prec, "step") if rec else math.nan,
            "pr_auc_trapezoid": pr_auc(rec, prec, "trapezoid") if rec else math.nan,
            "best_f1": f1s[best] if f1s else 0.0,
            "best_threshold": float(thr[best]) if len(thr) else None,
            "n_pred": len(P), "n_true": len(T), "all": full}


# ----------------------------------------------------------------------------
# Segmentation
# ----------------------------------------------------------------------------
def _masks(a, b):
    A = np.asarray(a).astype(bool)
    B = np.asarray(b).astype(bool)
    if A.shape != B.shape:
        raise InputError(f"masks have different shapes {A.shape} and {B.shape}; "
                         "compare masks of the same tomogram size")
    return A, B


def dice(a, b) -> float:
    """Dice coefficient 2|A and B| / (|A| + |B|) of two masks of one shape (any
    dtype, nonzero = foreground; Dice 1945); 1 if both are empty.

    Raises:
      InputError: when the masks have different shapes.
    """
    A, B = _masks(a, b)
    s = int(A.sum()) + int(B.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(A, B).sum()) / s


def jaccard(a, b) -> float:
    """Jaccard index |A and B| / |A or B| of two masks of one shape (Jaccard
    1912); 1 if both are empty.

    Raises:
      InputError: when the masks have different shapes.
    """
    A, B = _masks(a, b)
    u = int(np.logical_or(A, B).sum())
    return 1.0 if u == 0 else int(np.logical_and(A, B).sum()) / u


def hausdorff(a, b, spacing: Union[Number, Sequence[Number]] = 1.0) -> float:
    """Symmetric Hausdorff distance between the foreground voxel sets of two
    masks: max over voxels of either mask of the (Euclidean) distance to the
    nearest voxel of the other, from exact distance transforms
    (scipy.ndimage.distance_transform_edt).

    Args:
      a, b: masks of one shape, (y, x) or (z, y, x); nonzero = foreground.
      spacing: voxel size per axis or one for all (1 -> pixels; the pixel
        size in Angstrom -> Angstrom).

    Returns:
      The distance; 0 if both masks are empty, inf if only one is.

    Raises:
      InputError: when the masks have different shapes.
    """
    from scipy import ndimage as ndi

    A, B = _masks(a, b)
    na, nb = A.any(), B.any()
    if not na and not nb:
        return 0.0
    if not na or not nb:
        return math.inf
    sampling = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (A.ndim,))
    d_to_b = ndi.distance_transform_edt(~B, sampling=sampling)
    d_to_a = ndi.distance_transform_edt(~A, sampling=sampling)
    return float(max(d_to_b[A].max(), d_to_a[B].max()))


def segmentation_scores(a, b, pixel_size: Optional[float] = None) -> Dict[str, float]:
    """Dice, Jaccard and Hausdorff distance of two masks of one shape.

    Args:
      a, b: masks, (z, y, x) or (y, x); nonzero = foreground.
      pixel_size: Angstrom per voxel, for ``hausdorff_A`` (NaN without it).

    Returns:
      {"dice", "jaccard", "hausdorff_px", "hausdorff_A", "voxels_a", "voxels_b"}.

    Raises:
      InputError: when the masks have different shapes.
    """
    h = hausdorff(a, b)
    A, B = _masks(a, b)
    return {"dice": dice(A, B), "jaccard": jaccard(A, B), "hausdorff_px": h,
            "hausdorff_A": h * float(pixel_size) if pixel_size else math.nan,
            "voxels_a": int(A.sum()), "voxels_b": int(B.sum())}


# ----------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------
def paired_tests(a: Sequence[float], b: Sequence[float]) -> Dict[str, object]:
    """Paired t-test (Student) and two-sided Wilcoxon signed-rank test (Wilcoxon
    1945) of a against b, with ``scipy.stats.ttest_rel`` and ``scipy.stats.wilcoxon``.

    Pairs with a non-finite value (e.g. PSNR inf for identical images) are left
    out; ``n`` is the number of pairs used.  p-values are NaN when a test is
    undefined (fewer than 2 pairs; constant differences for the t-test; all
    differences zero for Wilcoxon).

    Args:
      a, b: one value per pair (e.g. per-tilt PSNR of two methods), same length.

    Returns:
      n, mean_a, mean_b, mean_diff (a - b), median_diff, t_statistic,
      t_pvalue, wilcoxon_statistic, wilcoxon_pvalue.

    Raises:
      InputError: when a and b hold different numbers of values.
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"paired tests need the same number of values ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    d = x - y
    out: Dict[str, object] = {"n": int(len(d)),
                              "mean_a": float(x.mean()) if len(x) else math.nan,
                              "mean_b": float(y.mean()) if len(y) else math.nan,
                              "mean_diff": float(d.mean()) if len(d) else math.nan,
                              "median_diff": float(np.median(d)) if len(d) else math.nan,
                              "t_statistic": math.nan, "t_pvalue": math.nan,
                              "wilcoxon_statistic": math.nan, "wilcoxon_pvalue": math.nan}
    if len(d) >= 2:
        if np.all(d == d[0]):
            # Constant differences: t undefined (zero variance).
            pass
        else:
            t = stats.ttest_rel(x, y)
            out["t_statistic"], out["t_pvalue"] = float(t.statistic), float(t.pvalue)
        if np.any(d != 0):
            w = stats.wilcoxon(x, y, alternative="two-sided")
            out["wilcoxon_statistic"], out["wilcoxon_pvalue"] = float(w.statistic), float(w.pvalue)
    return out


def spearman(a, b, max_points: int = 4_000_000) -> float:
    """Spearman rank correlation (Spearman 1904; ``scipy.stats.spearmanr``) of two
    equally sized arrays of any shape, flattened; above ``max_points`` values a
    regular stride of both is used (memory of large tilts).  Returns a float in
    [-1, 1], NaN when either array is constant or has fewer than 2 values.

    Raises:
        ValueError: when the arrays differ in size.
    """
    from scipy.stats import spearmanr
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"spearman: {x.size} and {y.size} values")
    if x.size > max_points:
        step = int(math.ceil(x.size / max_points))
        x, y = x[::step], y[::step]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).correlation)


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """Median, mean, std, min, max of the finite values, and n (finite count)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    f = v[np.isfinite(v)]
    if f.size == 0:
        return {"n": 0, "median": math.nan, "mean": math.nan, "std": math.nan,
                "min": math.nan, "max": math.nan}
    return {"n": int(f.size), "median": float(np.median(f)), "mean": float(f.mean()),
            "std": float(f.std()), "min": float(f.min()), "max": float(f.max())}


def json_safe(obj):
    """Nested dicts/lists/arrays with numpy scalars -> plain Python (for json.dump).

    Non-finite floats stay floats: Python's json writes them as Infinity/NaN and
    reads them back as floats (PSNR of identical images is inf)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj
