"""Trainer (issue 4): learning, resume after interruption, time budget and
export, fine-tuning from a model, optional VGG losses with a stand-in network,
and the `cryotiger train` contract ending in `cryotiger interpolate --method film`."""
import json
import os

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.formats.mrc import read_stack, write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.train.data import DatabaseParams, SeriesSpec, build_database
from cryotiger_scipion.engine.train.trainer import TrainConfig, Trainer, learning_rate_at, train

PATCH = 32


def _smooth_series(folder, name, seed, n=9, size=64):
    """A learnable case: smooth images whose middle view is exactly the mean of
    its neighbours (linear in angle), so a network can fit it quickly."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage
    base = ndimage.gaussian_filter(rng.normal(0, 1, (2, size, size)), 3).astype(np.float32)
    t = np.linspace(0, 1, n, dtype=np.float32)
    data = (1.0 - t)[:, None, None] * base[0] + t[:, None, None] * base[1]
    angles = np.linspace(-12, 12, n)
    stack, tlt = os.path.join(folder, name + ".mrc"), os.path.join(folder, name + ".tlt")
    write_stack(stack, data, 4.0)
    write_angles(tlt, angles)
    return SeriesSpec(stack, tlt)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("traindb"))
    specs = [_smooth_series(folder, f"ts{k}", k) for k in range(3)]
    build_database(specs, os.path.join(folder, "db"),
                   DatabaseParams(patch_size=PATCH, spacings=(1,), shards=2, seed=0, val_fraction=0.34),
                   progress=False)
    return os.path.join(folder, "db"), specs


def _cfg(**kw):
    base = dict(steps=6, batch_size=4, learning_rate=3e-3, checkpoint_every=3, val_every=0, log_every=2,
                seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(trainer):
    return {k: v.numpy().copy() for k, v in trainer.net.named_variables().items()}


def test_staircase_decay():
    cfg = TrainConfig(learning_rate=1e-3, decay_steps=10, decay_rate=0.5)
    assert learning_rate_at(cfg, 9) == 1e-3 and learning_rate_at(cfg, 10) == 5e-4
    assert learning_rate_at(cfg, 25) == pytest.approx(2.5e-4)


def test_loss_decreases_on_a_learnable_case(db, tmp_path):
    database, _ = db
    tr = Trainer(database, str(tmp_path / "w"), "small",
                 _cfg(steps=60, learning_rate=1e-2, checkpoint_every=0), progress=False)
    s = tr.run()
    assert s["step"] == 60 and s["stopped"] == "steps"
    first, last = np.mean(s["losses"][:8]), np.mean(s["losses"][-8:])
    assert last < 0.5 * first, (first, last)
    val = s["validation"]
    assert val["patches"] > 0 and np.isfinite(val["psnr"]) and "linear_ssim" in val


def test_resume_after_interruption_continues_exactly(db, tmp_path):
    database, _ = db
    straight = Trainer(database, str(tmp_path / "a"), "small", _cfg(), progress=False)
    s = straight.run()
    assert s["step"] == 6
    first = Trainer(database, str(tmp_path / "b"), "small", _cfg(), progress=False)
    s1 = first.run(stop_after=3)              # "interrupted" after 3 steps (checkpoint at 3)
    assert s1["stopped"] == "interrupted" and s1["step"] == 3
    resumed = Trainer(database, str(tmp_path / "b"), "small", _cfg(), progress=False)
    s2 = resumed.run()
    assert s2["start_step"] == 3 and s2["step"] == 6 and "resumed" in s2["what"]
    wa, wb = _weights(straight), _weights(resumed)
    worst = max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa)
    assert worst < 1e-4, worst      # losing the Adam state or the data position moves weights ~1e-3
    # A different training in the same work folder is refused.
    with pytest.raises(InputError, match="different training"):
        Trainer(database, str(tmp_path / "b"), "small", _cfg(batch_size=2), progress=False)


def test_minutes_budget_stops_and_exports(db, tmp_path):
    from cryotiger_scipion.engine.film.savedmodel import load_network
    database, _ = db
    out = str(tmp_path / "model")
    s = train(database, str(tmp_path / "w"), out, "small",
              _cfg(steps=100000, minutes=0.05, checkpoint_every=0), progress=False)
    assert s["stopped"] == "time" and 0 < s["step"] < 100000
    assert os.path.exists(os.path.join(out, "saved_model.pb"))
    info = json.load(open(os.path.join(out, "cryotiger_train.json")))
    assert info["step"] == s["step"] and info["stopped"] == "time"
    net, _ = load_network(out)
    # Fine-tuning starts from the exported weights (matched by name).
    tr = Trainer(database, str(tmp_path / "w2"), "small", _cfg(), init=out, progress=False)
    assert "initialised" in tr.restore_or_init()
    mine = _weights(tr)
    for k, v in net.named_variables().items():
        np.testing.assert_array_equal(mine[k], v.numpy())
    with pytest.raises(InputError, match="configuration"):
        Trainer(database, str(tmp_path / "w3"), "published", _cfg(), init=out, progress=False).restore_or_init()


def test_vgg_losses_with_a_stand_in_network(db, tmp_path):
    from cryotiger_scipion.engine.train.losses import make_standin_vgg
    database, _ = db
    weights = make_standin_vgg(str(tmp_path / "vgg_standin.keras"))
    tr = Trainer(database, str(tmp_path / "w"), "small",
                 _cfg(steps=2, vgg_weights=weights, style_weight=40.0, checkpoint_every=0), progress=False)
    assert tr.losses.names() == ["l1", "vgg", "style"]
    import tensorflow as tf
    x = tf.random.uniform((1, PATCH, PATCH, 3), seed=1)
    total, parts = tr.losses(x, x + 0.1)
    assert float(parts["vgg"]) > 0 and float(total) > float(parts["l1"])
    assert float(tr.losses(x, x)[0]) == 0.0
    assert tr.run()["step"] == 2
    import keras
    bad = str(tmp_path / "bad.keras")
    inp = keras.Input((None, None, 3))
    keras.Model(inp, keras.layers.Conv2D(2, 3, name="other")(inp)).save(bad)
    with pytest.raises(InputError, match="block1_conv2"):
        Trainer(database, str(tmp_path / "w2"), "small", _cfg(vgg_weights=bad), progress=False)
    with pytest.raises(InputError, match="not found"):
        Trainer(database, str(tmp_path / "w3"), "small", _cfg(vgg_weights=str(tmp_path / "no.h5")),
                progress=False)


def test_cli_train_self_supervised_then_interpolate(tmp_path, capsys):
    """The contract: cryotiger train ... --spacing 2 on the series itself, then
    cryotiger interpolate --method film --model MODEL_DIR between neighbours."""
    from cryotiger_scipion.engine.cli import main
    spec = _smooth_series(str(tmp_path), "ts", 7, n=11)
    model = str(tmp_path / "model")
    rc = main(["train", "--input", spec.stack, "--angles", spec.angles, "--output", model,
               "--config", "small", "--steps", "4", "--spacing", "2", "--patch-size", str(PATCH),
               "--batch-size", "2", "--val-every", "2", "--checkpoint-every", "2", "--quiet"])
    assert rc == 0 and os.path.exists(os.path.join(model, "saved_model.pb"))
    man = json.load(open(os.path.join(model + ".work", "database", "database.json")))
    assert man["spacings"] == [2] and man["validation_split"].startswith("triplets")
    out = str(tmp_path / "dense.mrc")
    rc = main(["interpolate", "--input", spec.stack, "--angles", spec.angles, "--output", out,
               "--method", "film", "--model", model, "--quiet"])
    assert rc == 0
    dense, _ = read_stack(out)
    assert dense.shape == (21, 64, 64) and np.all(np.isfinite(dense))
    # Running it again resumes (nothing left to do at step 4) and re-exports.
    rc = main(["train", "--input", spec.stack, "--angles", spec.angles, "--output", model,
               "--config", "small", "--steps", "4", "--spacing", "2", "--patch-size", str(PATCH),
               "--batch-size", "2", "--quiet"])
    assert rc == 0
    assert json.load(open(os.path.join(model, "cryotiger_train.json")))["step"] == 4
    # User mistakes: exit 2 with a message naming the fix.
    capsys.readouterr()
    rc = main(["train", "--input", spec.stack, "--output", model, "--config", "small"])
    assert rc == 2 and "--angles" in capsys.readouterr().err
    rc = main(["train", "--input", spec.stack, "--angles", spec.angles, "--output", str(tmp_path / "m2"),
               "--config", "huge"])
    assert rc == 2 and "small" in capsys.readouterr().err
