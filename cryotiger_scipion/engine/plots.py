"""Evaluation figures (matplotlib, headless).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never
through pyplot, so nothing here changes the process's matplotlib backend (the
Scipion GUI process imports this module too).  Every function writes a PNG
atomically and returns its path.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from .outputs import atomic_path

METRIC_LABELS = {"psnr": "PSNR (dB)", "rmse": "RMSE (input units)", "ssim": "SSIM",
                 "std": "std contrast", "gradient": "gradient contrast",
                 "defocus_diff": "|defocus difference| (A)"}


METRIC_TITLES = {"psnr": "PSNR", "rmse": "RMSE", "ssim": "SSIM", "std": "std contrast",
                 "gradient": "gradient contrast", "defocus_diff": "defocus difference"}


def _title(m: str) -> str:
    return METRIC_TITLES.get(m, m)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def _finite(values) -> np.ndarray:
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    return v[np.isfinite(v)]


def _boxplot(ax, groups: Dict[str, Sequence[float]], ylabel: str, title: str = "") -> None:
    names = list(groups)
    data = [_finite(groups[n]) for n in names]
    # matplotlib cannot draw an empty box: use a NaN placeholder.
    data = [d if d.size else np.array([np.nan]) for d in data]
    ax.boxplot(data, showmeans=False, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0)
    rng = np.random.default_rng(0)
    for k, d in enumerate(data, 1):
        ax.plot(k + rng.uniform(-0.12, 0.12, d.size), d, ".", alpha=0.5, ms=4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def draw_boxplots(fig, panels: Dict[str, Dict[str, Sequence[float]]], title: str = "") -> None:
    """Draw one box-plot panel per entry of ``panels`` (panel label, e.g. a
    metric name -> {group: values}) side by side into ``fig`` (a matplotlib
    Figure); non-finite values are left out, points are overlaid.
    """
    for k, (label, groups) in enumerate(panels.items()):
        _boxplot(fig.add_subplot(1, len(panels), k + 1), groups, METRIC_LABELS.get(label, label),
                 _title(label))
    if title:
        fig.suptitle(title)


def boxplot_figure(groups: Dict[str, Sequence[float]], path: str, ylabel: str,
                   title: str = "") -> str:
    """Write one box plot (one box per group of ``groups``, points overlaid;
    non-finite values are left out) as a PNG at ``path``, y axis ``ylabel``.

    Returns:
      ``path``.

    Raises:
      OSError: when the PNG cannot be written (read-only folder, full disk).
    """
    fig = _figure(max(3.5, 1.2 * len(groups) + 1.5), 4)
    _boxplot(fig.add_subplot(1, 1, 1), groups, ylabel, title)
    return _save(fig, path)


def boxplots_figure(panels: Dict[str, Dict[str, Sequence[float]]], path: str, title: str = "") -> str:
    """Write several box-plot panels side by side (see :func:`draw_boxplots`) as
    a PNG at ``path``.

    Returns:
      ``path``.

    Raises:
      OSError: when the PNG cannot be written (read-only folder, full disk).
    """
    n = max(1, len(panels))
    groups = max((len(g) for g in panels.values()), default=1)
    fig = _figure(n * max(3.5, 1.2 * groups + 1.5), 4.2)
    draw_boxplots(fig, panels, title)
    return _save(fig, path)


def draw_holdout_boxplots(fig, report: dict, metrics: Optional[Sequence[str]] = None,
                          title: str = "") -> None:
    """Draw one box-plot panel per metric (one box per method) into ``fig``
    (a matplotlib Figure, e.g. a Scipion Plotter's).  ``metrics`` default:
    the report's ``metrics`` (psnr, rmse, ssim and, when estimated, defocus_diff)."""
    metrics = metrics or report.get("metrics", ("psnr", "rmse", "ssim"))
    methods = report["methods"]
    for k, m in enumerate(metrics):
        _boxplot(fig.add_subplot(1, len(metrics), k + 1), {n: methods[n][m] for n in methods},
                 METRIC_LABELS.get(m, m), _title(m))
    if title:
        fig.suptitle(title)


def draw_holdout_per_tilt(fig, report: dict, metrics: Optional[Sequence[str]] = None) -> None:
    """Draw each metric against the tilt angle (one line per method) into ``fig``.
    Reports that pool several tilt series (``series`` per value) are drawn as points."""
    metrics = metrics or report.get("metrics", ("psnr", "rmse", "ssim"))
    methods = report["methods"]
    for k, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for n in methods:
            ang = np.asarray(methods[n].get("angles", report.get("angles", [])), dtype=float)
            vals = np.asarray([float(v) for v in methods[n][m]])
            ok = np.isfinite(vals)
            style = "." if "series" in methods[n] else ".-"
            ax.plot(ang[ok], vals[ok], style, label=n)
        ax.set_xlabel("tilt angle (degrees)")
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)


def holdout_figure_names(out_dir: str, metrics: Sequence[str]) -> List[str]:
    """Paths :func:`holdout_figures` writes in ``out_dir`` for ``metrics``."""
    return [os.path.join(out_dir, n) for n in
            ["holdout_boxplots.png"] + [f"holdout_{m}.png" for m in metrics] + ["holdout_per_tilt.png"]]


def holdout_figures(report: dict, out_dir: str, metrics: Optional[Sequence[str]] = None,
                    title: str = "") -> List[str]:
    """Write the figures of a hold-out report (the ``cryotiger holdout`` R.json
    dict) into ``out_dir`` (made when missing):

    * ``holdout_boxplots.png``: one panel per metric, one box per method (as
      the paper's Fig. 2, Majtner et al. 2025);
    * ``holdout_<metric>.png``: each panel alone;
    * ``holdout_per_tilt.png``: each metric against the tilt angle (degrees).

    Args:
      report: the report (``methods`` -> name -> per-tilt values per metric).
      out_dir: the folder.
      metrics: metric keys to draw (default: the report's ``metrics``).
      title: figure title.

    Returns:
      The paths written (:func:`holdout_figure_names`).

    Raises:
      KeyError: when a method of the report lacks one of ``metrics``.
      OSError: when a PNG or the folder cannot be written.
    """
    metrics = metrics or report.get("metrics", ("psnr", "rmse", "ssim"))
    os.makedirs(out_dir, exist_ok=True)
    methods = report["methods"]
    paths = []
    fig = _figure(4.0 * len(metrics), 4.2)
    draw_holdout_boxplots(fig, report, metrics, title)
    paths.append(_save(fig, os.path.join(out_dir, "holdout_boxplots.png")))
    for m in metrics:
        paths.append(boxplot_figure({n: methods[n][m] for n in methods},
                                    os.path.join(out_dir, f"holdout_{m}.png"),
                                    METRIC_LABELS.get(m, m), title or _title(m)))
    fig = _figure(4.0 * len(metrics), 3.8)
    draw_holdout_per_tilt(fig, report, metrics)
    paths.append(_save(fig, os.path.join(out_dir, "holdout_per_tilt.png")))
    return paths


def draw_pr_curves(fig, curves: Dict[str, dict], title: str = "") -> None:
    """Precision-recall curves (dicts from ``metrics.detection_curve``) into ``fig``."""
    ax = fig.add_subplot(1, 1, 1)
    for name, c in curves.items():
        auc = c.get("pr_auc")
        auc = None if auc is None else float(auc)
        auc_txt = "" if auc is None or math.isnan(auc) else f" AUC {auc:.3f}"
        style = "o" if len(c["recall"]) == 1 else "-"
        ax.plot(c["recall"], c["precision"], style,
                label=f"{name}{auc_txt}, best F1 {float(c.get('best_f1', float('nan'))):.3f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title or "precision-recall")


def pr_curve_figure(curves: Dict[str, dict], path: str, title: str = "") -> str:
    """Write precision-recall curves (dicts from ``metrics.detection_curve``,
    by name), PR-AUC and best F1 in the legend, as a PNG at ``path``.

    Returns:
      ``path``.

    Raises:
      OSError: when the PNG cannot be written (read-only folder, full disk).
    """
    fig = _figure(5, 4.5)
    draw_pr_curves(fig, curves, title)
    return _save(fig, path)
def f1_threshold_figure(curves: Dict[str, dict], path: str, title: str = "") -> str:
    """Write F1 against the score threshold for each curve that has thresholds
    (dicts from ``metrics.detection_curve``) as a PNG at ``path``.

    Returns:
      ``path``.

    Raises:
      OSError: when the PNG cannot be written (read-only folder, full disk).
    """
    fig = _figure(5, 4)
    ax = fig.add_subplot(1, 1, 1)
    for name, c in curves.items():
        if c.get("thresholds"):
            ax.plot(c["thresholds"], c["f1"], "-", label=name)
    ax.set_xlabel("score threshold")
    ax.set_ylabel("F1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "F1 over score thresholds")
    return _save(fig, path)


def draw_bars(fig, values: Dict[str, Dict[str, float]], title: str = "") -> None:
    """Grouped bars ``values[item][metric]`` into ``fig``."""
    items = list(values)
    metrics = sorted({m for v in values.values() for m in v})
    ax = fig.add_subplot(1, 1, 1)
    w = 0.8 / max(1, len(metrics))
    x = np.arange(len(items))
    for k, m in enumerate(metrics):
        ax.bar(x + k * w, [float(values[i].get(m, np.nan)) for i in items], w, label=m)
    ax.set_xticks(x + w * (len(metrics) - 1) / 2)
    ax.set_xticklabels(items, rotation=20 if len(items) > 3 else 0)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)


def bar_figure(values: Dict[str, Dict[str, float]], path: str, title: str = "") -> str:
    """Write grouped bars ``values[item][metric]`` (e.g. Dice, Jaccard per
    tomogram) as a PNG at ``path``.

    Returns:
      ``path``.

    Raises:
      OSError: when the PNG cannot be written (read-only folder, full disk).
    """
    n = len(values) * max(1, len({m for v in values.values() for m in v}))
    fig = _figure(max(4, n / 2 + 2), 4)
    draw_bars(fig, values, title)
    return _save(fig, path)
