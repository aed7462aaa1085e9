"""Training data for FILM: triplets of tilts, patches, an on-disk TFRecord database.

A *triplet* is three views of one ALIGNED tilt series, sorted by angle:
(i - s, i, i + s) in the angle-sorted list of usable (not excluded) views, for
each spacing s (1 = neighbours, 2 = two tilts apart).  The outer two are the
network inputs x0 and x1, the middle one is the target.

The database (a folder of TFRecord shards and a manifest, FILM's record
layout, pixels as raw float32 in the stack's own units) is the format module
``engine/formats/training_db.py``: its writer and reader are used here.  Each
record holds ``norm/lo`` and ``norm/hi``: the robust intensity range of the
triplet's two INPUT images (whole images, not the patch), the same per-pair
normalisation the FILM interpolator applies at inference
(``film.normalization.pair_range``); :func:`parse_example` maps (x - lo) /
(hi - lo) and copies grey to three channels, so training sees what inference
sees.

Everything is reproducible: the record order (shuffled before sharding) and
the validation split depend only on the inputs and ``seed``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .. import InputError
from ..film.normalization import CLIP_MARGIN, ROBUST_PERCENTILES, pair_range
from ..formats.mrc import check_finite_views, open_stack
from ..formats.tlt import check_angles_match, read_angles
from ..formats.training_db import (MANIFEST, RAW_FLOAT32, decode_example, encode_example, read_manifest,
                                   shard_names, shard_paths, write_manifest)

DB_VERSION = 2                  # 2: keyed on the content of every input

# Robust range of a pair of images (percentiles, %): the FILM interpolator's
# 'robust' normalisation (engine/film/normalization.py, one definition).
LOW_PERCENTILE, HIGH_PERCENTILE = ROBUST_PERCENTILES


@dataclass
class SeriesSpec:
    """One aligned tilt series given for training (``--input`` of ``cryotiger train``).

    ``stack``: MRC stack (n, y, x); ``angles``: .tlt file (degrees, stack order)
    or ``angle_values``; ``exclude``: 0-based stack indices never used;
    ``name``: label in record paths (default: the stack's file name);
    ``xf``: IMOD .xf applied to each view first ('' = already aligned).
    """
    stack: str                          # MRC stack (n, y, x)
    angles: str = ""                    # .tlt file (degrees, stack order); or give angle_values
    exclude: List[int] = field(default_factory=list)   # 0-based stack indices of excluded views
    name: str = ""
    angle_values: Optional[List[float]] = None
    xf: str = ""                        # IMOD .xf (one transform per view) applied first; '' = aligned

    def load_angles(self) -> np.ndarray:
        """Tilt angles (n,) float64 in degrees, stack order: ``angle_values`` or
        the ``angles`` file.

        Raises:
            InputError: when neither is given, or the file cannot be read
                (``formats.tlt.read_angles``).
        """
        if self.angle_values is not None:
            return np.asarray(self.angle_values, dtype=float)
        if not self.angles:
            raise InputError(f"{self.stack}: no tilt angles; give --angles TS.tlt after --input")
        return read_angles(self.angles)

    def label(self) -> str:
        """``name``, or the stack's file name without its extension."""
        return self.name or os.path.splitext(os.path.basename(self.stack))[0]


def select_triplets(angles: Sequence[float], exclude: Sequence[int] = (),
                    spacings: Sequence[int] = (1,), max_asymmetry: float = 0.25,
                    time_aware: bool = False) -> List[Tuple[int, int, int, int]]:
    """Triplets of one tilt series: list of (a, m, b, s), 0-based STACK indices.

    Views are sorted by angle; excluded views are dropped first (never an
    input, never a target), so a triplet may span an excluded view.  For each
    spacing s, every usable view m with s usable views on both sides gives
    (m - s, m, m + s) in the sorted list.  The published FILM models assume
    the target lies half way (t = 0.5): triplets whose middle angle is off
    centre by more than ``max_asymmetry`` (fraction of the outer gap; 0.25 =
    the middle sits between 25% and 75%) are skipped.

    ``time_aware`` (time-conditioned models, issue 13): for each s >= 2, every
    pair (k, k + s) of the sorted usable views and EVERY view m between them
    gives a triplet, whatever its fraction t = (angle_m - angle_a) /
    (angle_b - angle_a) (s = 3 gives t near 1/3 and 2/3, s = 4 near 1/4, 1/2,
    3/4); no asymmetry filter.  The record's angles give t to the trainer.

    ``angles``: (n,) degrees in stack order.

    Raises:
        InputError: when an excluded index is outside the stack, or a spacing
            is below 1.
    """
    angles = np.asarray(angles, dtype=float)
    n = len(angles)
    bad = [int(i) for i in exclude if not 0 <= int(i) < n]
    if bad:
        raise InputError(f"excluded view {bad[0] + 1} does not exist: the series has {n} views "
                         "(views are numbered from 1)")
    excl = set(int(i) for i in exclude)
    usable = sorted((i for i in range(n) if i not in excl), key=lambda i: angles[i])
    out = []
    for s in spacings:
        s = int(s)
        if s < 1:
            raise InputError(f"spacing {s}: must be 1 or more (1 = neighbours, 2 = two tilts apart)")
        if time_aware:
            for k in range(len(usable) - s):
                a, b = usable[k], usable[k + s]
                if angles[b] - angles[a] <= 0:
                    continue
                out.extend((a, m, b, s) for m in usable[k + 1:k + s])
            continue
        for k in range(s, len(usable) - s):
            a, m, b = usable[k - s], usable[k], usable[k + s]
            gap = angles[b] - angles[a]
            if gap <= 0:
                continue
            t = (angles[m] - angles[a]) / gap
            if abs(t - 0.5) > max_asymmetry:
                continue
            out.append((a, m, b, s))
    return out


def patch_origins(shape_yx: Sequence[int], patch: int, stride: Optional[int] = None
                  ) -> List[Tuple[int, int]]:
    """Top-left corners (y0, x0) of a regular grid of ``patch`` x ``patch``
    patches covering an image of ``shape_yx`` (y, x) pixels, ``stride`` pixels
    apart (default ``patch``: no overlap); the last row/column is moved in so
    that it ends at the border (patches may overlap there).

    Raises:
        InputError: when the patch is larger than the image or the stride is below 1.
    """
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    stride = int(stride or patch)
    if patch > ny or patch > nx:
        raise InputError(f"patch size {patch} is larger than the images ({nx}x{ny} pixels); "
                         f"give --patch-size {min(ny, nx) // 32 * 32 or min(ny, nx)} or less")
    if stride < 1:
        raise InputError(f"patch stride {stride}: must be 1 or more")

    def starts(n):
        s = list(range(0, n - patch + 1, stride))
        if s[-1] != n - patch:
            s.append(n - patch)
        return s
    return [(y, x) for y in starts(ny) for x in starts(nx)]


def parse_example(serialized, normalize: bool = True, channels: int = 3):
    """tf.data map function: one serialized record -> dict with 'x0', 'x1'
    (inputs) and 'y' (the middle frame), each (h, w, channels) float32, plus
    'path', 'lo', 'hi'.  With ``normalize`` the pixels are mapped by the
    record's clip((x - lo) / (hi - lo), -0.25, 1.25) (film.normalization.to_unit,
    the inference mapping); otherwise they are the stored raw values."""
    import tensorflow as tf
    from ..film.normalization import to_unit
    ex = decode_example(serialized)
    lo, hi = ex["lo"], ex["hi"]
    frames = []
    for img in ex["frames"]:
        if normalize:  # the inference mapping, clipping included (one function)
            img = to_unit(img, lo, hi, xp=tf.math)
        if channels != 1:
            img = tf.tile(img, [1, 1, channels])
        frames.append(img)
    ang = ex["angles"]
    gap = ang[2] - ang[0]
    # Fraction t of the target between the inputs (0.5 for records without angles).
    t = tf.where(tf.abs(gap) > 0, (ang[1] - ang[0]) / tf.where(tf.abs(gap) > 0, gap, 1.0), 0.5)
    return {"x0": frames[0], "y": frames[1], "x1": frames[2], "path": ex["path"],
            "lo": lo, "hi": hi, "time": tf.reshape(t, [1])}


# ----------------------------------------------------------------------------
# Building the database
# ----------------------------------------------------------------------------
@dataclass
class DatabaseParams:
    """How a training database is cut: patch size and stride (pixels), triplet
    spacings, seed, fraction of series held out for validation, TFRecord shards,
    at most ``max_patches_per_triplet`` patches per triplet (0: all), the
    midpoint-asymmetry limit and ``time_aware`` triplets (``select_triplets``),
    and the std (fraction of the pair's range) below which a patch is flat and
    skipped.  Checked by ``build_database``."""
    patch_size: int = 256
    patch_stride: int = 0               # 0 = patch_size (no overlap)
    spacings: Tuple[int, ...] = (1,)
    seed: int = 0
    val_fraction: float = 0.2           # fraction of tilt SERIES held out (at least one if >= 2 series)
    shards: int = 4
    max_patches_per_triplet: int = 0    # 0 = all grid patches
    max_asymmetry: float = 0.25
    time_aware: bool = False            # triplets at any t (select_triplets), issue 13
    min_patch_std: float = 1e-6         # skip flat patches (padding, empty borders)

    def key(self) -> dict:
        """The parameters as a JSON-ready dict (part of the database's cache key)."""
        d = asdict(self)
        d["spacings"] = [int(s) for s in self.spacings]
        return d


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes (hex); '' when it does not exist (checked later)."""
    import hashlib
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    except FileNotFoundError:
        return ""
    return h.hexdigest()


def split_series(n_series: int, val_fraction: float, seed: int) -> List[bool]:
    """Which series are validation series: a seeded choice of
    round(val_fraction * n) series (at least 1 when n >= 2 and val_fraction > 0,
    never all of them)."""
    if n_series < 2 or val_fraction <= 0:
        return [False] * n_series
    n_val = int(min(n_series - 1, max(1, round(val_fraction * n_series))))
    rng = np.random.default_rng([int(seed), 7919])
    chosen = set(rng.permutation(n_series)[:n_val].tolist())
    return [i in chosen for i in range(n_series)]


def build_database(series: Sequence[SeriesSpec], folder: str, params: DatabaseParams,
                   progress: bool = True, reuse: bool = True) -> dict:
    """Write the training database for ``series`` into ``folder``; returns the manifest.

    With ``reuse`` an existing database made from the same files and
    parameters is kept as is (so an interrupted training resumes on the very
    same data).  The folder is written beside and renamed into place, so a
    crash never leaves a half database.

    Validation: with two or more series, whole series are held out
    (:func:`split_series`).  With a single series (self-supervised training on
    the series to be interpolated) every 10th triplet (by middle angle) is held
    out instead; those share views with training triplets, so that validation
    measures fit, not generalisation (the manifest says which split was used).

    Returns the manifest (also written as ``folder``/database.json): the
    request (cache key), format, patch size, spacings, series, split, record
    counts, shard names and normalisation.

    Raises:
        InputError: when no series is given, ``params.shards`` < 1, a stack is
            missing or unreadable, angles are missing or do not match the stack,
            an .xf has the wrong number of transforms, a used view holds NaN or
            infinite values, the patch does not fit the images, no triplet can
            be made, every triplet went to validation, or every patch is flat.
        OSError: from the file system (the half-written folder is removed).
    """
    import tensorflow as tf
    from ..progress import Progress

    if not series:
        raise InputError("no training series; give --input TS.mrc --angles TS.tlt (repeatable)")
    params = DatabaseParams(**{**asdict(params), "spacings": tuple(int(s) for s in params.spacings)})
    if params.shards < 1:
        raise InputError(f"--shards {params.shards}: must be 1 or more")
    descr = []
    for sp in series:
        if not os.path.exists(sp.stack):
            raise InputError(f"{sp.stack}: input stack not found")
        # The cache key is the CONTENT of every input (issue 9): a stack, angle
        # file or .xf rewritten in place (same path, same mtime) gives a new database.
        descr.append({"stack": os.path.abspath(sp.stack), "angles": os.path.abspath(sp.angles) if sp.angles else "",
                      "xf": os.path.abspath(sp.xf) if sp.xf else "",
                      "exclude": sorted(int(i) for i in sp.exclude), "name": sp.label(),
                      "size": os.path.getsize(sp.stack), "stack_sha256": file_digest(sp.stack),
                      "angles_sha256": file_digest(sp.angles) if sp.angles else "",
                      "angle_values": [float(a) for a in sp.angle_values]
                      if sp.angle_values is not None else None,
                      "xf_sha256": file_digest(sp.xf) if sp.xf else ""})
    request = {"version": DB_VERSION, "params": params.key(), "inputs": descr}
    if reuse and os.path.exists(os.path.join(folder, MANIFEST)):
        old = read_manifest(folder)
        if old.get("request") == request:
            return old

    names = [d["name"] for d in descr]
    if len(set(names)) != len(names):  # keep record paths unambiguous
        names = [f"{n}_{k}" for k, n in enumerate(names)]
    is_val = split_series(len(series), params.val_fraction, params.seed)
    single = len(series) == 1

    # 1. Triplets of every series, checked before any pixel is read.
    plans = []
    xfs = []
    for k, sp in enumerate(series):
        with open_stack(sp.stack) as m:
            shape = (1,) + m.data.shape if m.data.ndim == 2 else tuple(m.data.shape)
        angles = sp.load_angles()
        check_angles_match(angles, shape[0], sp.stack, sp.angles or "the angle list")
        trips = select_triplets(angles, sp.exclude, params.spacings, params.max_asymmetry,
                                time_aware=params.time_aware)
        xf = None
        if sp.xf:
            from ..formats.xf import read_xf
            xf = read_xf(sp.xf)
            if len(xf) != shape[0]:
                raise InputError(f"{sp.xf}: {len(xf)} transforms for {shape[0]} images in {sp.stack}; "
                                 "give one transform per image")
        xfs.append(xf)
        with open_stack(sp.stack) as m:      # every view used must be finite, before any work
            check_finite_views(m.data if m.data.ndim == 3 else m.data[None],
                               sorted({v for t in trips for v in t[:3]}), sp.stack)
        origins = patch_origins(shape[1:], params.patch_size, params.patch_stride or params.patch_size)
        plans.append((sp, angles, trips, origins, shape))
    if sum(len(p[2]) for p in plans) == 0:
        raise InputError(f"no triplets: every series has fewer than {2 * max(params.spacings) + 1} "
                         f"usable views for spacing {max(params.spacings)}; give longer series or "
                         "--spacing 1")

    # 2. Record keys, shuffled reproducibly, assigned to shards round-robin.
    rng = np.random.default_rng([int(params.seed), 104729])
    keys = {"train": [], "val": []}
    for k, (sp, angles, trips, origins, shape) in enumerate(plans):
        by_mid = sorted(range(len(trips)), key=lambda j: (angles[trips[j][1]], trips[j][3]))
        for rank, j in enumerate(by_mid):
            split = "val" if (is_val[k] or (single and rank % 10 == 5)) else "train"
            chosen = list(range(len(origins)))
            if params.max_patches_per_triplet and len(chosen) > params.max_patches_per_triplet:
                chosen = sorted(rng.choice(len(origins), params.max_patches_per_triplet,
                                           replace=False).tolist())
            for o in chosen:
                keys[split].append((k, j, o))
    if not keys["train"]:
        raise InputError("every triplet went to validation; give more tilt series or --val-fraction 0")
    n_shards = {"train": params.shards, "val": max(1, min(params.shards, len(keys["val"]) // 64 + 1))}
    order = {s: rng.permutation(len(v)).tolist() for s, v in keys.items()}

    parent = os.path.dirname(os.path.abspath(folder)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(os.path.abspath(folder)) + ".", suffix=".part",
                           dir=parent)     # a name engine.outputs cleans after a kill
    try:
        writers = {s: [tf.io.TFRecordWriter(os.path.join(tmp, n)) for n in shard_names(s, n_shards[s])]
                   for s in keys}
        counts = {s: 0 for s in keys}
        skipped_flat = 0
        # Per-record slot: where it goes (split, shard).  Reading is done series by
        # series, triplet by triplet (each image read once per triplet).
        slot = {}
        for s, klist in keys.items():
            for pos, idx in enumerate(order[s]):
                slot[klist[idx]] = (s, pos % n_shards[s], pos)
        # Records are streamed (memory stays small): the shard of each record is
        # drawn by the seeded permutation, so every shard holds a random subset;
        # the reader interleaves the shards and shuffles.
        total = sum(len(p[2]) for p in plans)
        prog = Progress(total, "training database", unit="triplet", enabled=progress)
        every = max(1, total // 10)
        done = 0
        for k, (sp, angles, trips, origins, shape) in enumerate(plans):
            with open_stack(sp.stack) as m:
                data = m.data if m.data.ndim == 3 else m.data[None]
                for j, (a, mid, b, s_) in enumerate(trips):
                    imgs = [np.asarray(data[v], dtype=np.float32) for v in (a, mid, b)]
                    if xfs[k] is not None:
                        from ..align import apply_xf
                        imgs = [apply_xf(img, xfs[k][v]) for img, v in zip(imgs, (a, mid, b))]
                    for v, img in zip((a, mid, b), imgs):
                        if not np.all(np.isfinite(img)):
                            raise InputError(f"{sp.stack}: NaN or infinite values in view {v + 1}; "
                                             "fix the stack or exclude that view")
                    lo, hi = pair_range(imgs[0], imgs[2])
                    for o, (y0, x0) in enumerate(origins):
                        key = (k, j, o)
                        if key not in slot:
                            continue
                        split, shard, pos = slot[key]
                        p = params.patch_size
                        frames = [img[y0:y0 + p, x0:x0 + p] for img in imgs]
                        if min(float(np.std(fr)) for fr in frames) <= params.min_patch_std * (hi - lo):
                            skipped_flat += 1
                            continue
                        path = f"{names[k]}:{a + 1},{mid + 1},{b + 1}:{y0},{x0}"
                        rec = encode_example(frames, path, lo, hi,
                                             [angles[a], angles[mid], angles[b]], k)
                        writers[split][shard].write(rec)
                        counts[split] += 1
                    done += 1
                    if done % every == 0 or done == total:
                        prog.update(done - prog.done, f"{names[k]} views {a + 1},{mid + 1},{b + 1}")
        for ws in writers.values():
            for w in ws:
                w.close()
        if counts["train"] == 0:
            raise InputError("no usable training patches (all flat); check the stacks")
        manifest = {
            "request": request, "format": RAW_FLOAT32, "patch_size": params.patch_size,
            "spacings": list(params.spacings), "seed": params.seed,
            "series": [{"name": names[k], "stack": descr[k]["stack"], "validation": bool(is_val[k]),
                        "triplets": len(plans[k][2]), "views": int(plans[k][4][0])}
                       for k in range(len(plans))],
            "validation_split": "series" if any(is_val) else ("triplets (every 10th)" if single else "none"),
            "counts": counts, "skipped_flat": skipped_flat,
            "shards": {s: shard_names(s, n_shards[s]) for s in keys},
            "normalization": {"low_percentile": LOW_PERCENTILE, "high_percentile": HIGH_PERCENTILE,
                              "clip": [-CLIP_MARGIN, 1.0 + CLIP_MARGIN],
                              "scope": "the triplet's two input images"},
        }
        write_manifest(tmp, manifest)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def make_dataset(folder: str, split: str = "train", batch_size: int = 8, shuffle: bool = True,
                 repeat: bool = True, augment: bool = True, seed: int = 0, crop: int = 0,
                 shuffle_buffer: int = 256, normalize: bool = True):
    """tf.data pipeline over a database split: batches of dicts 'x0', 'x1', 'y'
    (B, h, w, 3) float32 in [0, 1]-ish (normalised, see module doc) and 'time'
    (B, 1): the target's fraction t between x0 and x1 from the record's angles
    (0.5 for midpoint triplets; 1 - t after a swap of x0 and x1).

    Augmentation (training): a random 90-degree rotation, left-right and
    up-down flips, and a random swap of x0 and x1, all applied to the three
    frames together; ``crop`` > 0 takes a random crop of that size.  Random
    numbers are stateless functions of (seed, record number), so the stream is
    reproducible and an iterator restored from a checkpoint continues it.

    Returns None when the split has no record.  With ``repeat`` the last
    partial batch is dropped.

    Raises:
        InputError: when ``folder`` is not a training database (``read_manifest``).
    """
    import tensorflow as tf

    files = shard_paths(folder, split)
    if not files:
        return None
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), block_length=1)
    if repeat:
        ds = ds.repeat()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.enumerate()

    def prepare(index, rec):
        ex = parse_example(rec, normalize=normalize)
        x0, y, x1, t = ex["x0"], ex["y"], ex["x1"], ex["time"]
        if augment or crop:
            s = tf.stack([tf.cast(seed, tf.int64), index])
            stack = tf.concat([x0, y, x1], axis=-1)          # (h, w, 9)
            if crop:
                stack = tf.image.stateless_random_crop(stack, [crop, crop, 9], seed=s)
            if augment:
                u = tf.random.stateless_uniform([4], seed=s + 1)
                k = tf.cast(tf.floor(u[0] * 4.0), tf.int32)
                stack = tf.image.rot90(stack, k)
                stack = tf.cond(u[1] < 0.5, lambda: tf.reverse(stack, [1]), lambda: stack)
                stack = tf.cond(u[2] < 0.5, lambda: tf.reverse(stack, [0]), lambda: stack)
            c = tf.shape(x0)[-1]
            x0, y, x1 = stack[..., :c], stack[..., c:2 * c], stack[..., 2 * c:]
            if augment:
                x0, x1, t = tf.cond(u[3] < 0.5, lambda: (x1, x0, 1.0 - t), lambda: (x0, x1, t))
        return {"x0": x0, "x1": x1, "y": y, "time": t}

    ds = ds.map(prepare, num_parallel_calls=1, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    return ds.prefetch(2)
