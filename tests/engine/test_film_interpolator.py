"""FilmInterpolator: tiling (seam-free, equals untiled), normalisation, midpoints, tracing."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from scipy.ndimage import gaussian_filter  # noqa: E402

from cryotiger_scipion.engine import InputError  # noqa: E402
from cryotiger_scipion.engine.film.config import FilmConfig  # noqa: E402
from cryotiger_scipion.engine.film.inference import FilmInterpolator  # noqa: E402
from cryotiger_scipion.engine.film.network import FilmNet  # noqa: E402
from cryotiger_scipion.engine.film.tiling import (TileBlender, TileGrid, pad_amounts,  # noqa: E402
                                                  tile_size_for_memory, tile_starts, window_1d)


@pytest.fixture(scope="module")
def net():
    return FilmNet(FilmConfig.small(), seed=7)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    a = gaussian_filter(rng.normal(0, 1, (370, 500)), 2).astype(np.float32) * 30 + 200
    return a, np.roll(a, 2, axis=1)


@pytest.fixture(scope="module")
def untiled(net, pair):
    fi = FilmInterpolator(net, tile_size=512, tile_overlap=64)
    return fi.interpolate_gaps([(pair[0], pair[1], [0.5])])[0][0]


def _tiled(net, pair, tile, overlap):
    fi = FilmInterpolator(net, tile_size=tile, tile_overlap=overlap)
    return fi.interpolate_gaps([(pair[0], pair[1], [0.5])])[0][0]


def test_tiled_equals_untiled(net, pair, untiled):
    tiled = _tiled(net, pair, 256, 128)   # 2 x 3 tiles of the 384 x 512 padded image
    rel = np.abs(tiled - untiled).max() / (untiled.max() - untiled.min())
    assert rel < 1e-3


def _border_vs_elsewhere(net, pair, untiled, tile, overlap):
    err = np.abs(_tiled(net, pair, tile, overlap) - untiled)
    grid = TileGrid(384, 512, tile, overlap)
    band = grid.border_mask(8)[7:7 + 370, 6:6 + 500]   # crop the padding (14 // 2, 12 // 2)
    return err[band].mean(), err[~band].mean()


def test_errors_along_tile_borders_no_larger_than_elsewhere(net, pair, untiled):
    for tile, overlap in [(256, 64), (128, 64)]:   # small overlaps: tiling does change pixels
        border, elsewhere = _border_vs_elsewhere(net, pair, untiled, tile, overlap)
        assert border <= elsewhere + 1e-6
    # Control: hard cuts (no overlap) put the errors on the borders; the check sees that.
    border, elsewhere = _border_vs_elsewhere(net, pair, untiled, 128, 0)
    assert border > 2 * elsewhere


def test_tile_blender_is_the_weighted_mean_of_the_tiles():
    """The one blending implementation: tiles cut from an image and blended back
    give the image (the windows are normalised by their sum); channels blend
    the same way; the padding splits pad // 2 before, the rest after."""
    grid = TileGrid(384, 512, 256, 128)
    yy, xx = np.mgrid[0:384, 0:512].astype(np.float32)
    image = np.stack([np.sin(yy / 17.0) + xx / 100.0, np.full_like(yy, -2.0)], axis=-1)
    th, tw = grid.shape
    one, two = TileBlender(grid), TileBlender(grid, TileBlender.weight_sum(grid), channels=2)
    for y, x, w in grid.tiles():
        one.add(y, x, w, image[y:y + th, x:x + tw, 0])
        two.add(y, x, w, image[y:y + th, x:x + tw])
    np.testing.assert_allclose(one.result(), image[..., 0], atol=1e-5)
    np.testing.assert_allclose(two.result(), image, atol=1e-5)
    assert len(grid) > 1 and pad_amounts(370) == (7, 7) and pad_amounts(65) == (31, 32)


def test_tile_layout_and_window():
    assert tile_starts(512, 256, 128) == [0, 128, 256]
    assert tile_starts(384, 256, 64) == [0, 128]
    assert all(s % 64 == 0 for s in tile_starts(1344, 448, 96))
    w_left = window_1d(0, 256, 384, 128)
    w_right = window_1d(128, 256, 384, 128)
    np.testing.assert_allclose(w_left[128:] + w_right[:128], 1.0, atol=1e-6)  # overlap by exactly 128
    assert w_left[0] == 1.0 and w_right[0] == 0.0 and w_right[-1] == 1.0
    assert tile_size_for_memory(6.0) % 64 == 0
    assert tile_size_for_memory(12.0) > tile_size_for_memory(4.0) >= 128
    with pytest.raises(InputError, match="tile-size"):
        FilmInterpolator(FilmNet(FilmConfig.small()), tile_size=100)
    with pytest.raises(InputError, match="max-memory"):
        tile_size_for_memory(0.5)


def test_one_trace_for_many_pairs_tiles_and_partial_batches(net, pair):
    fi = FilmInterpolator(net, tile_size=256, tile_overlap=128, batch_size=4)
    a, b = pair[0][:300, :400], pair[1][:300, :400]
    fi.interpolate_gaps([(a, b, [0.5])])                       # 4 tiles: one full batch
    fi.interpolate_gaps([(a, b, [0.5]), (b, a, [0.5]), (a, a, [0.5])])   # 12 tiles
    fi.interpolate_gaps([(a, b, [0.25, 0.5, 0.75])])            # 4 then 8 tiles
    assert fi.trace_count == 1


def test_robust_normalisation_keeps_original_units(net, pair):
    fi = FilmInterpolator(net, tile_size=512, tile_overlap=64)
    a, b = pair[0][:128, :128], pair[1][:128, :128]
    out = fi.interpolate_gaps([(a, b, [0.5]), (3.5 * a - 40, 3.5 * b - 40, [0.5])])
    np.testing.assert_allclose(out[1], 3.5 * out[0] - 40, rtol=1e-4, atol=1e-3)
    assert out[0].dtype == np.float32 and out[0].shape == (1, 128, 128)


def test_notebook_normalisation_uses_stack_range_and_uint8_truncation(net, pair):
    a, b = pair[0][:128, :128], pair[1][:128, :128]
    lo, hi = float(min(a.min(), b.min())) - 5, float(max(a.max(), b.max())) + 5
    fi = FilmInterpolator(net, tile_size=512, tile_overlap=64, normalization="notebook")
    fi.prepare_stack(np.stack([a, b, np.full_like(a, lo), np.full_like(a, hi)]))
    assert fi.stack_range == (lo, hi)
    step = (hi - lo) / 255.0
    base = lo + (np.floor((a - lo) / step) + 0.25) * step   # inside the same uint8 bins
    o1 = fi.interpolate_gaps([(base, b, [0.5])])[0]
    o2 = fi.interpolate_gaps([(base + 0.5 * step, b, [0.5])])[0]
    np.testing.assert_allclose(o1, o2, atol=1e-4 * (hi - lo))   # truncation: same bins, same output
    robust = FilmInterpolator(net, tile_size=512, tile_overlap=64)
    o3 = robust.interpolate_gaps([(base + 0.5 * step, b, [0.5])])[0]
    assert np.abs(o3 - o2).max() > 1e-3 * (hi - lo)


def test_recursive_midpoints_and_allowed_counts(net, pair):
    fi = FilmInterpolator(net, tile_size=512, tile_overlap=64)
    a, b = pair[0][:64, :128], pair[1][:64, :128]
    one = fi.interpolate_gaps([(a, b, [0.5])])[0]
    three = fi.interpolate_gaps([(a, b, [0.25, 0.5, 0.75])])[0]
    seven = fi.interpolate_gaps([(a, b, [k / 8 for k in range(1, 8)])])[0]
    assert three.shape == (3, 64, 128) and seven.shape == (7, 64, 128)
    np.testing.assert_allclose(three[1], one[0], atol=1e-4)
    np.testing.assert_allclose(seven[3], one[0], atol=1e-4)
    np.testing.assert_allclose(seven[1], three[0], rtol=1e-4, atol=1e-3)
    with pytest.raises(InputError, match="1, 3 or 7"):
        fi.interpolate_gaps([(a, b, [1 / 3, 2 / 3])])


def test_bfloat16_runs_and_stays_close(net, pair):
    a, b = pair[0][:128, :128], pair[1][:128, :128]
    ref = FilmInterpolator(net, tile_size=512, tile_overlap=64).interpolate_gaps([(a, b, [0.5])])[0]
    bf = FilmInterpolator(net, tile_size=512, tile_overlap=64, precision="bfloat16")
    out = bf.interpolate_gaps([(a, b, [0.5])])[0]
    assert np.abs(out - ref).max() < 0.05 * (ref.max() - ref.min())
    with pytest.raises(InputError, match="GPU"):
        FilmInterpolator(net, precision="mixed")


class _MeanModel(tf.Module):
    """A foreign model with the FILM interface and no FILM variables: image = (x0 + x1) / 2."""

    def __init__(self):
        super().__init__()
        self.unused = tf.Variable(1.0, name="other/scale")

    @tf.function(input_signature=[{"x0": tf.TensorSpec([None, None, None, 3], tf.float32),
                                   "x1": tf.TensorSpec([None, None, None, 3], tf.float32),
                                   "time": tf.TensorSpec([None, 1], tf.float32)},
                                  tf.TensorSpec([], tf.bool)])
    def __call__(self, inputs, training=False):
        tf.debugging.assert_equal(tf.shape(inputs["x0"])[1:3] % 64, 0)   # the caller pads
        return {"image": self.unused * 0.5 * (inputs["x0"] + inputs["x1"])}


def test_foreign_savedmodel_is_called_as_is_with_padding_tiling_and_units(tmp_path):
    folder = str(tmp_path / "foreign")
    tf.saved_model.save(_MeanModel(), folder)
    rng = np.random.default_rng(3)
    a = rng.normal(50, 8, (150, 300)).astype(np.float32)
    b = rng.normal(60, 8, (150, 300)).astype(np.float32)
    fi = FilmInterpolator(folder, tile_size=128, tile_overlap=64, log=lambda m: None)
    assert fi.net is None and fi.model_info["source"] == "savedmodel"
    out = fi.interpolate_gaps([(a, b, [0.5])])[0][0]
    # Luma weights sum to 1, normalisation is undone, blending weights sum to 1: linear
    # (of the inputs as the network sees them: clipped to the robust range +- 25 %).
    from cryotiger_scipion.engine.film.normalization import from_unit, normalize_pair
    ua, ub, lo, hi = normalize_pair(a, b)
    np.testing.assert_allclose(out, from_unit(0.5 * (ua + ub), lo, hi), rtol=1e-5, atol=1e-3)
    assert 0 < np.mean(np.abs(out - 0.5 * (a + b)) > 1e-3) < 1e-3     # a few clipped pixels only


def test_gpu_code_paths_xla_and_float16_agree_on_cpu(net, pair):
    """The GPU defaults (XLA, float16 compute) run and agree with float32 (checked on the CPU)."""
    a, b = pair[0][:128, :192], pair[1][:128, :192]
    ref = FilmInterpolator(net, tile_size=512, tile_overlap=64).interpolate_gaps([(a, b, [0.5])])[0]
    xla = FilmInterpolator(net, tile_size=512, tile_overlap=64, jit_compile=True)
    np.testing.assert_allclose(xla.interpolate_gaps([(a, b, [0.5])])[0], ref, atol=1e-3 * np.ptp(ref))
    x0 = np.repeat(((a - a.min()) / np.ptp(a))[None, ..., None], 3, -1).astype(np.float32)
    x1 = np.repeat(((b - a.min()) / np.ptp(a))[None, ..., None], 3, -1).astype(np.float32)
    f32 = net(x0, x1).numpy()
    f16 = net(x0, x1, dtype=tf.float16).numpy()
    assert f16.dtype == np.float32 and np.abs(f16 - f32).max() < 0.02 * np.ptp(f32)
