"""Test helper: SavedModels laid out like the PUBLISHED FILM exports (not like ours).

What FILM's own ``build_saved_model_cli`` writes (../shared/docs/film-architecture.md):
variables reachable as ``loaded.keras_api.variables`` (no ``all_variables``,
no ``cryotiger_film.json``), named ``feat_net/sub_extractor/cfeat_conv_k``,
``predict_flow/flow_predictor_{0,1,2,shared}/conv_k`` and Keras' automatic
``fusion/conv2d[_N]`` whose numbers may start at an offset; called as
``model({'x0', 'x1', 'time'}, training=False)['image']`` and with a
'serving_default' signature (x0, x1, time -> image).

The computation is our network's (the point is the LAYOUT the import must
read); its variables are replaced by variables carrying the published names.
"""
import re

import numpy as np
import tensorflow as tf

from cryotiger_scipion.engine.film.network import FilmNet

_FUSION = re.compile(r"^fusion/conv2d(?:_(\d+))?/(kernel|bias)$")


def offset_fusion_name(name: str, offset: int) -> str:
    """'fusion/conv2d/kernel' -> 'fusion/conv2d_{offset}/kernel'; 'fusion/conv2d_3/bias'
    -> 'fusion/conv2d_{3 + offset}/bias' (as Keras numbers layers built after others)."""
    m = _FUSION.match(name)
    if not m:
        return name
    k = int(m.group(1) or 0) + offset
    return f"fusion/conv2d{'' if k == 0 else f'_{k}'}/{m.group(2)}"


class _KerasApi(tf.__internal__.tracking.AutoTrackable):
    """Stands for the ``keras_api`` object of a Keras SavedModel: a ``variables`` list."""

    def __init__(self, variables):
        self.variables = list(variables)


class _Published(tf.Module):
    def __init__(self, net: FilmNet, variables):
        super().__init__(name="film_net")
        self._net = net
        self.keras_api = _KerasApi(variables)

    @tf.function
    def __call__(self, inputs, training=False):
        out = self._net(inputs["x0"], inputs["x1"], aux=True)
        return {"image": out["image"], "x0_warped": out["x0_warped"], "x1_warped": out["x1_warped"]}

    @tf.function
    def serve(self, x0, x1, time):
        return {"image": self._net(x0, x1)}


def convs(net: FilmNet):
    """Every Conv2D of ``net`` in creation order (feature, flow, fusion, output)."""
    out = list(net.feature_extractor.convs)
    for p in list(net.flow_estimator.predictors) + [net.flow_estimator.shared]:
        out.extend(p.convs)
    for level in net.fusion.levels:
        out.extend(level)
    out.append(net.fusion.output_conv)
    return out


def write_published_layout(net: FilmNet, folder: str, fusion_offset: int = 0) -> list:
    """Export ``net`` to ``folder`` with the published variable layout; fusion
    numbers shifted by ``fusion_offset``.  ``net`` keeps computing the same
    function (its variables are replaced by renamed copies).  Returns the
    variable names written, in listing order."""
    renamed = []
    for conv in convs(net):
        for attr in ("kernel", "bias"):
            old = getattr(conv, attr)
            name = offset_fusion_name(f"{conv.path}/{attr}", fusion_offset)
            new = tf.Variable(old.numpy(), name=name)
            setattr(conv, attr, new)
            renamed.append(new)
    module = _Published(net, renamed)
    img = tf.TensorSpec([None, None, None, 3], tf.float32)
    tim = tf.TensorSpec([None, 1], tf.float32)
    module.__call__.get_concrete_function({"x0": img, "x1": img, "time": tim}, training=False)
    serving = module.serve.get_concrete_function(img, img, tim)
    tf.saved_model.save(module, folder, signatures={"serving_default": serving})
    return [v.name.split(":")[0] for v in renamed]


def savedmodel_image(folder: str, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """The loaded SavedModel called as FILM's users call it."""
    loaded = tf.saved_model.load(folder)
    out = loaded({"x0": tf.constant(x0), "x1": tf.constant(x1),
                  "time": tf.fill([x0.shape[0], 1], 0.5)}, training=False)
    return out["image"].numpy()
