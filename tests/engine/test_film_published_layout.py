"""Issue 10 item 1: SavedModels with the PUBLISHED variable layout import natively.

The published FILM exports name the feature extractor
``feat_net/sub_extractor/cfeat_conv_k`` and carry Keras' per-process numbers on
the fusion convolutions (an offset such as conv2d_5 ... conv2d_17).  Before the
fix the import failed on both and silently fell back to calling the SavedModel
(float32 only, no fine-tuning, no configuration).
"""
import os
import subprocess

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cryotiger_scipion.engine.film import savedmodel as sm  # noqa: E402
from cryotiger_scipion.engine.film.config import FilmConfig  # noqa: E402
from cryotiger_scipion.engine.film.inference import FilmInterpolator  # noqa: E402
from cryotiger_scipion.engine.film.network import FilmNet  # noqa: E402
from conftest import cryotiger_cmd  # noqa: E402
from film_layout import savedmodel_image, write_published_layout  # noqa: E402

PUBLISHED_OFFSET = 5      # fusion/conv2d_5 ... fusion/conv2d_17
# The published structure (7 levels, 5 fusion levels, 3 specialised flow levels,
# 4 sub-levels: what a foreign model without cryotiger_film.json is read as),
# with narrow layers: cheap, same names and variable count (82).
NARROW = FilmConfig(flow_convs=[3, 3, 3, 3], flow_filters=[8, 8, 8, 8], filters=4)


def _pair(size=64, seed=0):
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
    a = (0.5 + 0.15 * a / a.std()).astype(np.float32)
    return a, np.roll(a, 2, axis=1)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A published-configuration model (34,436,667 parameters) in the published layout."""
    folder = str(tmp_path_factory.mktemp("published") / "saved_model")
    net = FilmNet(FilmConfig.published(), seed=3)
    names = write_published_layout(net, folder, fusion_offset=PUBLISHED_OFFSET)
    return folder, names


def test_the_helper_writes_the_published_layout(published):
    folder, names = published
    loaded = tf.saved_model.load(folder)
    variables = loaded.keras_api.variables
    assert len(variables) == 82
    assert sum(int(np.prod(v.shape)) for v in variables) == 34_436_667
    listed = {v.name.split(":")[0] for v in variables}
    assert "feat_net/sub_extractor/cfeat_conv_7/kernel" in listed
    assert "fusion/conv2d_5/kernel" in listed and "fusion/conv2d_17/bias" in listed
    assert "fusion/conv2d/kernel" not in listed and "fusion/conv2d_4/kernel" not in listed
    assert not os.path.exists(os.path.join(folder, "cryotiger_film.json"))


def test_published_layout_imports_natively_and_agrees_with_the_savedmodel(published):
    folder, _ = published
    a, b = _pair()
    fi = FilmInterpolator(folder, tile_size=128)
    assert fi.net is not None and fi._saved is None, fi.fallback_warning
    assert fi.fallback_warning is None
    assert fi.model_info["config"] == FilmConfig.published()
    assert fi.parameters() == 34_436_667
    x0 = np.repeat(a[None, ..., None], 3, -1)
    x1 = np.repeat(b[None, ..., None], 3, -1)
    native = fi.net(x0, x1).numpy()
    reference = savedmodel_image(folder, x0, x1)
    np.testing.assert_allclose(native, reference, atol=2e-5)
    # `model info` reads the configuration from the variables.
    n, cfg = sm.count_parameters(folder)
    assert n == 34_436_667 and cfg == FilmConfig.published()


def test_published_layout_runs_in_bfloat16(published):
    folder, _ = published
    a, b = _pair(seed=1)
    f32 = FilmInterpolator(folder, tile_size=128, precision="float32").interpolate_gaps([(a, b, [0.5])])[0]
    fi = FilmInterpolator(folder, tile_size=128, precision="bfloat16")
    assert fi.precision == "bfloat16" and fi.net is not None
    bf16 = fi.interpolate_gaps([(a, b, [0.5])])[0]
    assert np.all(np.isfinite(bf16))
    rng = float(a.max() - a.min())
    diff = np.abs(bf16 - f32)
    assert diff.mean() < 0.02 * rng          # bfloat16 has 8 bits of mantissa
    assert diff.max() > 0                      # it really ran in another precision


def test_train_init_starts_from_a_published_layout_model(published, tmp_path):
    folder, _ = published
    import mrcfile
    a, b = _pair(seed=2)
    stack = np.stack([np.roll(a, k, axis=1) for k in range(5)]).astype(np.float32)
    with mrcfile.new(str(tmp_path / "ts.mrc")) as m:
        m.set_data(stack)
    (tmp_path / "ts.tlt").write_text("\n".join(str(x) for x in (-4, -2, 0, 2, 4)) + "\n")
    out = tmp_path / "tuned"
    r = subprocess.run(cryotiger_cmd() + [
        "train", "--input", str(tmp_path / "ts.mrc"), "--angles", str(tmp_path / "ts.tlt"),
        "--output", str(out), "--config", "published", "--init", folder, "--steps", "1",
        "--batch-size", "1", "--patch-size", "64", "--val-fraction", "0", "--no-augment"],
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "initialised 82/82 variables" in r.stdout + r.stderr
    tuned, info = sm.load_network(str(out))
    assert info["config"] == FilmConfig.published()
    # Fine-tuning started from the published weights (one small step away from them).
    start, _ = sm.load_network(folder)
    k0 = start.named_variables()["fusion/conv2d_12/kernel"].numpy()
    k1 = tuned.named_variables()["fusion/conv2d_12/kernel"].numpy()
    assert np.abs(k1 - k0).max() < 1e-2 * np.abs(k0).max()


@pytest.mark.parametrize("offset", [0, 1, 5, 12])
def test_fusion_numbers_at_any_offset_match_by_creation_order(tmp_path, offset):
    net = FilmNet(NARROW, seed=offset + 1)
    folder = str(tmp_path / "m")
    names = write_published_layout(net, folder, fusion_offset=offset)
    assert len(names) == 82 and f"fusion/conv2d_{12 + offset}/kernel" in names
    imported, info = sm.load_network(folder)
    assert info["source"] == "foreign" and info["config"] == NARROW
    a, b = _pair(seed=offset)
    x0 = np.repeat(a[None, ..., None], 3, -1)
    x1 = np.repeat(b[None, ..., None], 3, -1)
    np.testing.assert_allclose(imported(x0, x1).numpy(), savedmodel_image(folder, x0, x1), atol=1e-5)


def test_old_cryotiger_names_still_import(tmp_path):
    """Models exported before the published layout was known: feat_net/cfeat_conv_k."""
    net = FilmNet(FilmConfig.small(), seed=4)
    weights = {k.replace("feat_net/sub_extractor/", "feat_net/"): v.numpy()
               for k, v in net.named_variables().items()}
    assert "feat_net/cfeat_conv_0/kernel" in weights
    other = FilmNet(FilmConfig.small(), seed=8)
    assert sm.import_weights(other, weights) == len(weights)
    a, b = _pair(seed=4)
    x0 = np.repeat(a[None, ..., None], 3, -1)
    np.testing.assert_allclose(other(x0, x0[:, :, ::-1]).numpy(), net(x0, x0[:, :, ::-1]).numpy(), atol=1e-6)


def test_unknown_layout_falls_back_with_a_warning_in_the_summary(tmp_path):
    """A layout the import does not know still runs (as a SavedModel), and the
    command says so, with what is lost, also with --quiet."""
    import mrcfile
    net = FilmNet(FilmConfig.small(), seed=5)
    for conv in net.feature_extractor.convs:
        conv.path = conv.path.replace("feat_net/sub_extractor/cfeat_conv_", "encoder/block_")
    folder = str(tmp_path / "odd")
    write_published_layout(net, folder)
    a, b = _pair(seed=5)
    with mrcfile.new(str(tmp_path / "pair.mrc")) as m:
        m.set_data(np.stack([a, b]))
    (tmp_path / "pair.tlt").write_text("0\n2\n")
    r = subprocess.run(cryotiger_cmd() + [
        "interpolate", "--input", str(tmp_path / "pair.mrc"), "--angles", str(tmp_path / "pair.tlt"),
        "--output", str(tmp_path / "out.mrc"), "--method", "film", "--model", folder,
        "--precision", "bfloat16", "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    warnings = [line for line in r.stderr.splitlines() if "WARNING: the FILM model" in line]
    assert len(warnings) >= 2, r.stderr[-2000:]          # in the log and in the summary
    assert "float32 only" in warnings[-1] and "fine-tuning" in warnings[-1]
    assert "--precision bfloat16" in warnings[-1]
    with mrcfile.open(str(tmp_path / "out.mrc")) as m:
        out = m.data[1]
    x0 = np.repeat(a[None, ..., None], 3, -1)
    x1 = np.repeat(b[None, ..., None], 3, -1)
    # The SavedModel ran as it is (its own weights, float32): same image as calling it.
    lo, hi = np.percentile(np.concatenate([a.ravel(), b.ravel()]), [0.5, 99.5])
    u0 = np.clip((x0 - lo) / (hi - lo), -0.25, 1.25).astype(np.float32)
    u1 = np.clip((x1 - lo) / (hi - lo), -0.25, 1.25).astype(np.float32)
    ref = savedmodel_image(folder, u0, u1)[0] @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(out, ref * (hi - lo) + lo, atol=1e-4 * (hi - lo))
