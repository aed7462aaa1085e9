"""``FilmInterpolator``: the ``film`` method of ``cryotiger interpolate`` (the
inference driver: normalisation, tiling, batching; the network itself, which
FILM's code calls the interpolator, is ``network.py``).

Grey float images in their original units go in and come out.  Per gap:

* normalization='robust' (default): the pair is scaled to [0, 1] by its
  0.5 / 99.5 percentiles and clipped to [-0.25, 1.25] (outliers such as hot
  pixels and gold; see ``normalization``; no uint8), copied to 3 channels, run
  through the network, turned back to grey with luma 0.299 R + 0.587 G +
  0.114 B and scaled back to the pair's original units, so that a synthetic
  tilt matches its neighbours.
* normalization='notebook': the public cryoTIGER notebook's path, for
  comparison: the WHOLE stack's min/max maps to 0..255, truncated to uint8,
  RGB, network, output clipped and rounded to uint8, luma; mapped back to the
  original units with the same min/max.  The stack range comes from
  ``stack_range=(min, max)`` or from ``prepare_stack(data)``, which the driver
  (``engine.interpolate.run_interpolation``) calls before the first gap;
  without either, the min/max of each call's pairs is used.

More than one tilt per gap: recursive midpoints (1, 3 or 7 per gap: the
mid-frame, then the midpoints of each half, ...).  The published models ignore
the time input, so the images are at fractions k/(K+1), whatever fractions the
driver asks for.  The cryoTIGER paper saw artefacts with more than one new tilt
per gap; 1 is the recommended setting.

Large images are cut into overlapping tiles blended with a raised-cosine
window (see ``tiling``); the tile edge comes from ``tile_size`` or from the
``max_memory`` budget.  Every network call has the same shape (tiles, and the
batch padded to ``batch_size``), so the compiled function is traced once
(``trace_count``).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...constants import MIDPOINT_PER_GAP
from .. import InputError
from ..methods import FILM, Interpolator
from .normalization import normalize_pair
from .precision import auto_precision
from .tiling import (TileBlender, TileGrid, check_tiling, default_overlap, network_context,
                     pad_amounts, tile_size_for_memory)

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
PER_GAP_ALLOWED = MIDPOINT_PER_GAP      # recursive midpoints (constants.py)
NORMALIZATIONS = ("robust", "notebook")
PRECISIONS = ("auto", "float32", "mixed", "bfloat16")


def configure_devices(device: str, gpu_ids=None) -> None:
    """Restrict TensorFlow to the CPU or to ``gpu_ids`` ('0,1' or [0, 1]).

    Sets CUDA_VISIBLE_DEVICES when TensorFlow is not imported yet; otherwise uses
    tf.config.set_visible_devices (which must happen before TensorFlow starts;
    if it has started, its devices are kept).  On 'gpu', turns on memory growth.

    Raises:
        InputError: when ``device`` is neither 'cpu' nor 'gpu', ``gpu_ids`` are
            not integers, or ``device`` is 'gpu' and TensorFlow sees no GPU.
    """
    if device not in ("cpu", "gpu"):
        raise InputError(f"--device {device}: use 'cpu' or 'gpu'")
    ids = None
    if gpu_ids not in (None, "", []):
        try:
            ids = [int(i) for i in (gpu_ids.replace(" ", "").split(",") if isinstance(gpu_ids, str)
                                    else gpu_ids)]
        except ValueError:
            raise InputError(f"--gpu-ids '{gpu_ids}': give GPU numbers separated by commas, "
                             "e.g. '0' or '0,1'") from None
    if "tensorflow" not in sys.modules:
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        elif ids is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    try:
        if device == "cpu" and gpus:
            tf.config.set_visible_devices([], "GPU")
        elif device == "gpu" and ids is not None and len(gpus) > len(ids):
            tf.config.set_visible_devices([gpus[i] for i in ids if i < len(gpus)], "GPU")
    except RuntimeError:
        pass  # TensorFlow already started: keep its devices
    if device == "gpu":
        if not tf.config.list_logical_devices("GPU"):
            raise InputError("--device gpu: TensorFlow sees no GPU here (tensorflow-cpu installed, "
                             f"or CUDA_VISIBLE_DEVICES='{os.environ.get('CUDA_VISIBLE_DEVICES', '')}'); "
                             "use --device cpu or install TensorFlow with CUDA")
        for g in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(g, True)
            except RuntimeError:
                pass


def _available_memory_gib() -> float:
    """Memory this process may still use (GiB): the smallest of the machine's
    MemAvailable, the cgroup limit (containers, SLURM) minus its usage, and the
    address-space limit (``ulimit -v``) minus the current size.  A default budget
    from MemAvailable alone runs out of memory inside a limited cgroup."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            with open(usage_file) as f:
                used = int(f.read().strip())
            if text.isdigit() and int(text) < 2 ** 60:
                limits.append(max(0, int(text) - used))
            break
        except (OSError, ValueError):
            continue
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(max(0, soft - size))
    except (OSError, ValueError, ImportError):
        pass
    return min(limits) / 2 ** 30 if limits else 8.0


class FilmInterpolator(Interpolator):
    """Mid-frames by a FILM network (see module doc).

    model: SavedModel folder (published, trained or ``cryotiger model init``), or a
        ``FilmNet`` (Python API).
    tile_size, tile_overlap: tile edge and minimum overlap in pixels (multiples of 64);
        default: from ``max_memory`` (GiB; default half the available RAM, at most
        8 GiB on CPU, 20 GiB on GPU).  Images smaller than a tile run whole.
    device: 'cpu' or 'gpu'; gpu_ids: '0,1' (one process uses the first visible GPU;
        run one tilt series per GPU for parallelism).
    batch_size: tiles per network call (and pairs per driver call); default 1 on
        CPU, 4 on GPU.
    normalization: 'robust' or 'notebook'; stack_range: (min, max) for 'notebook'.
    precision: 'auto' (default: the fastest precision measured accurate on the
        device, see ``precision.auto_precision``: float16 mixed + XLA on GPU;
        bfloat16 for the published-size network on CPUs with AVX512-BF16/AMX;
        float32 otherwise), 'float32', 'mixed' (float16, GPU only), 'bfloat16'
        (CPUs with AVX512-BF16/AMX or GPU).
    tile_overlap default: from the network's measured context
        (``tiling.network_context``: 128 pixels for the configurations trained
        by ``cryotiger train``), else a quarter of the tile (published).
    jit_compile: XLA; default on GPU only (slower on CPU, measured).
    log: callable taking one message line (default: stderr, prefixed 'film: ').

    The network is FILM (Reda et al., "FILM: Frame Interpolation for Large
    Motion", ECCV 2022); grey images go through it as three equal channels and
    come back as luma (ITU-R BT.601 weights ``LUMA``).

    Raises:
        InputError: for an unknown ``normalization`` or ``precision``, a
            ``batch_size`` below 1, a bad ``device`` / ``gpu_ids``
            (``configure_devices``), a model folder that cannot be loaded
            (``savedmodel.load_for_inference``), 'mixed' precision on CPU, bad
            ``tile_size`` / ``tile_overlap`` (``tiling.check_tiling``), or a
            given ``max_memory`` too small for a tile
            (``tiling.tile_size_for_memory``).
        CryoTigerError: when no ``max_memory`` was given and the memory
            available to the process is too small for a tile.
    """
    name = FILM
    #: The published models (and ours) ignore ``time``: midpoints only.  The
    #: driver refuses targets at t != 0.5 (engine.interpolate.check_fractions).
    time_aware = False
    #: Confidence maps from the network's warped inputs (film/confidence.py).
    has_confidence = True

    def __init__(self, model, tile_size: Optional[int] = None, tile_overlap: Optional[int] = None,
                 max_memory: Optional[float] = None, device: str = "cpu", gpu_ids=None,
                 batch_size: Optional[int] = None, normalization: str = "robust",
                 precision: str = "auto", stack_range: Optional[Tuple[float, float]] = None,
                 jit_compile: Optional[bool] = None, log=None):
        if normalization not in NORMALIZATIONS:
            raise InputError(f"--normalization {normalization}: use one of {', '.join(NORMALIZATIONS)}")
        if precision not in PRECISIONS:
            raise InputError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"--batch-size {batch_size}: give 1 or more")
        configure_devices(device, gpu_ids)
        import tensorflow as tf
        from .network import FilmNet
        from .savedmodel import load_for_inference

        self.device = device
        self.log = log or (lambda msg: print(f"film: {msg}", file=sys.stderr))
        self._saved = None
        if isinstance(model, FilmNet):
            self.net, self.model_info = model, {"folder": None, "config": model.config, "source": "python"}
        else:
            self.net, self._saved, self.model_info = load_for_inference(model)
        self.model_path = self.model_info["folder"]
        cfg = self.model_info.get("config")
        #: A time-conditioned model (FilmConfig.time_conditioning, issue 13) makes
        #: the image at any fraction t; the others make midpoints only.
        self.time_aware = bool(self.net is not None and cfg is not None and cfg.time_conditioning)
        on_gpu = device == "gpu"
        self.precision_requested = precision
        if precision == "auto":
            precision = auto_precision(device, self.parameters() if self.net is not None else 0)
        #: None, or the warning that the model runs as an opaque SavedModel (a
        #: layout the import does not know): commands repeat it in their summary.
        self.fallback_warning = None
        if self.net is None:
            self.fallback_warning = (
                f"WARNING: the FILM model {self.model_path} has a variable layout the native import "
                f"does not know ({self.model_info['import_error']}); it runs as a SavedModel as it is, "
                f"which loses: --precision {precision} (runs in float32 only"
                f"{', no GPU mixed precision' if on_gpu else ''}), fine-tuning (cryotiger train --init "
                "cannot start from it) and its configuration (model info). Please report the model's "
                "variable names (cryotiger model info)")
            self.log(self.fallback_warning)
            precision = "float32"
        if precision == "mixed" and not on_gpu:
            raise InputError("--precision mixed (float16) is for GPUs; on CPU use float32 or bfloat16")
        self.precision = precision
        self.compute_dtype = {"float32": tf.float32, "mixed": tf.float16, "bfloat16": tf.bfloat16}[precision]
        self.batch_size = int(batch_size or (4 if on_gpu else 1))
        self.gaps_per_call = self.batch_size
        self.normalization = normalization
        self.stack_range = tuple(float(v) for v in stack_range) if stack_range is not None else None
        params = self.parameters()
        if tile_size is None:
            given = max_memory is not None
            if max_memory is None:
                max_memory = 20.0 if on_gpu else min(8.0, 0.5 * _available_memory_gib())
            try:
                tile_size = tile_size_for_memory(max_memory, self.batch_size, params)
            except InputError as exc:
                if given:
                    raise
                from .. import CryoTigerError
                raise CryoTigerError(
                    f"out of memory: only {_available_memory_gib():.2f} GiB are available to this "
                    "process (free memory, cgroup or 'ulimit -v' limit) and FILM needs more "
                    f"({exc}); free memory, or give --tile-size 256 and --batch-size 1") from None
        tile_size = int(tile_size)
        if tile_overlap is None:
            cfg = self.model_info.get("config") if self.net is not None else None
            tile_overlap = default_overlap(tile_size, context=network_context(cfg))
        tile_overlap = int(tile_overlap)
        check_tiling(tile_size, tile_overlap)
        self.tile_size, self.tile_overlap, self.max_memory = tile_size, tile_overlap, max_memory
        self.jit_compile = bool(on_gpu if jit_compile is None else jit_compile)
        self.trace_count = 0
        self._tf = tf
        self._device_name = "/GPU:0" if on_gpu else "/CPU:0"
        self._fn = tf.function(self._network_luma, jit_compile=self.jit_compile)
        #: What the second channel of the network call measures (film/confidence.py):
        #: 'spread' (aligned models averaging 4 symmetric passes) or 'warped'.
        self.uncertainty_kind = "spread" if (self.net is not None and cfg is not None
                                             and cfg.average_symmetries) else "warped"

    # -- compiled network call -------------------------------------------------------
    def _network_luma(self, grey0, grey1, time):
        """(B, th, tw) grey in [0, 1] x2 and (B,) times -> (B, th, tw, 2): luma of the
        network output and its uncertainty (film/confidence.py): the luma of the
        per-pixel spread of the four symmetric passes for models that average them
        (FilmConfig.average_symmetries), else |luma(x0_warped) - luma(x1_warped)|
        (the disagreement of the two inputs warped to the output's time)."""
        self.trace_count += 1  # Python side effect: runs once per trace
        tf = self._tf
        x0 = tf.repeat(grey0[..., None], 3, axis=-1)
        x1 = tf.repeat(grey1[..., None], 3, axis=-1)
        luma = tf.constant(LUMA)
        if self.net is not None:
            out = self.net(x0, x1, dtype=self.compute_dtype, aux=True, time=time)
        else:
            out = self._saved({"x0": x0, "x1": x1, "time": tf.fill([tf.shape(x0)[0], 1], 0.5)},
                              training=False)
        rgb = out["image"]
        if "image_spread" in out:   # aligned models: spread of the 4 symmetric passes
            dis = tf.tensordot(tf.cast(out["image_spread"], tf.float32), luma, axes=[[3], [0]])
        elif "x0_warped" in out and "x1_warped" in out:
            w0 = tf.tensordot(tf.cast(out["x0_warped"], tf.float32), luma, axes=[[3], [0]])
            w1 = tf.tensordot(tf.cast(out["x1_warped"], tf.float32), luma, axes=[[3], [0]])
            dis = tf.abs(w0 - w1)
        else:   # a SavedModel without the warped images: the inputs' own difference
            dis = tf.abs(grey0 - grey1)
        if self.normalization == "notebook":
            rgb = tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0) / 255.0
        return tf.stack([tf.tensordot(rgb, luma, axes=[[3], [0]]), dis], axis=-1)

    def _run_batch(self, g0: np.ndarray, g1: np.ndarray, times=None) -> np.ndarray:
        n = g0.shape[0]
        times = np.full(n, 0.5, np.float32) if times is None else np.asarray(times, np.float32)
        if n < self.batch_size:  # fixed shapes: pad the batch, no retracing
            pad = ((0, self.batch_size - n), (0, 0), (0, 0))
            g0, g1 = np.pad(g0, pad), np.pad(g1, pad)
            times = np.pad(times, (0, self.batch_size - n), constant_values=0.5)
        with self._tf.device(self._device_name):
            out = self._fn(self._tf.constant(g0), self._tf.constant(g1), self._tf.constant(times))
        return out.numpy()[:n]

    def parameters(self) -> int:
        """Number of weight values of the model (native network or SavedModel)."""
        if self.net is not None:
            return self.net.count_params()
        from .savedmodel import collect_variables
        return int(sum(np.prod(v.shape) for v in collect_variables(self._saved)))

    # -- midpoints of normalised grey pairs ------------------------------------------
    def midpoints(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> List[np.ndarray]:
        """Mid-frames of normalised grey (y, x) pairs (same shape), via padded,
        tiled, batched network calls; returns grey (y, x) float32 images.

        Raises:
            InputError: when the images of the pairs differ in size (``frames``).
        """
        return [img for img, _ in self.frames(pairs)]

    def frames(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]], times=None) -> List[tuple]:
        """Frames of normalised grey (y, x) pairs (same shape) at ``times`` (one
        fraction per pair; default 0.5; used by time-aware models only), via
        padded, tiled, batched network calls.  Returns [(image, uncertainty)],
        both (y, x) float32 (uncertainty: the spread of the symmetric passes or
        |x0_warped - x1_warped|, see ``uncertainty_kind``).

        Raises:
            InputError: when the images of the pairs differ in size.
        """
        if not pairs:
            return []
        times = [0.5] * len(pairs) if times is None else [float(t) for t in times]
        h, w = pairs[0][0].shape
        (top, bottom), (left, right) = pad_amounts(h), pad_amounts(w)
        H, W = h + top + bottom, w + left + right
        grid = TileGrid(H, W, self.tile_size, self.tile_overlap)
        padded = []
        for a, b in pairs:
            if a.shape != (h, w) or b.shape != (h, w):
                raise InputError(f"images of one call differ in size ({a.shape}, {b.shape} vs {(h, w)})")
            pad = ((top, bottom), (left, right))
            padded.append((np.pad(a.astype(np.float32, copy=False), pad),
                           np.pad(b.astype(np.float32, copy=False), pad)))
        wsum = TileBlender.weight_sum(grid)
        blenders = [TileBlender(grid, wsum, channels=2) for _ in pairs]   # image, disagreement
        th, tw = grid.shape
        jobs = [(p, y, x, wt) for p in range(len(pairs)) for (y, x, wt) in grid.tiles()]
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start:start + self.batch_size]
            g0 = np.stack([padded[p][0][y:y + th, x:x + tw] for p, y, x, _ in chunk])
            g1 = np.stack([padded[p][1][y:y + th, x:x + tw] for p, y, x, _ in chunk])
            out = self._run_batch(g0, g1, [times[p] for p, _, _, _ in chunk])
            for (p, y, x, wt), o in zip(chunk, out):
                blenders[p].add(y, x, wt, o)
        out = [bl.result()[top:top + h, left:left + w] for bl in blenders]
        return [(o[..., 0], o[..., 1]) for o in out]

    # -- the Interpolator API -----------------------------------------------------------
    def prepare_stack(self, data) -> None:
        """Called by the driver with the whole (n, y, x) stack (array or memory
        map, original units): records its min/max for normalization='notebook'
        (streamed image by image) unless ``stack_range`` was given; does nothing
        for 'robust'."""
        if self.normalization == "notebook" and self.stack_range is None:
            lo, hi = np.inf, -np.inf
            for i in range(data.shape[0]):
                img = np.asarray(data[i], dtype=np.float32)
                lo, hi = min(lo, float(img.min())), max(hi, float(img.max()))
            self.stack_range = (lo, hi)

    def _to_unit(self, a, b):
        """Pair -> normalised pair and the inverse mapping's (offset, scale)."""
        if self.normalization == "robust":
            ua, ub, lo, hi = normalize_pair(a, b)
            return ua, ub, lo, hi - lo
        lo, hi = self.stack_range if self.stack_range is not None else \
            (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
        s = (hi - lo) if hi > lo else 1.0

        def u8(img):  # the notebook: uint8 by truncation, then FILM reads img/255
            return np.floor(np.clip((img - lo) / s * 255.0, 0, 255)).astype(np.uint8).astype(np.float32) / 255.0
        return u8(a), u8(b), lo, s

    def interpolate_gaps(self, gaps):
        """The images of ``interpolate_gaps_with_confidence`` without the confidences.

        ``gaps``: list of (image_a, image_b, fractions), images (y, x) in their
        original units; returns one (K, y, x) float32 array per gap, K =
        len(fractions), in the same units.

        Raises:
            InputError: as ``interpolate_gaps_with_confidence``.
        """
        return self.interpolate_gaps_with_confidence(gaps)[0]

    def interpolate_gaps_with_confidence(self, gaps):
        """(images, confidences): one (K, y, x) float32 array each per gap (see
        ``Interpolator.interpolate_gaps``); confidences in (0, 1], film/confidence.py.

        Time-aware models make each image at its own fraction in one network
        call; midpoint-only models make recursive midpoints (1, 3 or 7 per gap:
        the images sit at k/(K+1) whatever fractions are given) and a frame's
        confidence is multiplied by the smaller of its parents'.

        ``gaps``: list of (image_a, image_b, fractions), images (y, x) in their
        original units (any float), fractions in (0, 1) from a to b.
        Images are returned in the inputs' units.

        Raises:
            InputError: when a midpoint-only model is asked for a number of tilts
                per gap other than 1, 3 or 7; when a time-aware model is given a
                fraction outside (0, 1); when the images of the gaps differ in size.
        """
        from functools import partial

        from .confidence import confidence_map
        confidence_map = partial(confidence_map, kind=self.uncertainty_kind)
        per_gap = {len(f) for _, _, f in gaps}
        bad = sorted(per_gap - set(PER_GAP_ALLOWED))
        if self.time_aware:
            return self._direct(gaps, confidence_map)
        if bad:
            raise InputError(f"this FILM model is midpoint-only ('time-aware: no' in cryotiger model info): it "
                             f"makes 1, 3 or 7 tilts per gap (recursive midpoints), not {bad[0]}; "
                             "use a time-aware model (cryotiger train --time-aware) for any number, or "
                             "use --per-gap 1 (recommended: the cryoTIGER paper saw artefacts with "
                             "more), 3 or 7")
        frames, conf, inverse = [], [], []
        for a, b, fractions in gaps:
            a = np.asarray(a, np.float32)
            b = np.asarray(b, np.float32)
            ua, ub, off, scale = self._to_unit(a, b)
            k = len(fractions)
            frames.append({0: ua.astype(np.float32), k + 1: ub.astype(np.float32)})
            conf.append({0: None, k + 1: None})     # real tilts: confidence 1
            inverse.append((off, scale, k))
        # Level by level, every gap's pending midpoints in one batched call.
        todo = [(g, 0, inverse[g][2] + 1) for g in range(len(gaps))]
        while todo:
            mids = self.frames([(frames[g][lo], frames[g][hi]) for g, lo, hi in todo])
            nxt = []
            for (g, lo, hi), (m, dis) in zip(todo, mids):
                mid = (lo + hi) // 2
                frames[g][mid] = m
                c = confidence_map(dis, frames[g][lo], frames[g][hi], image=m)
                parents = [conf[g][i] for i in (lo, hi) if conf[g][i] is not None]
                conf[g][mid] = c * np.minimum.reduce(parents) if parents else c
                if mid - lo > 1:
                    nxt.append((g, lo, mid))
                if hi - mid > 1:
                    nxt.append((g, mid, hi))
            todo = nxt
        out, confs = [], []
        for g, (off, scale, k) in enumerate(inverse):
            res = np.stack([frames[g][i] for i in range(1, k + 1)]).astype(np.float32)
            res *= np.float32(scale)
            res += np.float32(off)
            out.append(res)
            confs.append(np.stack([conf[g][i] for i in range(1, k + 1)]).astype(np.float32))
        return out, confs

    def _direct(self, gaps, confidence_map):
        """Time-aware model: every target of every gap at its own fraction t."""
        jobs, inverse = [], []
        for g, (a, b, fractions) in enumerate(gaps):
            for t in fractions:
                if not 0.0 < float(t) < 1.0:
                    raise InputError(f"fraction t = {t} of a gap: give targets strictly between "
                                     "their two real tilts")
            ua, ub, off, scale = self._to_unit(np.asarray(a, np.float32), np.asarray(b, np.float32))
            inverse.append((off, scale, ua, ub))
            jobs.extend((g, float(t)) for t in fractions)
        made = self.frames([(inverse[g][2], inverse[g][3]) for g, _ in jobs], [t for _, t in jobs])
        out = [[] for _ in gaps]
        confs = [[] for _ in gaps]
        for (g, _), (img, dis) in zip(jobs, made):
            off, scale, ua, ub = inverse[g]
            out[g].append(img * np.float32(scale) + np.float32(off))
            confs[g].append(confidence_map(dis, ua, ub, image=img))
        return ([np.stack(o).astype(np.float32) for o in out],
                [np.stack(c).astype(np.float32) for c in confs])

    def describe(self) -> dict:
        """The settings for logs and the record: method, model folder and source,
        configuration (JSON, None for an opaque SavedModel), parameters, tiling,
        memory budget (GiB), device, batch size, normalization, precision (run
        and requested), XLA, native or SavedModel, time-aware, and the fallback
        warning (or None)."""
        cfg = self.model_info.get("config")
        return {"method": self.name, "model": self.model_path, "model_source": self.model_info.get("source"),
                "config": cfg.to_json() if cfg is not None else None,
                "parameters": self.parameters(), "tile_size": self.tile_size,
                "tile_overlap": self.tile_overlap, "max_memory_gib": self.max_memory,
                "device": self.device, "batch_size": self.batch_size,
                "normalization": self.normalization, "precision": self.precision,
                "precision_requested": self.precision_requested,
                "jit_compile": self.jit_compile, "native": self.net is not None,
                "time_aware": self.time_aware, "warning": self.fallback_warning}
