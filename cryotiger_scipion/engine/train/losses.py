"""Training losses: L1 (default), VGG-19 perceptual and Gram ("style") losses.

The VGG losses need a weights file given by the user (ImageNet VGG-19 weights
cannot be downloaded on every machine), so they are optional.  The three
losses are those FILM trains with (Reda et al., ECCV 2022): L1, the VGG
perceptual loss (Johnson et al., ECCV 2016; VGG-19: Simonyan & Zisserman,
ICLR 2015) and the Gram-matrix style loss (Gatys et al., CVPR 2016):

* ``.h5`` / ``.weights.h5``: weights for ``keras.applications.VGG19``
  without its top (e.g. Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``);
* ``.keras``: a whole saved Keras model whose layers include the feature
  layers named in ``VGG_LAYERS`` (any network with that layer interface works;
  the tests use a tiny stand-in).

Images are (B, H, W, 3) float32 in about [0, 1].  They are fed to the feature
network the way VGG-19 expects (Caffe convention: x255, RGB->BGR, minus the
ImageNet mean).
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

from .. import InputError

#: The five feature layers (conv1_2 ... conv5_2 in FILM's notation), Keras names.
VGG_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2", "block5_conv2")
_BGR_MEAN = (103.939, 116.779, 123.68)


def l1_loss(pred, target):
    """Mean absolute difference of two tensors of one shape (e.g. (B, H, W, 3)):
    a scalar tensor in the images' units."""
    import tensorflow as tf
    return tf.reduce_mean(tf.abs(pred - target))


def load_feature_network(path: str, layers: Sequence[str] = VGG_LAYERS):
    """A Keras model mapping (B, H, W, 3) (preprocessed) to the list of the
    named layers' activations, read from ``path`` (see module doc); frozen.

    Raises:
        InputError: when ``path`` is empty or missing, Keras cannot read it, or
            the network lacks one of ``layers``.
    """
    import keras

    if not path or not os.path.exists(path):
        raise InputError(f"VGG weights file '{path}' not found; give the path of VGG-19 weights "
                         "(.h5, no top) or a saved .keras feature network, or leave --vgg-weights out")
    try:
        if path.endswith(".keras"):
            base = keras.models.load_model(path, compile=False)
        else:
            base = keras.applications.VGG19(include_top=False, weights=path, input_shape=(None, None, 3))
    except Exception as exc:  # noqa: BLE001 - any reader error is the user's file
        raise InputError(f"{path}: cannot read VGG weights ({exc}); give Keras VGG-19 weights "
                         "without the top (.h5) or a saved .keras model") from exc
    names = [l.name for l in base.layers]
    missing = [l for l in layers if l not in names]
    if missing:
        raise InputError(f"{path}: the network has no layer(s) {', '.join(missing)}; the VGG losses "
                         f"need layers named {', '.join(layers)}")
    model = keras.Model(base.inputs, [base.get_layer(l).output for l in layers])
    model.trainable = False
    return model


def _preprocess(x):
    import tensorflow as tf
    x = tf.reverse(x * 255.0, axis=[-1]) - tf.constant(_BGR_MEAN, tf.float32)
    return x


def gram(f):
    """Gram matrix of features (B, H, W, C) -> (B, C, C), normalised by H*W."""
    import tensorflow as tf
    shape = tf.shape(f)
    flat = tf.reshape(f, [shape[0], -1, shape[-1]])
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(shape[1] * shape[2], f.dtype)


class Losses:
    """Weighted sum of L1, perceptual (L1 of VGG features, mean over layers)
    and style (mean squared difference of the features' Gram matrices).

    ``l1_weight``, ``vgg_weight``, ``style_weight``: weights of the three
    terms; ``vgg_weights``: path of the feature network (module doc; '' turns
    the VGG and style terms off whatever their weights); ``layers``: the
    feature layers.

    ``__call__(pred, target)``, both (B, H, W, 3) float32 in about [0, 1],
    returns (total, {name: value}) as scalar tensors (names: ``names()``).

    Raises:
        InputError: when ``style_weight`` is set without ``vgg_weights``, or
            the feature network cannot be loaded (``load_feature_network``).
    """

    def __init__(self, l1_weight: float = 1.0, vgg_weights: str = "", vgg_weight: float = 1.0,
                 style_weight: float = 0.0, layers: Sequence[str] = VGG_LAYERS):
        self.l1_weight = float(l1_weight)
        self.vgg_weight = float(vgg_weight) if vgg_weights else 0.0
        self.style_weight = float(style_weight) if vgg_weights else 0.0
        if (style_weight and not vgg_weights):
            raise InputError("--style-weight needs --vgg-weights FILE (the style loss uses VGG features)")
        self.features = load_feature_network(vgg_weights, layers) if vgg_weights else None

    def names(self) -> List[str]:
        """The loss terms reported: ['l1'], plus 'vgg' and 'style' with a feature network."""
        out = ["l1"]
        if self.features is not None:
            out += ["vgg", "style"]
        return out

    def __call__(self, pred, target):
        import tensorflow as tf
        parts: Dict[str, object] = {"l1": l1_loss(pred, target)}
        total = self.l1_weight * parts["l1"]
        if self.features is not None:
            fp = self.features(_preprocess(pred), training=False)
            ft = self.features(_preprocess(target), training=False)
            fp = fp if isinstance(fp, (list, tuple)) else [fp]
            ft = ft if isinstance(ft, (list, tuple)) else [ft]
            vgg = tf.add_n([tf.reduce_mean(tf.abs(a - b)) for a, b in zip(fp, ft)]) / len(fp)
            style = tf.add_n([tf.reduce_mean(tf.square(gram(a) - gram(b))) for a, b in zip(fp, ft)]) / len(fp)
            parts["vgg"], parts["style"] = vgg, style
            total = total + self.vgg_weight * vgg + self.style_weight * style
        return total, parts


def make_standin_vgg(path: str, filters: Sequence[int] = (4, 4, 4, 4, 4), seed: int = 0) -> str:
    """Save a tiny network with VGG-19's feature-layer interface (layers
    block1_conv2 ... block5_conv2, 2x2 max pooling between blocks) as a
    ``.keras`` file; for tests and demos of the VGG losses only."""
    import keras
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, 3))
    for b, f in enumerate(filters, start=1):
        if b > 1:
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{b}_conv1")(x)
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{b}_conv2")(x)
    keras.Model(inp, x, name="vgg_standin").save(path)
    return path
