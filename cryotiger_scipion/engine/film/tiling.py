"""Overlapping tiles with raised-cosine blending, and tile size from a memory budget.

Images are first padded to a multiple of ``align`` (64: the coarsest pyramid
level), and every tile starts at a multiple of ``align``, so the network's
pooling grid inside a tile is the same as for the whole image.  Neighbouring
tiles overlap by at least ``overlap`` pixels.  Each tile's output is weighted
by a separable window that is 0 in the outer quarter of the overlap next to an
interior tile edge (where the tile misses context), rises as a raised cosine
across the middle half, and is 1 elsewhere; image borders get weight 1.  The
blend is sum(w * tile) / sum(w), so seams are smooth and, when the overlap
exceeds the network's effective context, the result equals the untiled one.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import InputError
from .config import PAD_MULTIPLE

#: Peak bytes per tile pixel of the published network in float32 on CPU
#: (measured with bench/film_inference.py: RSS growth / pixels, batch of one pair).
BYTES_PER_PIXEL_PUBLISHED = 7_500
#: Memory that does not scale with the tile (TensorFlow, weights, buffers), bytes.
BASE_BYTES = 1.25 * 2 ** 30
MIN_TILE = 128


def tile_starts(size: int, tile: int, overlap: int, align: int = PAD_MULTIPLE) -> List[int]:
    """Start positions (multiples of ``align``) of tiles of length ``tile`` covering
    ``size`` (a multiple of ``align``) with overlaps of at least ``overlap``: as
    few tiles as possible, spread evenly."""
    if tile >= size:
        return [0]
    n = max(2, int(np.ceil((size - overlap) / max(1, tile - overlap))))
    while True:
        starts = sorted({int(round(k * (size - tile) / (n - 1) / align)) * align for k in range(n)})
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


def plan_axis(size: int, tile: int, overlap: int, align: int = PAD_MULTIPLE) -> Tuple[int, List[int]]:
    """(tile length, starts) along one axis: the tile count that ``tile`` needs,
    then the smallest tile (multiple of ``align``, at most ``tile``) that still
    covers ``size`` with that count and overlaps of at least ``overlap``."""
    if tile >= size:
        return size, [0]
    starts = tile_starts(size, tile, overlap, align)
    n = len(starts)
    best = (tile, starts)
    t = tile - align
    while t >= 2 * align and t - overlap >= align:
        s = tile_starts(size, t, overlap, align)
        if len(s) > n:
            break
        best = (t, s)
        t -= align
    return best


def window_1d(start: int, tile: int, size: int, overlap: int) -> np.ndarray:
    """Blending weight along one axis for a tile at ``start`` in an image of ``size``.

    ``tile``, ``size``, ``overlap`` in pixels.  Returns (tile,) float32: 0 over
    the outer quarter of ``overlap`` at an interior tile edge, a raised cosine
    over the middle half, 1 elsewhere and at the image's own borders."""
    w = np.ones(tile, np.float64)
    margin = overlap // 4
    ramp_len = max(1, overlap - 2 * margin)
    d = np.arange(tile, dtype=np.float64)
    ramp = np.clip((d - margin + 0.5) / ramp_len, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    if start > 0:
        w = np.minimum(w, ramp)
    if start + tile < size:
        w = np.minimum(w, ramp[::-1])
    return w.astype(np.float32)


class TileGrid:
    """The tiles of a (H, W) image (H, W multiples of ``align``).

    ``height``, ``width``, ``tile`` (requested edge), ``overlap`` (minimum
    overlap) in pixels; the tile edges actually used (``plan_axis``) are
    ``tile_h`` x ``tile_w`` <= ``tile``, starts ``ys`` and ``xs``.

    Raises:
        ValueError: when ``height`` or ``width`` is not a multiple of ``align``
            (a programming error: callers pad first with ``pad_to_multiple``).
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int, align: int = PAD_MULTIPLE):
        if height % align or width % align:
            raise ValueError(f"image {height}x{width} not padded to a multiple of {align}")
        self.height, self.width = height, width
        self.overlap = overlap
        self.tile_h, self.ys = plan_axis(height, tile, overlap, align)
        self.tile_w, self.xs = plan_axis(width, tile, overlap, align)
        self.wy = [window_1d(y, self.tile_h, height, overlap) for y in self.ys]
        self.wx = [window_1d(x, self.tile_w, width, overlap) for x in self.xs]

    @property
    def shape(self) -> Tuple[int, int]:
        """(tile_h, tile_w): the edge of every tile in pixels."""
        return self.tile_h, self.tile_w

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def tiles(self) -> Iterator[Tuple[int, int, np.ndarray]]:
        """(y, x, weight (tile_h, tile_w)) for every tile."""
        for iy, y in enumerate(self.ys):
            for ix, x in enumerate(self.xs):
                yield y, x, self.wy[iy][:, None] * self.wx[ix][None, :]

    def border_mask(self, width: int = 8) -> np.ndarray:
        """True on pixels within ``width`` of an interior tile edge (for tests and checks)."""
        mask = np.zeros((self.height, self.width), bool)
        for y in self.ys[1:]:
            mask[max(0, y - width):y + width] = True
        for y in self.ys[:-1]:
            e = y + self.tile_h
            mask[max(0, e - width):e + width] = True
        for x in self.xs[1:]:
            mask[:, max(0, x - width):x + width] = True
        for x in self.xs[:-1]:
            e = x + self.tile_w
            mask[:, max(0, e - width):e + width] = True
        return mask


#: Context of FILM networks trained by ``cryotiger train`` (pyramid of at most
#: ``SHALLOW_PYRAMID`` levels: the small, fit and starter configurations), in
#: pixels: beyond it an input change moves the output by less than 1e-3 of its
#: range.  Measured with bench/film_inference.py (context table): 21 and 31 px
#: for two models trained by the product, rounded up.
TRAINED_SMALL_CONTEXT = 32
SHALLOW_PYRAMID = 4


def network_context(config=None) -> Optional[int]:
    """Context in pixels of a FILM network of ``config`` (a FilmConfig), or None
    where it was not measured with trained weights: the published configuration
    (7 levels down to 1/64) was only available with random weights here, and
    with those a tile edge moves the output far inside the tile (256-pixel tiles
    of a 512 image, overlap 64: max 0.32, mean 0.048 of the output range)."""
    if config is not None and getattr(config, "pyramid_levels", 99) <= SHALLOW_PYRAMID:
        return TRAINED_SMALL_CONTEXT
    return None


def default_overlap(tile: int, align: int = PAD_MULTIPLE, context: Optional[int] = None) -> int:
    """Tile overlap in pixels (a multiple of ``align``).

    With a measured ``context``: 4 x context rounded up to ``align`` (32 -> 128),
    whatever the tile size, so that the blending window (0 over the outer
    quarter of the overlap, a raised cosine over the middle half) only uses
    pixels at least ``context`` from a tile edge; at most half the tile, leaving
    a step of ``align``.  Measured (bench/film_inference.py, float32, 512x512,
    256-pixel tiles, a model trained by ``cryotiger train``): max |tiled - whole|
    / output range 6.1e-05 at overlap 128, 2.3e-03 at 64.

    Without one (the published configuration): a quarter of the tile (768 ->
    192), as before; its cost is 1.7-1.9x the image's pixels at 2048-4096.
    """
    if context is None:
        return max(align, int(round(tile / 4 / align)) * align)
    want = -(-4 * int(context) // align) * align
    cap = max(align, min(tile // 2, tile - align) // align * align) if tile > align else 0
    return max(0, min(want, cap))


def check_tiling(tile: int, overlap: int, align: int = PAD_MULTIPLE) -> None:
    """Check ``--tile-size`` and ``--tile-overlap`` (pixels) before a run.

    Raises:
        InputError: when ``tile`` is not a positive multiple of ``align``, or
            ``overlap`` is negative, more than half the tile, or leaves a step
            of less than ``align`` pixels between tiles.
    """
    if tile < align or tile % align:
        raise InputError(f"--tile-size {tile}: must be a multiple of {align} and at least {align} "
                         f"(e.g. 512); or leave it out to derive it from --max-memory")
    if overlap < 0 or overlap * 2 > tile or tile - overlap < align:
        raise InputError(f"--tile-overlap {overlap} with --tile-size {tile}: the overlap must be "
                         f"at least 0, at most half the tile and leave a step of at least {align} "
                         f"pixels (e.g. --tile-size 512 --tile-overlap {default_overlap(512, align)})")


def tile_size_for_memory(max_memory_gib: float, batch: int = 1, params: int = 34_436_667,
                         align: int = PAD_MULTIPLE, bytes_per_pixel: float = None) -> int:
    """Largest tile edge (multiple of ``align``) whose estimated peak memory for
    ``batch`` pairs fits ``max_memory_gib`` GiB.  The per-pixel cost scales with
    the network size relative to the published one (a rough but safe model).

    ``params``: the network's parameter count; ``bytes_per_pixel``: a measured
    peak cost per tile pixel instead of the model.
    Returns the tile edge in pixels (>= ``MIN_TILE``).

    Raises:
        InputError: when ``max_memory_gib`` is missing or not positive, is
            below the fixed cost (TensorFlow and the weights), or leaves tiles
            smaller than ``MIN_TILE`` pixels.
    """
    if max_memory_gib is None or max_memory_gib <= 0:
        raise InputError(f"--max-memory {max_memory_gib}: give a positive number of GiB (e.g. 6)")
    bpp = bytes_per_pixel or BYTES_PER_PIXEL_PUBLISHED * max(0.05, min(1.0, params / 34_436_667) ** 0.5)
    budget = max_memory_gib * 2 ** 30 - BASE_BYTES - 12 * params
    if budget <= 0:
        raise InputError(f"--max-memory {max_memory_gib} GiB is below what TensorFlow and the "
                         f"weights need (~{(BASE_BYTES + 12 * params) / 2 ** 30:.1f} GiB); give more")
    edge = int(np.sqrt(budget / (bpp * max(1, batch))) // align * align)
    if edge < MIN_TILE:
        raise InputError(f"--max-memory {max_memory_gib} GiB leaves tiles smaller than {MIN_TILE} "
                         "pixels; give more memory or a smaller --batch-size")
    return edge


# ----------------------------------------------------------------------------
# Padding to the network's size multiple (the one implementation: SavedModel
# callers and FilmInterpolator.midpoints)
# ----------------------------------------------------------------------------
def pad_amounts(size: int, multiple: int = PAD_MULTIPLE) -> Tuple[int, int]:
    """(before, after) zero padding that makes ``size`` a multiple of ``multiple``."""
    pad = (-size) % multiple
    return pad // 2, pad - pad // 2


def pad_to_multiple(images: np.ndarray, multiple: int = PAD_MULTIPLE):
    """Zero-pad (B, H, W, C) images to multiples of ``multiple`` (pad//2 before,
    the rest after, as the published models expect); returns
    (padded (B, H', W', C), (top, left, H, W)) for ``crop``.  The input array is
    returned as it is when no padding is needed."""
    h, w = images.shape[1:3]
    (t, b), (l, r) = pad_amounts(h, multiple), pad_amounts(w, multiple)
    if t == b == l == r == 0:
        return images, (0, 0, h, w)
    return np.pad(images, ((0, 0), (t, b), (l, r), (0, 0))), (t, l, h, w)


def crop(images, box):
    """Undo :func:`pad_to_multiple`: (B, H, W, C) images cropped to ``box``
    (top, left, h, w) -> (B, h, w, C)."""
    t, l, h, w = box
    return images[:, t:t + h, l:l + w]


# ----------------------------------------------------------------------------
# Blending (the one implementation of sum(w * tile) / sum(w))
# ----------------------------------------------------------------------------
class TileBlender:
    """Blends the network outputs of the tiles of ``grid`` into one (H, W)
    float32 image, or (H, W, channels) with ``channels``: sum(w * tile) /
    sum(w), w the raised-cosine windows of :meth:`TileGrid.tiles` (float32
    sums, in the order the tiles are added).

    >>> b = TileBlender(grid)
    >>> for y, x, w in grid.tiles():
    ...     b.add(y, x, w, net_output_of_that_tile)     # (tile_h, tile_w)
    >>> image = b.result()                              # (H, W) float32
    """

    def __init__(self, grid: TileGrid, weight_sum: Optional[np.ndarray] = None,
                 channels: Optional[int] = None):
        self.grid = grid
        self.channels = channels
        shape = (grid.height, grid.width) + ((int(channels),) if channels else ())
        self.acc = np.zeros(shape, np.float32)
        self._wsum = weight_sum

    @staticmethod
    def weight_sum(grid: TileGrid) -> np.ndarray:
        """sum(w) over the tiles of ``grid``: (H, W) float32 (share it between
        the blenders of one grid)."""
        wsum = np.zeros((grid.height, grid.width), np.float32)
        th, tw = grid.shape
        for y, x, wt in grid.tiles():
            wsum[y:y + th, x:x + tw] += wt
        return wsum

    def add(self, y: int, x: int, weight: np.ndarray, tile: np.ndarray) -> None:
        """Add the output ``tile`` (tile_h, tile_w[, channels]) of the tile at
        (y, x) with its window ``weight`` (tile_h, tile_w)."""
        th, tw = self.grid.shape
        self.acc[y:y + th, x:x + tw] += (weight[..., None] if self.channels else weight) * tile

    def result(self) -> np.ndarray:
        """The blended (H, W[, channels]) float32 image (every tile must have
        been added)."""
        if self._wsum is None:
            self._wsum = self.weight_sum(self.grid)
        return self.acc / (self._wsum[..., None] if self.channels else self._wsum)
