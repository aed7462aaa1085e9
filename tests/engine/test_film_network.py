"""FILM network: parameter count, naming, shapes, SavedModel export/import."""
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cryotiger_scipion.engine import InputError  # noqa: E402
from cryotiger_scipion.engine.film import savedmodel as sm  # noqa: E402
from cryotiger_scipion.engine.film.config import FilmConfig  # noqa: E402
from cryotiger_scipion.engine.film.network import FilmNet, build_film  # noqa: E402
from film_layout import offset_fusion_name  # noqa: E402


def test_published_configuration_has_published_parameter_count():
    net = build_film(FilmConfig.published())
    assert net.count_params() == 34_436_667
    sizes = {}
    for name, v in net.named_variables().items():
        part = name.split("/")[0]
        sizes[part] = sizes.get(part, 0) + int(np.prod(v.shape))
    assert sizes == {"feat_net": 4_685_376, "predict_flow": 7_326_328, "fusion": 22_424_963}


def test_variable_names_follow_published_prefixes():
    names = set(build_film(FilmConfig.published()).named_variables())
    for k in range(8):
        assert f"feat_net/sub_extractor/cfeat_conv_{k}/kernel" in names
    for p in ("0", "1", "2", "shared"):
        for k in range(5):
            assert f"predict_flow/flow_predictor_{p}/conv_{k}/bias" in names
    assert "fusion/conv2d/kernel" in names and "fusion/conv2d_12/kernel" in names
    assert len(names) == 2 * (8 + 4 * 5 + 13)


def test_small_network_shapes_and_feature_channels():
    cfg = FilmConfig.published()
    assert [cfg.feature_channels(i) for i in range(7)] == [64, 192, 448, 960, 960, 960, 960]
    assert [cfg.fusion_channels(i) for i in range(5)] == [138, 394, 906, 1930, 1930]
    net = FilmNet(FilmConfig.small(), seed=1)
    x0 = tf.random.uniform((2, 64, 128, 3), seed=1)
    out = net(x0, x0[::-1], aux=True)
    assert out["image"].shape == (2, 64, 128, 3)
    assert len(out["forward_flow_pyramid"]) == FilmConfig.small().fusion_pyramid_levels
    assert np.all(np.isfinite(out["image"].numpy()))


def test_warp_samples_at_position_plus_flow_and_clamps():
    from cryotiger_scipion.engine.film.warp import warp
    img = np.arange(5 * 6, dtype=np.float32).reshape(1, 5, 6, 1)
    flow = np.zeros((1, 5, 6, 2), np.float32)
    flow[..., 0] = 1.0   # dx = +1: out(y, x) = img(y, x + 1), last column clamps
    out = warp(tf.constant(img), tf.constant(flow)).numpy()
    np.testing.assert_allclose(out[0, :, :-1, 0], img[0, :, 1:, 0])
    np.testing.assert_allclose(out[0, :, -1, 0], img[0, :, -1, 0])
    flow[..., 0] = 0.0
    flow[..., 1] = 0.5   # half a row down: mean of rows y and y+1
    out = warp(tf.constant(img), tf.constant(flow)).numpy()
    np.testing.assert_allclose(out[0, :-1, :, 0], 0.5 * (img[0, :-1, :, 0] + img[0, 1:, :, 0]))


def test_export_then_load_both_ways_agree(tmp_path):
    net = FilmNet(FilmConfig.small(), seed=5)
    folder = sm.export_savedmodel(net, str(tmp_path / "model"))
    rng = np.random.default_rng(0)
    x0 = rng.random((1, 64, 128, 3), dtype=np.float32)
    x1 = np.roll(x0, 3, axis=2)
    loaded, _ = sm.load_savedmodel(folder)
    out = loaded({"x0": x0, "x1": x1, "time": np.full((1, 1), 0.5, np.float32)}, training=False)
    assert set(out) >= {"image", "x0_warped", "x1_warped", "forward_flow_pyramid"}
    via_savedmodel = out["image"].numpy()
    imported, info = sm.load_network(folder)
    assert info["config"] == FilmConfig.small()
    via_native = imported(x0, x1).numpy()
    np.testing.assert_allclose(via_native, via_savedmodel, atol=1e-5)
    np.testing.assert_allclose(via_native, net(x0, x1).numpy(), atol=1e-5)
    # A different random network gives a different image (the import did something).
    assert np.abs(FilmNet(FilmConfig.small(), seed=6)(x0, x1).numpy() - via_native).max() > 1e-3


def test_nested_film_layout_and_weight_import_without_config(tmp_path):
    net = FilmNet(FilmConfig.small(), seed=2)
    nested = tmp_path / "dl" / "film_net" / "Style" / "saved_model"
    sm.export_savedmodel(net, str(nested))
    os.remove(nested / "cryotiger_film.json")   # like a published model: no config file
    assert sm.find_saved_model_dir(str(tmp_path / "dl")) == str(nested)
    loaded, _ = sm.load_savedmodel(str(tmp_path / "dl"))
    weights = sm._weights_by_name(sm.collect_variables(loaded))
    cfg = sm.infer_config(weights, pyramid_levels=FilmConfig.small().pyramid_levels)
    assert cfg == FilmConfig.small()
    # Keras numbers fusion convs per process (an offset): import goes by creation order.
    renamed = {offset_fusion_name(k, 4): v for k, v in weights.items()}
    assert "fusion/conv2d_4/kernel" in renamed and "fusion/conv2d/kernel" not in renamed
    other = FilmNet(cfg, seed=9)
    sm.import_weights(other, renamed)
    x = np.random.default_rng(1).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(other(x, x[:, ::-1]).numpy(), net(x, x[:, ::-1]).numpy(), atol=1e-5)
    with pytest.raises(InputError, match="do not fit"):
        sm.import_weights(FilmNet(FilmConfig(filters=8, sub_levels=2, specialized_levels=1,
                                             pyramid_levels=4, fusion_pyramid_levels=3,
                                             flow_convs=[1, 1], flow_filters=[8, 8])), weights)


def test_missing_or_invalid_model_folder_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        sm.find_saved_model_dir(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no saved_model.pb"):
        sm.find_saved_model_dir(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    (bad / "variables").mkdir(parents=True)
    (bad / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(InputError, match="could not be loaded"):
        sm.load_savedmodel(str(bad))


def test_padding_is_half_before_rest_after():
    assert sm.pad_amounts(100) == (14, 14)
    assert sm.pad_amounts(65) == (31, 32)
    x = np.ones((1, 65, 128, 1), np.float32)
    p, box = sm.pad_to_multiple(x)
    assert p.shape == (1, 128, 128, 1) and p[0, 30, 0, 0] == 0 and p[0, 31, 0, 0] == 1
    assert sm.crop(p, box).shape == x.shape
