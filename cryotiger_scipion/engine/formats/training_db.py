"""The FILM training database: TFRecord shards of triplet patches and a JSON
manifest (cryotiger's own format, in FILM's record layout; Reda et al., ECCV
2022, ``datasets/create_*_tfrecord.py`` of google-research/frame-interpolation).

Folder layout::

    database.json                      manifest: parameters, series, record counts, shards
    train-00000-of-00004.tfrecord ...  training shards
    val-00000-of-00001.tfrecord        validation shard(s)

One record (``tf.train.Example``) = one patch of one triplet: ``frame_0/encoded``,
``frame_1/encoded`` (the MIDDLE, ground-truth frame), ``frame_2/encoded``, each
with ``/format`` (always ``raw_float32``: the (h, w) pixels as little-endian
float32 bytes in the stack's own units, an exact round trip), ``/height`` and
``/width``; ``path`` ("<series>:<view a>,<view m>,<view b>:<y0>,<x0>", views
numbered from 1), ``norm/lo`` and ``norm/hi`` (the robust intensity range of the
two input images, image units), ``angles`` (3 floats, degrees) and ``series``
(int64 index into the manifest's series).

Writer: :func:`encode_example` (one record), :func:`shard_names` and
:func:`write_manifest`; reader: :func:`decode_example`, :func:`read_manifest`,
:func:`shard_paths`.  Building the database (triplets, patches, split) is
``engine/train/data.py``; TensorFlow is imported inside the functions that need
it, so importing this module does not import it (but the Scipion layer has no
use for it and does not import it).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence

import numpy as np

from .. import InputError

#: The one pixel format of the records.
RAW_FLOAT32 = "raw_float32"
#: The manifest's file name in the database folder.
MANIFEST = "database.json"


def shard_names(prefix: str, n: int) -> List[str]:
    """File names of the ``n`` shards of a split: ``<prefix>-00000-of-0000n.tfrecord`` ...
    (``prefix`` 'train' or 'val')."""
    return [f"{prefix}-{k:05d}-of-{n:05d}.tfrecord" for k in range(n)]


def encode_example(frames: Sequence[np.ndarray], path: str, lo: float, hi: float,
                   angles: Sequence[float] = (0.0, 0.0, 0.0), series: int = 0) -> bytes:
    """Serialise one triplet patch (frame_0, frame_1 = middle, frame_2), each
    (h, w) float32 in image units, as a tf.train.Example (module doc).

    ``path``: record label (module doc); ``lo``, ``hi``: the normalisation range
    of the two inputs (image units); ``angles``: the three tilt angles
    (degrees); ``series``: index into the manifest's series.
    Returns the serialised bytes.

    Raises:
        ValueError: when a frame is not 2-D.
    """
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    def f(vs):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(x) for x in vs]))

    feats = {"path": b(path.encode()), "norm/lo": f([lo]), "norm/hi": f([hi]),
             "angles": f(angles), "series": i(series)}
    for k, img in enumerate(frames):
        img = np.ascontiguousarray(img, dtype="<f4")
        if img.ndim != 2:
            raise ValueError(f"frame {k}: expected a (h, w) image, got shape {img.shape}")
        feats[f"frame_{k}/encoded"] = b(img.tobytes())
        feats[f"frame_{k}/format"] = b(RAW_FLOAT32.encode())
        feats[f"frame_{k}/height"] = i(img.shape[0])
        feats[f"frame_{k}/width"] = i(img.shape[1])
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def _feature_spec():
    import tensorflow as tf
    spec = {"path": tf.io.FixedLenFeature([], tf.string),
            "norm/lo": tf.io.FixedLenFeature([1], tf.float32),
            "norm/hi": tf.io.FixedLenFeature([1], tf.float32),
            "angles": tf.io.FixedLenFeature([3], tf.float32),
            "series": tf.io.FixedLenFeature([], tf.int64)}
    for k in range(3):
        spec[f"frame_{k}/encoded"] = tf.io.FixedLenFeature([], tf.string)
        spec[f"frame_{k}/format"] = tf.io.FixedLenFeature([], tf.string)
        spec[f"frame_{k}/height"] = tf.io.FixedLenFeature([], tf.int64)
        spec[f"frame_{k}/width"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def decode_example(serialized) -> Dict[str, object]:
    """One serialised record (a scalar tf.string tensor; usable in tf.data map
    functions) -> dict of tensors: 'frames' (a list of the three (h, w, 1) float32
    frames in image units, the middle one second), 'path' (tf.string), 'lo', 'hi'
    (float32 scalars, image units), 'angles' (3,) float32 degrees, 'series' int64.

    Raises:
        tf.errors.InvalidArgumentError: (when the dataset is iterated) a record
            that lacks a feature of the layout.
    """
    import tensorflow as tf
    ex = tf.io.parse_single_example(serialized, _feature_spec())
    frames = []
    for k in range(3):
        h = tf.cast(ex[f"frame_{k}/height"], tf.int32)
        w = tf.cast(ex[f"frame_{k}/width"], tf.int32)
        frames.append(tf.reshape(tf.io.decode_raw(ex[f"frame_{k}/encoded"], tf.float32, little_endian=True),
                                 tf.stack([h, w, 1])))
    return {"frames": frames, "path": ex["path"], "lo": ex["norm/lo"][0], "hi": ex["norm/hi"][0],
            "angles": ex["angles"], "series": ex["series"]}


def write_manifest(folder: str, manifest: dict) -> None:
    """Write ``manifest`` (JSON-safe dict) as the folder's database.json (indented).

    Raises:
        OSError: when it cannot be written.
    """
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)


def read_manifest(folder: str) -> dict:
    """The manifest (database.json) of a training database folder.

    Raises:
        InputError: when the folder has no database.json.
        json.JSONDecodeError: when it is not JSON.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
        raise InputError(f"{folder}: not a training database (no {MANIFEST}); build one with "
                         "'cryotiger train' or build_database()")
    with open(path) as f:
        return json.load(f)


def shard_paths(folder: str, split: str = "train") -> List[str]:
    """Paths of the TFRecord shards of ``split`` ('train' or 'val'); [] when the
    split has no record.

    Raises:
        InputError: when ``folder`` is not a training database (:func:`read_manifest`).
    """
    man = read_manifest(folder)
    return [os.path.join(folder, n) for n in man["shards"][split]] if man["counts"].get(split) else []
