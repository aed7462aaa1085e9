"""Training data (issue 4): triplet selection, exact TFRecord round trip,
seeded reproducibility, validation split by series, augmentation consistency."""
import glob
import os

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.formats.training_db import shard_paths
from cryotiger_scipion.engine.train.data import (DatabaseParams, SeriesSpec, build_database,
                                                 make_dataset, parse_example, patch_origins,
                                                 select_triplets)


def _series(folder, name, n=7, shape=(40, 48), seed=0, angles=None):
    rng = np.random.default_rng(seed)
    # Values with full float32 precision, negative and large: any 8/16-bit path would change them.
    data = (rng.normal(0, 1, (n,) + shape) * 1234.5678 - 17.25).astype(np.float32)
    angles = np.arange(n) * 3.0 - 3.0 * (n // 2) if angles is None else np.asarray(angles)
    stack = os.path.join(folder, f"{name}.mrc")
    tlt = os.path.join(folder, f"{name}.tlt")
    write_stack(stack, data, 5.0)
    write_angles(tlt, angles)
    return SeriesSpec(stack, tlt), data


def test_triplets_follow_angle_order_skip_excluded_and_spacing():
    # Stack order is not angle order; view at stack index 2 (angle 0) is excluded.
    angles = [6.0, -6.0, 0.0, 3.0, -3.0, 9.0, -9.0]
    trips = select_triplets(angles, exclude=[2], spacings=(1,))
    # Usable sorted by angle: -9(6) -6(1) -3(4) 3(3) 6(0) 9(5)
    assert [t[:3] for t in trips] == [(6, 1, 4), (1, 4, 3), (4, 3, 0), (3, 0, 5)]
    assert all(2 not in t[:3] for t in trips)
    trips2 = select_triplets(angles, exclude=[2], spacings=(2,))
    assert [t[:3] for t in trips2] == [(6, 4, 0), (1, 3, 5)]
    both = select_triplets(angles, exclude=[], spacings=(1, 2))
    assert sum(t[3] == 1 for t in both) == 5 and sum(t[3] == 2 for t in both) == 3


def test_triplets_skip_off_centre_middles_and_bad_input():
    angles = [-10.0, -9.0, 0.0, 10.0]   # -10, -9, 0: middle at 10% of the gap -> skipped
    trips = select_triplets(angles, spacings=(1,))
    assert [t[:3] for t in trips] == [(1, 2, 3)]
    with pytest.raises(InputError, match="excluded view 9"):
        select_triplets(angles, exclude=[8])
    with pytest.raises(InputError, match="spacing 0"):
        select_triplets(angles, spacings=(0,))


def test_patch_grid_covers_the_image_and_refuses_large_patches():
    origins = patch_origins((40, 48), 16)
    assert (24, 32) in origins and len(origins) == 3 * 3
    with pytest.raises(InputError, match="patch size 64"):
        patch_origins((40, 48), 64)


def test_tfrecord_round_trip_is_exact(tmp_path):
    import tensorflow as tf
    spec, data = _series(str(tmp_path), "ts", seed=3)
    man = build_database([spec], str(tmp_path / "db"),
                         DatabaseParams(patch_size=16, spacings=(1, 2), shards=3, seed=1), progress=False)
    files = glob.glob(str(tmp_path / "db" / "*.tfrecord"))
    assert len([f for f in files if "train-" in f]) == 3
    n = 0
    for path in shard_paths(str(tmp_path / "db"), "train") + shard_paths(str(tmp_path / "db"), "val"):
        for rec in tf.data.TFRecordDataset(path):
            raw = tf.train.Example.FromString(rec.numpy()).features.feature
            assert raw["frame_1/format"].bytes_list.value[0] == b"raw_float32"
            assert raw["frame_0/height"].int64_list.value[0] == 16
            ex = parse_example(rec, normalize=False, channels=1)
            name, views, origin = ex["path"].numpy().decode().split(":")
            a, m, b = (int(v) - 1 for v in views.split(","))
            y0, x0 = (int(v) for v in origin.split(","))
            for key, view in (("x0", a), ("y", m), ("x1", b)):
                got = ex[key].numpy()[..., 0]
                np.testing.assert_array_equal(got, data[view, y0:y0 + 16, x0:x0 + 16])
            n += 1
    assert n == man["counts"]["train"] + man["counts"]["val"] > 0
    # Normalised reading maps by the pair's robust range, grey copied to 3 channels.
    ex = next(iter(make_dataset(str(tmp_path / "db"), "train", batch_size=2, augment=False, shuffle=False)))
    assert ex["x0"].shape == (2, 16, 16, 3) and ex["time"].shape == (2, 1)
    assert -1.5 < float(tf.reduce_mean(ex["y"])) < 2.5


def test_database_is_reproducible_with_a_seed_and_split_by_series(tmp_path):
    specs = [_series(str(tmp_path), f"ts{k}", seed=k)[0] for k in range(3)]
    p = DatabaseParams(patch_size=16, spacings=(1,), shards=2, seed=5, val_fraction=0.34)

    def content(folder):
        return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(folder + "/*.tfrecord"))}
    a = build_database(specs, str(tmp_path / "a"), p, progress=False)
    b = build_database(specs, str(tmp_path / "b"), p, progress=False)
    assert content(str(tmp_path / "a")) == content(str(tmp_path / "b"))
    c = build_database(specs, str(tmp_path / "c"), DatabaseParams(**{**p.__dict__, "seed": 6}), progress=False)
    assert content(str(tmp_path / "a")) != content(str(tmp_path / "c"))
    # Exactly one whole series is held out, and no record of it is in training.
    val_series = [s["name"] for s in a["series"] if s["validation"]]
    assert len(val_series) == 1 and a["validation_split"] == "series"
    import tensorflow as tf

    def names(split):
        out = set()
        for path in shard_paths(str(tmp_path / "a"), split):
            for rec in tf.data.TFRecordDataset(path):
                out.add(parse_example(rec)["path"].numpy().decode().split(":")[0])
        return out
    assert names("val") == set(val_series)
    assert not names("train") & set(val_series)
    # Same request -> reused as is (no rewrite).
    mtime = os.path.getmtime(str(tmp_path / "a" / "database.json"))
    build_database(specs, str(tmp_path / "a"), p, progress=False)
    assert os.path.getmtime(str(tmp_path / "a" / "database.json")) == mtime


def test_augmentation_transforms_all_frames_together(tmp_path):
    spec, data = _series(str(tmp_path), "ts", n=5, shape=(16, 16), seed=9)
    build_database([spec], str(tmp_path / "db"), DatabaseParams(patch_size=16, shards=1, val_fraction=0),
                   progress=False)
    plain = list(make_dataset(str(tmp_path / "db"), "train", batch_size=1, shuffle=False, repeat=False,
                              augment=False, normalize=False))
    aug = list(make_dataset(str(tmp_path / "db"), "train", batch_size=1, shuffle=False, repeat=False,
                            augment=True, seed=3, normalize=False))
    changed = swapped = 0
    for p_, a_ in zip(plain, aug):
        p0, py, p1 = (p_[k].numpy()[0, ..., 0] for k in ("x0", "y", "x1"))
        a0, ay, a1 = (a_[k].numpy()[0, ..., 0] for k in ("x0", "y", "x1"))
        found = False
        for k in range(4):
            for fl in (lambda z: z, np.fliplr, np.flipud, lambda z: np.flipud(np.fliplr(z))):
                t = lambda z: fl(np.rot90(z, k))  # noqa: E731
                if np.array_equal(t(py), ay):
                    if np.array_equal(t(p0), a0) and np.array_equal(t(p1), a1):
                        found = True
                    elif np.array_equal(t(p0), a1) and np.array_equal(t(p1), a0):
                        found = swapped = swapped + 1
        assert found, "augmentation must apply one rotation/flip to the three frames"
        changed += not np.array_equal(py, ay)
    assert changed > 0 and swapped > 0


def test_database_errors_name_the_fix(tmp_path):
    spec, _ = _series(str(tmp_path), "ts", n=3)
    with pytest.raises(InputError, match="no triplets"):
        build_database([spec], str(tmp_path / "db"), DatabaseParams(patch_size=16, spacings=(2,)),
                       progress=False)
    with pytest.raises(InputError, match="--patch-size"):
        build_database([spec], str(tmp_path / "db"), DatabaseParams(patch_size=64), progress=False)
    with pytest.raises(InputError, match="not found"):
        build_database([SeriesSpec(str(tmp_path / "nope.mrc"), "")], str(tmp_path / "db"),
                       DatabaseParams(), progress=False)
