"""Issue 17: the precision ``auto`` picks per device, the accuracy bound behind it,
tile overlap from the network's measured context (tiled == whole with trained
weights, without the quarter-tile waste)."""
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from scipy import ndimage  # noqa: E402

from cryotiger_scipion.engine.film.config import FilmConfig  # noqa: E402
from cryotiger_scipion.engine.film.inference import FilmInterpolator  # noqa: E402
from cryotiger_scipion.engine.film.network import FilmNet  # noqa: E402
from cryotiger_scipion.engine.film.precision import ERROR_BOUND, auto_precision, cpu_has_bf16  # noqa: E402
from cryotiger_scipion.engine.film.tiling import TileGrid, default_overlap, network_context  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402
from cryotiger_scipion.engine.train.data import DatabaseParams, SeriesSpec, build_database  # noqa: E402
from cryotiger_scipion.engine.train.trainer import TrainConfig, Trainer  # noqa: E402

PUBLISHED_PARAMS = 34_436_667


def test_auto_precision_per_device_and_cpu_flags():
    bf16_cpu = {"avx512f", "avx512_bf16"}
    amx_cpu = {"amx_tile", "amx_bf16"}
    plain_cpu = {"avx2", "avx512f"}
    assert auto_precision("gpu", PUBLISHED_PARAMS, plain_cpu) == "mixed"
    assert auto_precision("gpu", 20_000, bf16_cpu) == "mixed"
    assert auto_precision("cpu", PUBLISHED_PARAMS, bf16_cpu) == "bfloat16"
    assert auto_precision("cpu", PUBLISHED_PARAMS, amx_cpu) == "bfloat16"
    assert auto_precision("cpu", PUBLISHED_PARAMS, plain_cpu) == "float32"     # bfloat16 emulated: slower
    assert auto_precision("cpu", 150_000, bf16_cpu) == "float32"              # small nets: not faster
    assert cpu_has_bf16(bf16_cpu) and cpu_has_bf16(amx_cpu) and not cpu_has_bf16(plain_cpu)


def test_interpolator_resolves_auto_on_this_machine():
    small = FilmInterpolator(FilmNet(FilmConfig.small(), seed=0), tile_size=128, log=lambda m: None)
    assert small.precision == "float32" and small.describe()["precision"] == "float32"
    published = FilmInterpolator(FilmNet(FilmConfig.published(), seed=0), tile_size=128, log=lambda m: None)
    assert published.precision == ("bfloat16" if cpu_has_bf16() else "float32")
    assert published.describe()["precision_requested"] == "auto"


def _reprojected_tilts(shared_data):
    """Tilts -6..6 every 2 degrees of the real 14pf_MT crop (136 x 84), and the
    std of the difference between neighbouring tilts."""
    from cryotiger_scipion.engine.simulate import load_volume, project
    vol, _ = load_volume(os.path.join(shared_data, "cylindra_mt", "14pf_MT.tif"))
    vol = np.pad(vol.max() - vol, ((10, 10), (0, 0), (0, 0)))
    tilts = np.stack([project(vol, a) for a in np.arange(-6.0, 6.1, 2.0)])
    return tilts, float(np.mean([np.std(tilts[i + 1] - tilts[i]) for i in range(len(tilts) - 1)]))


def test_bfloat16_error_below_the_bound_for_the_published_configuration(shared_data):
    """The rule's premise (published configuration, RANDOM weights: no published
    weights here): bfloat16 differs from float32 by less than 1% of the
    neighbouring-tilt difference of a re-projected real tomogram."""
    tilts, diff = _reprojected_tilts(shared_data)
    net = FilmNet(FilmConfig.published(), seed=0)
    gaps = [(tilts[0], tilts[2], [0.5]), (tilts[3], tilts[5], [0.5])]
    ref = FilmInterpolator(net, tile_size=192, tile_overlap=0, precision="float32").interpolate_gaps(gaps)
    bf = FilmInterpolator(net, tile_size=192, tile_overlap=0, precision="bfloat16").interpolate_gaps(gaps)
    err = np.std(np.stack(bf) - np.stack(ref)) / diff
    assert 1e-5 < err < ERROR_BOUND, err     # > 0: bfloat16 really ran


# -- a small model trained by the product ------------------------------------------------------

def _series(folder, name, seed, n=9, size=96):
    """Smooth textured images moving linearly with the tilt (a learnable case)."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (size, size + 16)), 2).astype(np.float32)
    data = np.stack([base[:, k:k + size] for k in range(0, 2 * n, 2)][:n]).astype(np.float32)
    stack, tlt = os.path.join(folder, name + ".mrc"), os.path.join(folder, name + ".tlt")
    write_stack(stack, data, 4.0)
    write_angles(tlt, np.linspace(-12, 12, n))
    return SeriesSpec(stack, tlt)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("perf_train"))
    specs = [_series(folder, f"ts{k}", k) for k in range(3)]
    db = os.path.join(folder, "db")
    build_database(specs, db, DatabaseParams(patch_size=32, spacings=(1,), shards=2, seed=0, val_fraction=0.34),
                   progress=False)
    tr = Trainer(db, os.path.join(folder, "w"), "small",
                 TrainConfig(steps=80, batch_size=4, learning_rate=1e-2, checkpoint_every=0, val_every=0,
                             log_every=20, seed=0), progress=False)
    s = tr.run()
    assert np.mean(s["losses"][-10:]) < np.mean(s["losses"][:10])       # it did learn
    return tr.net


@pytest.fixture(scope="module")
def textured_pair():
    rng = np.random.default_rng(5)
    a = ndimage.gaussian_filter(rng.normal(0, 1, (448, 520)), 2).astype(np.float32)
    a += 0.3 * rng.normal(0, 1, a.shape).astype(np.float32)
    return a * 40 + 500, np.roll(a, 2, axis=1) * 40 + 500


def test_auto_on_a_trained_small_model_is_float32_exactly(trained, textured_pair):
    a, b = textured_pair[0][:128, :128], textured_pair[1][:128, :128]
    auto = FilmInterpolator(trained, tile_size=128, log=lambda m: None)
    f32 = FilmInterpolator(trained, tile_size=128, precision="float32", log=lambda m: None)
    assert auto.precision == "float32"
    np.testing.assert_array_equal(auto.interpolate_gaps([(a, b, [0.5])])[0],
                                  f32.interpolate_gaps([(a, b, [0.5])])[0])


def test_default_overlap_comes_from_the_context_not_the_tile():
    ctx = network_context(FilmConfig.small())
    assert ctx == 32
    assert [default_overlap(t, context=ctx) for t in (128, 256, 768, 1024)] == [64, 128, 128, 128]
    assert network_context(FilmConfig.published()) is None           # not measured with trained weights
    assert default_overlap(768) == 192                                # -> the quarter-tile rule
    # The waste at 2048 x 2048 with 768-pixel tiles: the pixels run per image pixel.
    cover = lambda ov: (lambda g: len(g) * g.tile_h * g.tile_w / 2048 ** 2)(TileGrid(2048, 2048, 768, ov))  # noqa
    assert cover(default_overlap(768, context=ctx)) < 1 / 0.7 < cover(default_overlap(768))


def test_tiled_equals_whole_with_trained_weights_at_the_default_overlap(trained, textured_pair):
    a, b = textured_pair
    whole = FilmInterpolator(trained, tile_size=576, tile_overlap=0, log=lambda m: None)
    tiled = FilmInterpolator(trained, tile_size=256, log=lambda m: None)
    assert tiled.tile_overlap == 128 and len(TileGrid(448, 576, 256, 128)) > 4
    w = whole.interpolate_gaps([(a, b, [0.5])])[0][0]
    t = tiled.interpolate_gaps([(a, b, [0.5])])[0][0]
    assert np.abs(t - w).max() < 1e-3 * np.ptp(w)


# -- the GPU path with a published-layout model, checked on the CPU ----------------------------

def test_gpu_path_float16_xla_batched_pairs_one_trace_with_a_published_layout_model(tmp_path):
    """Float16 compute, XLA, 4 pairs per call and one trace for a whole series, on a
    model written in the PUBLISHED layout (the published structure, narrow layers,
    fusion numbers at an offset): imported natively and agreeing with float32."""
    from film_layout import write_published_layout
    narrow = FilmConfig(flow_convs=[3, 3, 3, 3], flow_filters=[8, 8, 8, 8], filters=4)
    folder = str(tmp_path / "published_layout")
    write_published_layout(FilmNet(narrow, seed=3), folder, fusion_offset=5)
    rng = np.random.default_rng(8)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (100, 150)), 2).astype(np.float32) * 20 + 300
    gaps = [(np.roll(base, k, axis=1), np.roll(base, k + 2, axis=1), [0.5]) for k in range(7)]
    ref = FilmInterpolator(folder, tile_size=128, tile_overlap=64, precision="float32", batch_size=1,
                           log=lambda m: None)
    gpu = FilmInterpolator(folder, tile_size=128, tile_overlap=64, precision="float32", batch_size=4,
                           jit_compile=True, log=lambda m: None)
    assert gpu.net is not None and gpu.fallback_warning is None      # native import, not the SavedModel
    gpu.compute_dtype = tf.float16    # the GPU's 'mixed' compute ('mixed' itself is refused on a CPU)
    out = []
    for start in range(0, len(gaps), gpu.gaps_per_call):             # the driver's batching of pairs
        out += gpu.interpolate_gaps(gaps[start:start + gpu.gaps_per_call])
    assert gpu.trace_count == 1                                        # one trace for the series
    want = np.stack(ref.interpolate_gaps(gaps))
    got = np.stack(out)
    span = float(np.ptp(want))
    assert np.abs(got - want).mean() < 2e-3 * span and np.abs(got - want).max() < 2e-2 * span
    assert np.abs(got - want).max() > 0                                # float16 really ran
