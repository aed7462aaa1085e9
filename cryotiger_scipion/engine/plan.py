"""Insertion plans: which output tilts exist, and from which inputs they come.

A plan is computed from the input tilts (angle, acquisition order, dose,
excluded flag) alone; it never touches pixels.  Rules (documented in the
README, section "What the output tilts are"):

* Tilts are sorted by angle.  Excluded views are never used as anchors.
* ``add`` mode: between every two neighbouring anchors, K new tilts at evenly
  spaced angles (fractions k/(K+1), k = 1..K).  All input tilts are kept;
  excluded ones stay in the output, still flagged excluded.
* ``at`` (add mode, ``--at ANGLES``): instead of K per gap, one new tilt at
  each given angle, in the gap of usable tilts that contains it (angles outside
  the usable range, on a usable tilt, or given twice are refused).
* ``restore`` mode: of the anchors (sorted by angle) keep one in every K+1,
  starting with the first, and synthesise the K dropped in between at their
  own (real) angles, each recording which real tilt it ``replaces``.  Dropped
  tilts after the last kept one cannot be interpolated and are left out;
  excluded views are left out too (restore is an evaluation mode).
* Each synthetic tilt: ``synthetic`` True, ``sources`` = the two anchors'
  0-based input stack indices, ``weights`` = linear weights by angular
  distance, a unique acquisition order after every real one (max + 1, + 2, ...
  in angle order), and dose by the same weights as its pixels:
  dose = (1-t) dose_a + t dose_b, accumulated dose likewise.
* Synthetic tilts also carry ``confidence`` (film: mean of the confidence map,
  see engine/film/confidence.py; None for methods without one), set by the
  driver; real tilts have 1.0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np

from . import InputError

ADD = "add"
RESTORE = "restore"


@dataclass
class InputTilt:
    """One image of the input stack: ``index`` (0-based stack position),
    ``angle`` (degrees), ``order`` (1-based acquisition order), ``dose`` (its
    exposure, e/A^2), ``accum_dose`` (dose received BEFORE it, e/A^2) and
    ``excluded`` (never used as an anchor).
    """
    index: int                  # 0-based position in the input stack
    angle: float                # degrees
    order: int                  # 1-based acquisition order
    dose: float = 0.0           # exposure of this image, e/A^2
    accum_dose: float = 0.0     # dose received before this image, e/A^2
    excluded: bool = False


@dataclass
class OutputTilt:
    """One image of the output stack (one entry of OUT.json, see :meth:`to_json`).

    ``angle`` in degrees; ``synthetic``; ``sources`` (0-based input indices:
    one for a real tilt, the two anchors for a synthetic one) with their linear
    ``weights`` (1 - t, t); ``acquisition_order`` (1-based; synthetic tilts after
    every real one); ``dose`` (exposure of the image) and ``accum_dose`` (dose
    before it), e/A^2, weighted like the pixels for synthetic tilts; ``excluded``;
    ``input_index`` (real tilts); ``fraction`` t in (0, 1) (synthetic);
    ``replaces`` (restore mode: input index of the real tilt it stands for);
    ``index`` (0-based output position); ``confidence`` (synthetic: mean of the
    confidence map in [0, 1], None without one; real: 1.0).
    """
    angle: float
    synthetic: bool
    sources: List[int]                  # 0-based input stack indices
    weights: List[float]                # linear weights of the sources
    acquisition_order: int
    dose: float
    accum_dose: float
    excluded: bool = False
    input_index: Optional[int] = None   # for real tilts: their input index
    fraction: float = 0.0               # synthetic: position between sources (0..1)
    replaces: Optional[int] = None      # restore mode: input index of the real tilt
    index: int = 0                      # 0-based position in the output stack
    confidence: Optional[float] = None  # synthetic: mean confidence (0..1); real: 1.0

    def to_json(self) -> dict:
        """The OUT.json entry of this tilt (README "What the output tilts are").

        Doses in e/A^2.  ``accum_dose`` is the dose received BEFORE the image
        (kept with this meaning: tools outside the repository read it); the
        same value is also written as ``dose_before``, and
        ``accumulated_dose_after`` = ``dose_before`` + ``dose`` is the dose
        after the image, which is what Scipion's AccumDose and STOPGAP's
        ``exposure`` mean."""
        d = asdict(self)
        d["dose_before"] = float(self.accum_dose)
        d["accumulated_dose_after"] = float(self.accum_dose) + float(self.dose)
        d["angle"] = round(float(self.angle), 4)
        d["weights"] = [round(float(w), 6) for w in self.weights]
        d["fraction"] = round(float(self.fraction), 6)
        if self.confidence is None:
            d.pop("confidence")
        else:
            d["confidence"] = round(float(self.confidence), 6)
        return d


def dose_before(doses: Sequence[float], orders: Sequence[int]) -> np.ndarray:
    """Dose received before each image (e/A^2), in the order of ``doses``:
    the sum of the doses (e/A^2, one per image) of the images acquired earlier
    by ``orders`` (acquisition order, one per image, unique; ties keep the
    given order).  The first image acquired gets 0.  This is the engine's and
    OUT.json's ``accum_dose`` (Scipion's AccumDose is this plus the image's
    own dose).  Returns a float64 array of len(doses)."""
    doses = np.asarray(doses, dtype=float)
    by_time = np.argsort(np.asarray(orders), kind="stable")
    before = np.zeros(len(doses))
    if len(doses):
        before[by_time] = np.concatenate([[0.0], np.cumsum(doses[by_time])[:-1]])
    return before


def make_input_tilts(angles: Sequence[float], orders: Optional[Sequence[int]] = None,
                     doses: Optional[Sequence[float]] = None,
                     accum_doses: Optional[Sequence[float]] = None,
                     excluded: Sequence[int] = ()) -> List[InputTilt]:
    """Build the input description of a stack from its per-image metadata.

    Args:
      angles: tilt angles in degrees, one per image in stack order.
      orders: 1-based acquisition orders, unique (default: the stack order).
      doses: exposure of each image, e/A^2 (default: 0).
      accum_doses: dose received before each image, e/A^2 (default:
        :func:`dose_before` of ``doses`` in acquisition order).
      excluded: 0-based stack indices of the excluded views.

    Returns:
      One :class:`InputTilt` per image, in stack order.

    Raises:
      InputError: when ``orders`` or ``doses`` do not have one value per
        image, orders repeat, or an excluded index is outside the stack.
    """
    n = len(angles)
    angles = np.asarray(angles, dtype=float)
    if orders is None:
        orders = np.arange(1, n + 1)
    orders = np.asarray(orders, dtype=int)
    if len(orders) != n:
        raise InputError(f"{len(orders)} acquisition orders for {n} tilts; give one per tilt")
    if len(set(orders.tolist())) != n:
        raise InputError("acquisition orders are not unique; every tilt needs its own")
    doses = np.zeros(n) if doses is None else np.asarray(doses, dtype=float)
    if len(doses) != n:
        raise InputError(f"{len(doses)} doses for {n} tilts; give one per tilt")
    if accum_doses is None:
        accum = dose_before(doses, orders)
    else:
        accum = np.asarray(accum_doses, dtype=float)
    bad = [i for i in excluded if not 0 <= i < n]
    if bad:
        raise InputError(f"excluded view {bad[0] + 1} does not exist: the stack has {n} "
                         "images (views are numbered from 1)")
    excl = set(int(i) for i in excluded)
    return [InputTilt(index=i, angle=float(angles[i]), order=int(orders[i]), dose=float(doses[i]),
                      accum_dose=float(accum[i]), excluded=i in excl) for i in range(n)]


def _synthetic(a: InputTilt, b: InputTilt, angle: float) -> OutputTilt:
    t = (angle - a.angle) / (b.angle - a.angle)
    w = [1.0 - t, t]
    return OutputTilt(angle=float(angle), synthetic=True, sources=[a.index, b.index], weights=w,
                      acquisition_order=0, dose=w[0] * a.dose + w[1] * b.dose,
                      accum_dose=w[0] * a.accum_dose + w[1] * b.accum_dose,
                      fraction=float(t))


def _real(t: InputTilt) -> OutputTilt:
    return OutputTilt(angle=t.angle, synthetic=False, sources=[t.index], weights=[1.0],
                      acquisition_order=t.order, dose=t.dose, accum_dose=t.accum_dose,
                      excluded=t.excluded, input_index=t.index)


def make_plan(tilts: Sequence[InputTilt], per_gap: int = 1, mode: str = ADD,
              at: Optional[Sequence[float]] = None) -> List[OutputTilt]:
    """The output tilts, sorted by angle (see the module docstring for the rules).

    Args:
      tilts: the input tilts (:func:`make_input_tilts`).
      per_gap: K new tilts per gap (add), or tilts dropped between two kept
        ones (restore); at least 1.
      mode: ``"add"`` or ``"restore"``.
      at: angles in degrees of the new tilts (add mode only), instead of
        ``per_gap`` evenly spaced ones per gap.

    Returns:
      The :class:`OutputTilt` list with ``index`` set (0-based output
      position) and unique acquisition orders for the synthetic tilts.

    Raises:
      InputError: for ``at`` with restore mode, ``per_gap`` < 1, an unknown
        mode, two usable tilts at the same angle, too few usable tilts
        (add: 2; restore: per_gap + 2), or bad ``at`` angles (none, not
        finite, repeated, outside the usable range, on a real tilt).
    """
    if at is not None and mode != ADD:
        raise InputError("--at ANGLES adds tilts at the given angles (add mode); leave out "
                         "--mode restore")
    if per_gap < 1:
        raise InputError(f"tilts per gap must be at least 1 (got {per_gap})")
    if mode not in (ADD, RESTORE):
        raise InputError(f"unknown mode '{mode}'; use 'add' or 'restore'")
    angles = [t.angle for t in tilts if not t.excluded]     # excluded views may share an angle
    if len(set(np.round(angles, 6))) != len(angles):
        raise InputError("two tilts share the same angle; every image needs its own tilt angle")
    anchors = sorted((t for t in tilts if not t.excluded), key=lambda t: t.angle)
    need = 2 if mode == ADD else per_gap + 2
    if len(anchors) < need:
        raise InputError(f"{len(anchors)} usable (not excluded) tilts; {mode} mode with "
                         f"{per_gap} per gap needs at least {need}")
    out: List[OutputTilt] = []
    if mode == ADD:
        out.extend(_real(t) for t in tilts)
        if at is not None:
            out.extend(_targets(anchors, at))
        for a, b in (zip(anchors[:-1], anchors[1:]) if at is None else ()):
            for k in range(1, per_gap + 1):
                out.append(_synthetic(a, b, a.angle + (b.angle - a.angle) * k / (per_gap + 1)))
    else:
        kept = anchors[::per_gap + 1]
        out.extend(_real(t) for t in kept)
        for j in range(len(kept) - 1):
            a, b = kept[j], kept[j + 1]
            for dropped in anchors[j * (per_gap + 1) + 1:(j + 1) * (per_gap + 1)]:
                s = _synthetic(a, b, dropped.angle)
                s.replaces = dropped.index
                out.append(s)
    # Stable: at equal angles, real before synthetic.
    out.sort(key=lambda o: (o.angle, o.synthetic))
    next_order = max(t.order for t in tilts) + 1
    for i, o in enumerate(out):
        o.index = i
        if o.synthetic:
            o.acquisition_order = next_order
            next_order += 1
    return out


def _targets(anchors: Sequence[InputTilt], at: Sequence[float]) -> List[OutputTilt]:
    """Synthetic tilts at the angles ``at`` between the sorted ``anchors``."""
    angles = np.array([float(a) for a in at], dtype=float)
    if angles.size == 0:
        raise InputError("--at: no angles given; write them as '12.5,17' or give a .tlt file")
    if not np.all(np.isfinite(angles)):
        raise InputError("--at: angles must be finite numbers (degrees)")
    if len(set(np.round(angles, 4))) != len(angles):
        raise InputError("--at: an angle is given twice; give each new angle once")
    lo, hi = anchors[0].angle, anchors[-1].angle
    ref = np.array([t.angle for t in anchors])
    out = []
    for x in angles:
        if not lo < x < hi:
            raise InputError(f"--at: {x:g} deg lies outside the usable tilts ({lo:g} to {hi:g} deg); "
                             "new tilts can only be made between two real ones")
        if np.min(np.abs(ref - x)) < 1e-3:
            raise InputError(f"--at: {x:g} deg is a real tilt of the series; give angles between tilts")
        k = int(np.searchsorted(ref, x))
        out.append(_synthetic(anchors[k - 1], anchors[k], float(x)))
    return out


def gaps_of(plan: Sequence[OutputTilt]) -> List[dict]:
    """Group the synthetic tilts of ``plan`` by their source pair.

    Returns:
      One dict per gap, in plan order: ``a``, ``b`` (0-based input indices of
      the two anchors), ``fractions`` (t of each synthetic tilt, in order) and
      ``outputs`` (their 0-based output positions).
    """
    groups: dict = {}
    for o in plan:
        if o.synthetic:
            key = (o.sources[0], o.sources[1])
            g = groups.setdefault(key, {"a": key[0], "b": key[1], "fractions": [], "outputs": []})
            g["fractions"].append(o.fraction)
            g["outputs"].append(o.index)
    return list(groups.values())
