"""Hold-out ("restore") evaluation: drop every second tilt, synthesise it back
from its neighbours with each method, and compare with the real one.

Each method runs the ordinary interpolation driver
(:func:`interpolate.run_interpolation` with ``mode='restore'``); each synthetic
output tilt records the input index of the real tilt it ``replaces``.  For each
such tilt the report holds PSNR, RMSE and SSIM of synthetic against real.

Data range (PSNR and SSIM), decided from the REAL tilt only, so that every
method is scored on the same scale (``data_range`` argument):

* ``tilt`` (default): max - min of the real tilt;
* ``robust``: 99.5th - 0.5th percentile of the real tilt (ignores hot pixels,
  gold beads);
* ``stack``: max - min over all real input tilts used (one value for the
  series, like the public notebook's global min/max scaling to 8 bits);
* a number: that value for every tilt.

Images are compared in the input's intensity units, without any rescaling.

Methods that write confidence maps (FILM, issue 13) also get, per held-out
tilt, ``confidence`` (the map's mean) and ``confidence_rho_pixel`` (Spearman
correlation of the map with |synthetic - real| over the pixels), with
``median_confidence_rho_pixel`` and ``confidence_rho_tilt`` (Spearman of the
per-tilt confidence with the tilt's mean |error|).  Negative rho: low
confidence where the error is large, as it should be.  Against a noisy real
tilt the error is mostly the real tilt's own noise, which no map can predict
(and which varies from tilt to tilt with the dose and the thickness), so the
report also gives ``excess_mse`` per tilt: the mean squared difference minus
the real tilt's noise variance (robust, from neighbouring pixels), an estimate
of the squared error against the noise-free tilt, since the real tilt's noise
is independent of the synthetic one; and ``confidence_rho_tilt_excess``, the
per-tilt Spearman against it (docs/benchmarks.md); and
``confidence_rho_tilt_relative``, against the mean |error| divided by the
tilt's data range (the scale PSNR uses: a faded tilt's absolute errors are
small because everything in it is small, and the maps are computed on
pair-normalised images).
"""
from __future__ import annotations

import itertools
import math
import re
import json
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from . import InputError
from . import metrics as M
from .formats.mrc import check_finite_views, open_stack
from .outputs import atomic_path
from .interpolate import confidence_path, describe_input, get_interpolator, run_interpolation

METRICS = ("psnr", "rmse", "ssim")
#: Confidence maps beside a restored stack (``interpolate.confidence_path``).
CONFIDENCE_SUFFIX = "_confidence.mrc"
#: The files of one kept restored stack NN_<name>: stack, maps (FILM), angles, record.
KEPT_SUFFIXES = (".mrc", CONFIDENCE_SUFFIX, ".tlt", ".json")
RANGE_MODES = ("tilt", "robust", "stack")


@dataclass
class MethodSpec:
    """One method to evaluate: a unique ``name``, the ``method`` ('linear' or
    'film') and its interpolator options (FILM: model, tile_size, ...)."""
    name: str
    method: str
    options: dict = field(default_factory=dict)


def method_specs(entries: Sequence[dict]) -> List[MethodSpec]:
    """Build named specs from ``[{'method': 'film', 'model': DIR, 'name': None}, ...]``.

    Names: the ``name`` given, else the method name; a repeated default name
    gets a suffix: film, film-2, film-3 ... (in command-line order).  Names
    must be unique; FILM needs a model.  Keys other than method and name
    (None values dropped) become the interpolator options.

    Returns:
      One :class:`MethodSpec` per entry, in order.

    Raises:
      InputError: for a name given twice, an unknown method, --method film
        without a model, a model after --method linear, or no entry at all.
    """
    specs: List[MethodSpec] = []
    used = set()
    counts: Dict[str, int] = {}
    explicit = [e.get("name") for e in entries if e.get("name")]
    dup = {n for n in explicit if explicit.count(n) > 1}
    if dup:
        raise InputError(f"method name '{sorted(dup)[0]}' is given twice; give each --name once")
    for e in entries:
        method = e.get("method")
        if method not in ("linear", "film"):
            raise InputError(f"unknown method '{method}'; use 'linear' or 'film'")
        options = {k: v for k, v in e.items() if k not in ("method", "name") and v is not None}
        if method == "film" and not options.get("model"):
            raise InputError("--method film needs --model DIR after it (a FILM SavedModel folder; "
                             "'cryotiger model init' makes a random one for testing)")
        if method == "linear" and options.get("model"):
            raise InputError(f"--model {options['model']} follows --method linear; a model "
                             "belongs after --method film")
        name = e.get("name")
        if not name:
            counts[method] = counts.get(method, 0) + 1
            name = method if counts[method] == 1 else f"{method}-{counts[method]}"
            while name in used or name in explicit:
                counts[method] += 1
                name = f"{method}-{counts[method]}"
        used.add(name)
        specs.append(MethodSpec(name=name, method=method, options=options))
    if not specs:
        raise InputError("no method to evaluate; give --method linear and/or --method film --model DIR")
    return specs


def _data_ranges(real: np.ndarray, mode: Union[str, float], stack_range: float) -> float:
    if isinstance(mode, (int, float)):
        return float(mode)
    if mode == "tilt":
        return float(np.ptp(real))
    if mode == "robust":
        return M.robust_data_range(real)
    if mode == "stack":
        return stack_range
    raise InputError(f"unknown data range '{mode}'; use tilt, robust, stack or a number")


def parse_data_range(text: Union[str, float]) -> Union[str, float]:
    """Parse a ``--data-range`` value: one of ``RANGE_MODES`` ('tilt', 'robust',
    'stack') as a string, or a positive number (intensity units) as a float.

    Raises:
      InputError: for anything else (non-numbers, 0, negative, NaN, inf).
    """
    if isinstance(text, (int, float)):
        value = float(text)
    elif str(text) in RANGE_MODES:
        return str(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--data-range '{text}' is neither a number nor one of "
                             f"{', '.join(RANGE_MODES)}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"--data-range {value} must be a positive number")
    return value


def run_holdout(input_path: str, methods: Sequence[MethodSpec], angles_path: Optional[str] = None,
                angles: Optional[Sequence[float]] = None, mdoc_path: Optional[str] = None,
                exclude: Sequence[int] = (), per_gap: int = 1, xf: Optional[np.ndarray] = None,
                acquisition: Optional[dict] = None,
                data_range: Union[str, float] = "tilt", report_path: Optional[str] = None,
                plot_dir: Optional[str] = None, keep_dir: Optional[str] = None,
                progress: bool = True, ctf: Optional[dict] = None) -> dict:
    """Evaluate ``methods`` on one tilt series; return (and write) the report.

    Each method restores the held-out tilts with
    :func:`interpolate.run_interpolation` (``mode='restore'``); each restored
    tilt is compared with the real one: PSNR (dB) and SSIM (Wang et al. 2004)
    at the data range of the real tilt (module docstring), RMSE in intensity
    units (engine/metrics.py).  Paired t-tests and Wilcoxon signed-rank tests
    compare every two methods per metric.

    Args:
      input_path: aligned MRC stack, (n, y, x).
      methods: the methods (:func:`method_specs`), unique names.
      angles_path, angles: tilt angles in degrees (file or list), one per image.
      mdoc_path: SerialEM .mdoc (acquisition order, dose).
      exclude: 0-based indices of excluded views.
      per_gap: tilts dropped between two kept ones (1 = every second tilt).
      xf: (n, 2, 3) IMOD transforms applied to every input image first (the
        real tilts are aligned the same way before the comparison).
      acquisition: orders/doses/accum_doses (e/A^2) for :func:`describe_input`.
      data_range: "tilt", "robust", "stack" or a positive number (see
        :func:`parse_data_range`).
      report_path: JSON report to write (also written again with ``plots``).
      plot_dir: folder for the box plots (engine/plots.py ``holdout_figures``).
      keep_dir: folder for the restored stacks (``NN_<name>.mrc`` and its
        .tlt/.json); default: a temporary folder, removed.
      progress: print progress.
      ctf: when given (a dict of ``engine.ctf.Microscope`` and ``FitOptions``
        fields; ``pixel_size`` in Angstrom defaults to the stack header), the
        defocus of every real and synthetic held-out tilt (mean defocus, no
        astigmatism fit unless ``astigmatism=True``) is estimated with the
        built-in CTF estimator and the report gets ``defocus_diff``
        (|synthetic - real|, Angstrom) per method and ``defocus_real``.

    Returns:
      The report (JSON-safe dict): ``methods`` -> name -> per-tilt lists and
      ``median_*``/``mean_*`` of each metric, ``angles``, ``input_indices``,
      ``data_range``, ``paired_tests``, ``n_tilts`` ... (module docstring and
      docs/evaluation.md).

    Raises:
      InputError: for a bad data range, a missing stack, metadata that
        :func:`describe_input` refuses, non-finite views, repeated method
        names, a number of transforms other than the number of images, a
        constant real tilt (data range 0), bad CTF options, or what
        :func:`get_interpolator` and :func:`run_interpolation` raise.
      CryoTigerError: an unusable FILM model (from the interpolator).
    """
    data_range = parse_data_range(data_range)
    if not os.path.exists(input_path):
        raise InputError(f"{input_path}: input stack not found")
    tilts = describe_input(input_path, angles_path=angles_path, angles=angles, mdoc_path=mdoc_path,
                           exclude=exclude, **(acquisition or {}))
    with open_stack(input_path) as m:      # every view used must be finite, before any work
        check_finite_views(m.data if m.data.ndim == 3 else m.data[None],
                           [t.index for t in tilts if not t.excluded], input_path)
    names = [s.name for s in methods]
    if len(set(names)) != len(names):
        raise InputError(f"method names {names} are not unique")
    # Build every interpolator first: a bad model folder fails before any work.
    interpolators = [get_interpolator(s.method, **s.options) for s in methods]
    metric_names = list(METRICS) + (["defocus_diff"] if ctf is not None else [])
    if ctf is None:
        defocus_of = None
    else:
        from .ctf import FitOptions, Microscope, estimate_image
        from .formats.mrc import resolve_pixel_size
        scope_keys = {"pixel_size", "voltage", "cs", "amp_contrast"}
        scope_args = {k: v for k, v in ctf.items() if k in scope_keys and v is not None}
        scope_args["pixel_size"] = resolve_pixel_size(ctf.get("pixel_size"), input_path)
        scope = Microscope(**scope_args)
        # Mean defocus only (no astigmatism fit: ~10x faster, and the difference
        # of mean defoci is what is compared); a caller may pass astigmatism=True.
        fit_args = {"astigmatism": False}
        fit_args.update({k: v for k, v in ctf.items() if k not in scope_keys and v is not None})
        fit = FitOptions(**fit_args)
        scope.check()
        fit.check(scope.pixel_size)

        def defocus_of(img, angle):
            return float(estimate_image(np.asarray(img, dtype=np.float32), scope, fit, angle).defocus)
    report: dict = {"input": os.path.abspath(input_path),
                    "angles_file": os.path.abspath(angles_path) if angles_path else None,
                    "mode": "restore", "per_gap": int(per_gap),
                    "data_range_mode": data_range if isinstance(data_range, str) else "value",
                    "metrics": metric_names, "methods": {}}
    warnings = [f"{s.name}: {i.fallback_warning}" for s, i in zip(methods, interpolators)
                if getattr(i, "fallback_warning", None)]
    if warnings:  # a FILM model run as an opaque SavedModel (float32 only, no fine-tuning)
        report["warnings"] = warnings
    # Restored stacks go to a hidden work folder beside the report (removed at
    # the end, or by the next run after a kill); with keep_dir they are moved
    # there at the end, together with the report (engine.outputs).
    if report_path:
        from .outputs import active_temp_folder
        work = active_temp_folder(report_path)
    else:
        work = tempfile.mkdtemp(prefix="cryotiger-holdout-")
    kept = []
    try:
        with open_stack(input_path) as m:
            data = m.data if m.data.ndim == 3 else m.data[None]
            if xf is not None and len(xf) != data.shape[0]:
                raise InputError(f"{len(xf)} transforms for {data.shape[0]} images; give one per image")

            used = [t.index for t in tilts if not t.excluded]
            from .align import Aligner
            aligner = Aligner(xf, data.shape[1:], warn=False)

            def real_image(i: int) -> np.ndarray:
                img = aligner(np.asarray(data[i], dtype=np.float32), i)
                return np.asarray(img, dtype=np.float64)

            if data_range == "stack":
                lo, hi = math.inf, -math.inf
                for i in used:
                    im = real_image(i)
                    lo, hi = min(lo, float(im.min())), max(hi, float(im.max()))
                stack_range = hi - lo
            else:
                stack_range = float("nan")
            reference: Optional[List[int]] = None
            ranges: List[float] = []
            real_defocus: List[float] = []
            for j, (spec, interp) in enumerate(zip(methods, interpolators)):
                out = os.path.join(work, kept_stack_name(j, spec.name))
                t0 = time.monotonic()
                plan = run_interpolation(input_path, out, tilts, interp, per_gap=per_gap,
                                         mode="restore", xf=xf, label=f"holdout {spec.name}",
                                         progress=progress)
                seconds = time.monotonic() - t0
                synth = [o for o in plan if o.synthetic and o.replaces is not None]
                if reference is None:
                    reference = [o.replaces for o in synth]
                    report["input_indices"] = reference
                    report["angles"] = [round(float(o.angle), 4) for o in synth]
                    ranges = [_data_ranges(real_image(i), data_range, stack_range)
                              for i in reference]
                    bad = [i for i, r in zip(reference, ranges) if not r > 0]
                    if bad:
                        raise InputError(f"{input_path}: image {bad[0] + 1} is constant (data range 0); "
                                         "exclude it (--exclude) or give --data-range VALUE")
                    report["data_range"] = ranges
                    if defocus_of is not None:
                        real_defocus = [defocus_of(real_image(i), o.angle)
                                        for i, o in zip(reference, synth)]
                        report["defocus_real"] = real_defocus
                res = {k: [] for k in metric_names}
                conf_file = confidence_path(out)
                scores = []         # per tilt (confidence, rho per pixel, mean |error|, excess MSE)
                with open_stack(out) as r, \
                        (open_stack(conf_file) if os.path.exists(conf_file) else nullcontext()) as conf_maps:
                    for o, rng in zip(synth, ranges):
                        real = real_image(o.replaces)
                        syn = np.asarray(r.data[o.index], dtype=np.float64)
                        res["psnr"].append(M.psnr(syn, real, rng))
                        res["rmse"].append(M.rmse(syn, real))
                        res["ssim"].append(M.ssim(syn, real, rng))
                        if defocus_of is not None:
                            dz = defocus_of(syn, o.angle)
                            res["defocus_diff"].append(abs(dz - real_defocus[len(res["defocus_diff"])]))
                        if conf_maps is not None:
                            scores.append(confidence_scores(conf_maps.data[o.index], syn, real,
                                                            res["rmse"][-1], rng))
                entry = {"method": spec.method,
                         "model": os.path.abspath(spec.options["model"]) if spec.options.get("model")
                         else None,
                         "angles": report["angles"], "seconds": round(seconds, 3)}
                for k in metric_names:
                    entry[k] = res[k]
                    s = M.summarize(res[k])
                    entry[f"median_{k}"] = float(np.median(res[k])) if res[k] else float("nan")
                    entry[f"mean_{k}"] = s["mean"]
                if scores:
                    entry.update(confidence_summary(scores))
                report["methods"][spec.name] = entry
                for suffix in KEPT_SUFFIXES:
                    p = os.path.splitext(out)[0] + suffix
                    if keep_dir:
                        if os.path.exists(p):        # no _confidence.mrc for linear
                            kept.append(p)
                    elif os.path.exists(p):
                        os.remove(p)
        if keep_dir:
            from .outputs import place
            os.makedirs(keep_dir, exist_ok=True)
            for p in kept:
                place(os.path.join(keep_dir, os.path.basename(p)), p)
    finally:
        from .outputs import remove_path
        remove_path(work)
    report["n_tilts"] = len(report.get("input_indices", []))
    tests = []
    for a, b in itertools.combinations(names, 2):
        for k in metric_names:
            t = M.paired_tests(report["methods"][a][k], report["methods"][b][k])
            tests.append({"a": a, "b": b, "metric": k, **t})
    report["paired_tests"] = tests
    report = M.json_safe(report)
    if report_path:
        write_report(report, report_path)
    if plot_dir:
        from .plots import holdout_figures
        report["plots"] = holdout_figures(report, plot_dir, metrics=metric_names,
                                          title=os.path.basename(input_path))
        if report_path:
            write_report(report, report_path)
    return report


def confidence_scores(cmap, syn: np.ndarray, real: np.ndarray, rmse: float, data_range: float) -> tuple:
    """How one synthetic tilt's confidence map (y, x) ranks its error against the
    real tilt (both (y, x), intensity units; ``rmse`` their RMSE, ``data_range``
    the range the tilt's PSNR uses): (mean confidence, Spearman of map with
    |syn - real| over the pixels, mean |error|, excess MSE, mean |error| /
    data_range).  The excess is MSE - var(noise of real): since
    E[(syn - real)^2] = E[(syn - truth)^2] + var(noise of real) (the real
    tilt's noise is not in syn), it estimates the error against the noise-free
    tilt (noise: ``film.confidence.noise_sigma``)."""
    from .film.confidence import noise_sigma
    cmap = np.asarray(cmap, dtype=np.float64)
    err = np.abs(syn - real)
    return (float(cmap.mean()), M.spearman(cmap, err), float(err.mean()),
            float(rmse) ** 2 - noise_sigma(real) ** 2, float(err.mean()) / float(data_range))


def confidence_summary(scores: Sequence[tuple]) -> dict:
    """The report fields of a method with confidence maps (issue 13) from the
    per-tilt :func:`confidence_scores`: ``confidence``, ``confidence_rho_pixel``,
    ``median_confidence_rho_pixel``, ``confidence_rho_tilt`` (against the mean
    |error|), ``confidence_rho_tilt_relative`` (against the mean |error| over
    the tilt's data range: the scale of PSNR, and of the pair-normalised maps),
    ``excess_mse``, ``confidence_rho_tilt_excess``.  Negative rho: low
    confidence where the error is large.  Undefined correlations (a constant map
    or error) are None (null in JSON), not NaN."""
    def rho(v):
        return v if np.isfinite(v) else None
    conf, rho_px, mae, excess, relative = (list(c) for c in zip(*scores))
    finite = [r for r in rho_px if np.isfinite(r)]
    return {"confidence": conf, "confidence_rho_pixel": [rho(r) for r in rho_px],
            "median_confidence_rho_pixel": float(np.median(finite)) if finite else None,
            "confidence_rho_tilt": rho(M.spearman(conf, mae)),
            "confidence_rho_tilt_relative": rho(M.spearman(conf, relative)), "excess_mse": excess,
            "confidence_rho_tilt_excess": rho(M.spearman(conf, excess))}


def kept_stack_name(j: int, name: str) -> str:
    """File name of the restored stack of the ``j``-th method (0-based) named
    ``name``: NN_<name>.mrc (its .tlt and .json beside it)."""
    return f"{j + 1:02d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.mrc"


def kept_files(keep_dir: str, names: Sequence[str], methods: Optional[Sequence[str]] = None) -> List[str]:
    """Every file ``run_holdout(keep_dir=...)`` writes for methods ``names`` (in
    order): ``keep_dir/NN_<name>.mrc``, ``.tlt`` and ``.json`` per method, and
    ``NN_<name>_confidence.mrc`` for the methods whose kind in ``methods`` (same
    order) is 'film' (confidence maps, issue 13).
    """
    out = []
    for j, name in enumerate(names):
        stem = os.path.splitext(kept_stack_name(j, name))[0]
        suffixes = [x for x in KEPT_SUFFIXES if x != CONFIDENCE_SUFFIX
                    or (methods is not None and methods[j] == "film")]
        out += [os.path.join(keep_dir, stem + s) for s in suffixes]
    return out


def write_report(report: dict, path: str) -> None:
    """Write a hold-out report (the dict of :func:`run_holdout`) as indented
    JSON at ``path``, atomically (``outputs.atomic_path``).

    Raises:
      OSError: when the file cannot be written.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)


def format_table(report: dict) -> str:
    """A plain-text table of a hold-out report: one row per method with the
    count and the medians of PSNR (dB), RMSE (intensity units), SSIM and, when
    measured, |defocus difference| (Angstrom); a line per method with confidence
    maps (their Spearman correlation with the error); then one line per paired test."""
    lines = [f"{'method':<16} {'n':>4} {'median PSNR':>12} {'median RMSE':>12} {'median SSIM':>12}"]
    dz = "defocus_diff" in report.get("metrics", [])
    if dz:
        lines[0] += f" {'median |ddz| A':>15}"
    for name, e in report["methods"].items():
        lines.append(f"{name:<16} {len(e['psnr']):>4} {float(e['median_psnr']):>12.3f} "
                     f"{float(e['median_rmse']):>12.4g} {float(e['median_ssim']):>12.4f}"
                     + (f" {float(e['median_defocus_diff']):>15.0f}" if dz else ""))
    for name, e in report["methods"].items():
        if "confidence_rho_tilt" in e:
            def f(v):
                return "undefined" if v is None else f"{float(v):+.3f}"
            lines.append(f"{name}: confidence vs |error| (Spearman; negative = low confidence where the "
                         f"error is large): per tilt {f(e['confidence_rho_tilt'])} (relative to the "
                         f"tilt's range {f(e.get('confidence_rho_tilt_relative'))}), per pixel "
                         f"median {f(e['median_confidence_rho_pixel'])}; per tilt against the excess "
                         f"over the real tilt's noise {f(e['confidence_rho_tilt_excess'])}")
    for t in report.get("paired_tests", []):
        lines.append(f"{t['a']} vs {t['b']} {t['metric']}: n={t['n']} mean diff {float(t['mean_diff']):.4g}, "
                     f"t-test p={float(t['t_pvalue']):.3g}, Wilcoxon p={float(t['wilcoxon_pvalue']):.3g}")
    return "\n".join(lines)


def combine_reports(reports: Dict[str, dict]) -> dict:
    """Pool hold-out reports of several tilt series ({tsId: report}).

    Returns a report of the same shape (``methods`` -> name -> ``psnr``,
    ``rmse``, ``ssim`` lists and medians over ALL held-out tilts, plus
    ``series``: the tsId of each value, and ``angles``), ``per_series``
    (tsId -> name -> median_*), and ``paired_tests`` on the pooled values.
    Methods missing from a series are left out of the pooling for that series;
    paired tests use the series that have both methods.
    """
    names: List[str] = []
    metric_names = list(METRICS)
    for r in reports.values():
        metric_names += [k for k in r.get("metrics", METRICS) if k not in metric_names]
        for n in r["methods"]:
            if n not in names:
                names.append(n)
    pooled = {n: {k: [] for k in metric_names} for n in names}
    for n in names:
        pooled[n].update({"series": [], "angles": []})
    per_series = {}
    for tsId, r in reports.items():
        per_series[tsId] = {}
        for n, e in r["methods"].items():
            for k in metric_names:
                pooled[n][k].extend(float(v) for v in e.get(k, []))
            pooled[n]["series"].extend([tsId] * len(e["psnr"]))
            pooled[n]["angles"].extend(e.get("angles", r.get("angles", [])))
            per_series[tsId][n] = {f"median_{k}": e[f"median_{k}"] for k in metric_names
                                   if f"median_{k}" in e}
            per_series[tsId][n]["n"] = len(e["psnr"])
            pooled[n]["method"] = e.get("method")
            pooled[n]["model"] = e.get("model")
    for n in names:
        for k in metric_names:
            v = pooled[n][k]
            pooled[n][f"median_{k}"] = float(np.median(v)) if v else float("nan")
            pooled[n][f"mean_{k}"] = M.summarize(v)["mean"]
    tests = []
    for a, b in itertools.combinations(names, 2):
        for k in metric_names:
            xa, xb = [], []
            for r in reports.values():
                if a in r["methods"] and b in r["methods"] and k in r["methods"][a]:
                    xa.extend(r["methods"][a][k])
                    xb.extend(r["methods"][b][k])
            tests.append({"a": a, "b": b, "metric": k, **M.paired_tests(xa, xb)})
    return M.json_safe({"metrics": metric_names, "methods": pooled, "per_series": per_series, "paired_tests": tests,
                        "series": list(reports), "n_tilts": sum(len(pooled[n]["psnr"])
                                                                for n in names[:1])})
