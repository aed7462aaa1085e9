"""FILM (Reda et al., ECCV 2022) in TensorFlow 2: native network, SavedModel I/O,
tiled inference and the ``film`` interpolator of ``cryotiger interpolate``.

Importing this package does not import TensorFlow; the names below are loaded
on first use.

Python API (used by training, issue 4)::

    from cryotiger_scipion.engine.film import FilmConfig, build_film, export_savedmodel, load_network

    cfg = FilmConfig.published()        # 34,436,667 parameters; FilmConfig.small() for tests
    net = build_film(cfg, seed=0)       # FilmNet, a tf.Module (no Keras)
    img = net(x0, x1)                   # (B,H,W,3) float32 in [0,1] -> (B,H,W,3) float32 mid-frame
                                        # H, W multiples of 64 (pad_to_multiple / crop)
    out = net(x0, x1, aux=True)         # dict: 'image', 'x0_warped', 'x1_warped', flow pyramids
    net.trainable_variables             # for tf.GradientTape
    net.named_variables()               # {'feat_net/sub_extractor/cfeat_conv_0/kernel': tf.Variable, ...}
    export_savedmodel(net, "DIR")       # published interface: loaded({'x0','x1','time'}, training=False)['image']
    net, info = load_network("DIR")     # any FILM/cryoTIGER SavedModel folder (also film_net/Style/saved_model)
    import_weights(net, variables_or_dict)   # features/flow by name, fusion by creation order + shape

Variable names match the published models: ``feat_net/sub_extractor/cfeat_conv_{k}/{kernel,bias}``,
``predict_flow/flow_predictor_{0,1,2,shared}/conv_{k}/{kernel,bias}``,
``fusion/conv2d[_N]/{kernel,bias}`` (level 0's 2x2, 3x3, 3x3 first, output conv last;
Keras' numbers may start at an offset in other exports: docs/film.md, "Import rule").

Modules: config (options), layers (named conv), feature_extractor, flow_estimator,
warp, fusion, network (wiring), savedmodel (export/load/import), tiling
(overlapping tiles, raised-cosine blending), inference (FilmInterpolator, the inference
driver of ``--method film``; FILM's own "interpolator" is the network, network.py).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "FilmConfig": "config", "PAD_MULTIPLE": "config",
    "FilmNet": "network", "build_film": "network",
    "export_savedmodel": "savedmodel", "load_savedmodel": "savedmodel", "load_network": "savedmodel",
    "import_weights": "savedmodel", "find_saved_model_dir": "savedmodel", "count_parameters": "savedmodel",
    "pad_to_multiple": "tiling", "crop": "tiling",
    "FilmInterpolator": "inference",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
