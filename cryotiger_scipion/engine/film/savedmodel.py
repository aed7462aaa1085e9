"""SavedModel I/O with the published FILM interface, and weight import by name.

Interface (what we write and what we read)::

    loaded = tf.saved_model.load(DIR)
    out = loaded({'x0': (B,H,W,3) float32, 'x1': (B,H,W,3) float32,
                  'time': (B,1) float32}, training=False)
    out['image']  # (B,H,W,3) float32, values ~[0, 1]

H and W must be multiples of 64 (``config.PAD_MULTIPLE``): the caller pads
(pad//2 before, the rest after) and crops back (``tiling.pad_to_multiple``).
``time`` is ignored (t = 0.5).  Our exports also return the auxiliary keys
x0_warped, x1_warped, forward/backward_flow_pyramid and
forward/backward_residual_flow_pyramid, have a 'serving_default' signature
(x0, x1, time -> image), and record the network options in
``cryotiger_film.json`` beside saved_model.pb.

Accepted folders: DIR/saved_model.pb, DIR/saved_model/saved_model.pb and
FILM's download layout DIR/film_net/<Style|L1|VGG>/saved_model (Style first).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from .. import InputError
from .config import CONFIG_FILE, PAD_MULTIPLE, FilmConfig
from .network import FilmNet

PREFIXES = ("feat_net/", "predict_flow/", "fusion/")
_NESTED = ("film_net/Style/saved_model", "film_net/L1/saved_model", "film_net/VGG/saved_model",
           "saved_model", "Style/saved_model", "L1/saved_model", "VGG/saved_model")
_HELP = ("give a FILM SavedModel folder (it holds saved_model.pb and variables/): the cryoTIGER "
         "model or FILM's pre-trained Vimeo-90K model (film_net/Style/saved_model), a model "
         "trained with 'cryotiger train', or a random one from 'cryotiger model init --output DIR'; "
         "the published models come from the cryoTIGER authors' public share "
         "(https://oc.biophys.mpg.de/owncloud/s/MFi6Q7rCFYLAqFT) and install with "
         "'cryotiger model download cryotiger|vimeo --output DIR'")


# -- padding: engine/film/tiling.py (numpy only); the names stay importable here ------
from .tiling import crop, pad_amounts, pad_to_multiple  # noqa: E402,F401


# -- export -----------------------------------------------------------------------------
class _Exported(tf.Module):
    """What we save: the network plus a traced call with the published signature."""

    def __init__(self, net: FilmNet):
        super().__init__(name="film")
        self.net = net
        self.all_variables = list(net.variables)

    @tf.function
    def __call__(self, inputs, training=False):
        return self.net(inputs["x0"], inputs["x1"], aux=True, time=inputs["time"])

    @tf.function
    def serve(self, x0, x1, time):
        return {"image": self.net(x0, x1, time=time)}


def _specs():
    img = tf.TensorSpec([None, None, None, 3], tf.float32)
    return img, tf.TensorSpec([None, 1], tf.float32)


def check_export_folder(output_dir: str, create_parent: bool = True) -> str:
    """Absolute ``output_dir`` if a model may be written there (new, empty, or an
    earlier SavedModel to replace); with ``create_parent`` its parent is created
    (without it: a check before any work, with no side effect).

    Raises:
        InputError: when ``output_dir`` is a file, or a non-empty folder without
            saved_model.pb (never overwritten).
        OSError: when the parent folder cannot be created.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InputError(f"{output_dir}: exists and is not a folder; choose another --output")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and \
            not os.path.exists(os.path.join(output_dir, "saved_model.pb")):
        raise InputError(f"{output_dir}: folder exists, is not empty and holds no SavedModel; "
                         "choose a new or empty folder")
    if create_parent:
        os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    return output_dir


def export_savedmodel(net: FilmNet, output_dir: str) -> str:
    """Write ``net`` as a SavedModel with the published interface to ``output_dir``
    (atomically: a temporary folder beside it is renamed into place; an earlier
    SavedModel there is replaced).  The folder also gets ``CONFIG_FILE`` with
    ``net.config``.  Returns the absolute path.

    Raises:
        InputError: when ``output_dir`` may not be written (``check_export_folder``).
        Exception: whatever TensorFlow or the file system raise while saving
            passes through; the temporary folder is removed and an earlier model
            at ``output_dir`` is left as it was.
    """
    output_dir = check_export_folder(output_dir)
    parent = os.path.dirname(output_dir)
    module = _Exported(net)
    img, tim = _specs()
    inputs = {"x0": img, "x1": img, "time": tim}
    module.__call__.get_concrete_function(inputs, training=False)
    module.__call__.get_concrete_function(inputs, training=True)
    serving = module.serve.get_concrete_function(img, img, tim)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.", suffix=".part", dir=parent)
    try:
        tf.saved_model.save(module, tmp, signatures={"serving_default": serving})
        net.config.save(os.path.join(tmp, CONFIG_FILE))
        os.chmod(tmp, 0o755)
        if os.path.isdir(output_dir):
            from ..outputs import temp_name
            old = temp_name(output_dir, "old")     # hidden; cleaned by the next run after a kill
            os.replace(output_dir, old)
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


# -- loading ----------------------------------------------------------------------------
def find_saved_model_dir(path: str) -> str:
    """The folder holding saved_model.pb for a user-given model folder: ``path``
    itself or one of the nested layouts (FILM's film_net/<Style|L1|VGG>/saved_model,
    Style first).

    Raises:
        InputError: when ``path`` is empty, missing or a file, when no
            saved_model.pb is found, or when the one found has no variables/ folder.
    """
    if not path:
        raise InputError(f"no FILM model folder given; {_HELP}")
    if not os.path.exists(path):
        raise InputError(f"FILM model folder '{path}' does not exist; {_HELP}")
    if not os.path.isdir(path):
        raise InputError(f"FILM model '{path}' is a file, not a folder; {_HELP}")
    candidates = [path] + [os.path.join(path, n) for n in _NESTED]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "saved_model.pb")):
            if not os.path.isdir(os.path.join(c, "variables")):
                raise InputError(f"FILM model folder '{c}' has saved_model.pb but no variables/ "
                                 "folder (incomplete copy?); copy the whole SavedModel folder")
            return c
    raise InputError(f"'{path}' holds no saved_model.pb (looked in it and in "
                     f"{', '.join(_NESTED)}); {_HELP}")


def load_savedmodel(path: str):
    """``tf.saved_model.load`` of a FILM model folder (any accepted layout).
    Returns (loaded object, the SavedModel folder).

    Raises:
        InputError: when no SavedModel is found (``find_saved_model_dir``), when
            TensorFlow cannot load it (the cause is named), or when the loaded
            object is not callable (not a FILM model).
    """
    folder = find_saved_model_dir(path)
    try:
        loaded = tf.saved_model.load(folder)
    except Exception as exc:  # corrupt or foreign files: a user problem, say which
        raise InputError(f"FILM model folder '{folder}' could not be loaded as a TensorFlow "
                         f"SavedModel ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); "
                         f"{_HELP}") from exc
    if not callable(loaded):
        raise InputError(f"'{folder}' is a SavedModel but not callable as "
                         "model({'x0','x1','time'}); it is not a FILM model")
    return loaded, folder


def collect_variables(loaded) -> List[tf.Variable]:
    """All variables of a loaded SavedModel: ``keras_api.variables`` when present
    (published models), else ``all_variables`` (ours), else a walk over attributes."""
    keras_api = getattr(loaded, "keras_api", None)
    if keras_api is not None and getattr(keras_api, "variables", None):
        return list(keras_api.variables)
    if getattr(loaded, "all_variables", None):
        return list(loaded.all_variables)
    found, seen = [], set()

    def walk(obj, depth):
        if depth > 8 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, tf.Variable):
            found.append(obj)
            return
        if isinstance(obj, (list, tuple)):
            for o in obj:
                walk(o, depth + 1)
        elif isinstance(obj, dict):
            for o in obj.values():
                walk(o, depth + 1)
        elif hasattr(obj, "__dict__") and not callable(getattr(obj, "numpy", None)):
            for k, o in vars(obj).items():
                if not k.startswith("__"):
                    walk(o, depth + 1)

    walk(loaded, 0)
    return found


_FEAT_RE = re.compile(r"^feat_net/(?:.*/)?cfeat_conv_(\d+)/(kernel|bias)$")
_FUSION_RE = re.compile(r"^fusion/(?:.*/)?conv2d(?:_(\d+))?/(kernel|bias)$")


def canonical_name(name: str) -> Optional[str]:
    """The native name of a FILM variable, whatever the export around it.

    'film_net/fusion/conv2d_3/kernel:0' -> 'fusion/conv2d_3/kernel';
    'feat_net/cfeat_conv_2/bias' (cryotiger exports before the published layout
    was known) and 'feat_net/sub_extractor/cfeat_conv_2/bias' (the published
    layout) -> 'feat_net/sub_extractor/cfeat_conv_2/bias'.  None if not FILM.
    Fusion numbers are kept as they are (see :func:`fusion_order`).
    """
    name = name.split(":")[0]
    best = None
    for p in PREFIXES:
        i = name.find(p)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, name[i:])
    if best is None:
        return None
    key = best[1]
    m = _FEAT_RE.match(key)
    if m:
        return f"feat_net/sub_extractor/cfeat_conv_{m.group(1)}/{m.group(2)}"
    return key


def _weights_by_name(variables) -> Dict[str, np.ndarray]:
    """{canonical name: array}, in the order the variables are listed."""
    out = {}
    for v in variables:
        key = canonical_name(v.name)
        if key is not None:
            out[key] = v.numpy()
    return out


def _natural(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def fusion_order(names) -> List[str]:
    """Fusion convolution prefixes ('fusion/conv2d_7') in Keras creation order.

    Keras names automatic layers per process: the first Conv2D is 'conv2d', the
    next 'conv2d_1', ...; a model built after other layers starts at an offset
    ('conv2d_5' ... 'conv2d_17').  So the number gives the creation ORDER, never
    the role: sort by it ('conv2d' = 0) and match by position and shape.
    """
    layers = {}
    for n in names:
        m = _FUSION_RE.match(n)
        if m:
            prefix = n.rsplit("/", 1)[0]
            layers[prefix] = int(m.group(1) or 0)
    return sorted(layers, key=lambda p: (layers[p], p))


def infer_config(weights: Dict[str, np.ndarray], pyramid_levels: int = 7) -> FilmConfig:
    """Network options from variable names and shapes.  ``pyramid_levels`` cannot be
    seen in the weights (coarse levels share one estimator): 7 as published.

    ``weights``: {canonical name (``canonical_name``): array}.  The fusion
    options (upsampling, symmetric flows, symmetries, time) are not visible in
    the weights either: the published defaults are returned.

    Raises:
        InputError: when the variables do not describe a FILM network (names
            missing, or options that fail ``FilmConfig.validate``).
    """
    try:
        feat = [k for k in weights if k.startswith("feat_net/") and k.endswith("/kernel")]
        filters = int(weights["feat_net/sub_extractor/cfeat_conv_0/kernel"].shape[-1])
        sub_levels = len(feat) // 2
        pred = {}
        for k in weights:
            m = re.match(r"predict_flow/flow_predictor_(\w+)/conv_(\d+)/kernel$", k)
            if m:
                pred.setdefault(m.group(1), []).append(int(m.group(2)))
        specialized = sorted(int(p) for p in pred if p.isdigit())
        order = [str(i) for i in specialized] + ["shared"]
        flow_convs = [len(pred[p]) - 2 for p in order]
        flow_filters = [int(weights[f"predict_flow/flow_predictor_{p}/conv_0/kernel"].shape[-1]) for p in order]
        n_fusion = len(fusion_order(weights))
        cfg = FilmConfig(pyramid_levels=pyramid_levels, fusion_pyramid_levels=(n_fusion - 1) // 3 + 1,
                         specialized_levels=len(specialized), sub_levels=sub_levels,
                         flow_convs=flow_convs, flow_filters=flow_filters, filters=filters)
        return cfg.validate()
    except (KeyError, IndexError, InputError) as exc:
        raise InputError(f"the model's variables do not describe a FILM network ({exc}); "
                         "expected feat_net/[sub_extractor/]cfeat_conv_k, "
                         "predict_flow/flow_predictor_*/conv_k and fusion/conv2d* variables") from exc


def _fusion_plan(mine: Dict[str, tf.Variable], weights: Dict[str, np.ndarray]) -> Dict[str, str]:
    """{my fusion variable: their variable}: the i-th convolution I create takes
    the i-th they created (:func:`fusion_order`); if the shapes disagree in that
    order, the order in which the model LISTS its variables is tried.  {} when
    neither fits (the caller reports what is missing)."""
    my_layers = fusion_order(mine)          # ours are numbered from 0 in creation order
    listed = []
    for n in weights:                       # listing order of the SavedModel
        p = n.rsplit("/", 1)[0]
        if _FUSION_RE.match(n) and p not in listed:
            listed.append(p)
    for theirs in (fusion_order(weights), listed):
        if len(theirs) != len(my_layers):
            continue
        plan = {}
        for a, b in zip(my_layers, theirs):
            for part in ("kernel", "bias"):
                ka, kb = f"{a}/{part}", f"{b}/{part}"
                if kb not in weights or tuple(weights[kb].shape) != tuple(mine[ka].shape):
                    plan = None
                    break
                plan[ka] = kb
            if plan is None:
                break
        if plan is not None:
            return plan
    return {}


def import_weights(net: FilmNet, weights) -> int:
    """Copy weights into ``net``: feature and flow variables by name, fusion
    convolutions by creation order and shape.

    ``weights``: {name: array} or a list of tf.Variables (names may carry an outer
    prefix and ':0'; 'feat_net/cfeat_conv_k' and the published
    'feat_net/sub_extractor/cfeat_conv_k' are the same variable).  The fusion
    convolutions are Keras' automatic 'conv2d[_N]' layers, whose numbers depend
    on what the exporting process built before (an offset), so they are
    matched by creation order (:func:`fusion_order`) and shape, never by number.
    Returns the number of variables assigned (all of the network's, or none).

    Raises:
        InputError: naming what is mismatched (shapes) or missing; ``net`` is
            left unchanged then.
    """
    if not isinstance(weights, dict):
        weights = _weights_by_name(weights)
    else:
        weights = {canonical_name(k) or k: np.asarray(v) for k, v in weights.items()}
    mine = net.named_variables()
    plan = {n: n for n in mine if not n.startswith("fusion/") and n in weights}
    fusion_mine = [n for n in mine if n.startswith("fusion/")]
    plan.update(_fusion_plan({n: mine[n] for n in fusion_mine}, weights))
    bad = [f"{n}: model {weights[plan[n]].shape} vs network {tuple(mine[n].shape)}"
           for n in plan if tuple(weights[plan[n]].shape) != tuple(mine[n].shape)]
    n_theirs, n_mine = len(fusion_order(weights)), len(fusion_order(fusion_mine))
    if fusion_mine and not any(n in plan for n in fusion_mine) and n_theirs == n_mine:
        bad.append(f"{n_mine} fusion convolutions whose shapes do not fit in creation order")
    if bad:
        raise InputError("the model's weights do not fit the network (" + "; ".join(bad[:3]) +
                         "); give the FILM configuration the model was trained with")
    missing = [n for n in mine if n not in plan]
    if missing:
        extra = f" (the model has {n_theirs} fusion convolutions, the network {n_mine})" \
            if n_theirs != n_mine else ""
        raise InputError(f"the model lacks {len(missing)} of the network's variables (e.g. "
                         f"{', '.join(missing[:3])}){extra}; it is not a FILM model with this "
                         "configuration")
    for n, v in mine.items():
        v.assign(weights[plan[n]].astype(np.float32))
    return len(mine)


def read_config(folder: str) -> Optional[FilmConfig]:
    """The ``FilmConfig`` recorded in ``folder``/cryotiger_film.json (our exports),
    or None when the file is absent (published and foreign models).

    Raises:
        InputError: when the recorded options are invalid (``FilmConfig.load``).
        OSError, json.JSONDecodeError: when the file cannot be read or parsed.
    """
    path = os.path.join(folder, CONFIG_FILE)
    return FilmConfig.load(path) if os.path.isfile(path) else None


def load_for_inference(path: str):
    """(net, loaded, info): the native network with imported weights when the
    variables allow it (net not None), else the loaded SavedModel to call as is
    (loaded not None; float32 only), for FILM-interface models with other naming.

    info: as ``load_network``'s, or {'folder', 'config': None, 'source':
    'savedmodel', 'import_error': why the native import failed}.

    Raises:
        InputError: when ``path`` holds no loadable, callable SavedModel
            (``load_savedmodel``).
    """
    try:
        net, info = load_network(path)
        return net, None, info
    except InputError as exc:
        loaded, folder = load_savedmodel(path)   # a missing/broken folder raises again here
        return None, loaded, {"folder": folder, "config": None, "source": "savedmodel",
                              "import_error": str(exc)}


def load_network(path: str) -> Tuple[FilmNet, dict]:
    """Load a model folder and import its weights into a native ``FilmNet``.

    Returns (net, info) with info = {'folder', 'config', 'source': 'cryotiger'|'foreign'}.
    The configuration comes from cryotiger_film.json when present, else from the
    variables (published pyramid depth 7 assumed).

    Raises:
        InputError: when the folder holds no loadable SavedModel
            (``load_savedmodel``), has no FILM variables, its configuration
            cannot be read or inferred (``infer_config``), or its weights do not
            fit that configuration (``import_weights``).
    """
    loaded, folder = load_savedmodel(path)
    weights = _weights_by_name(collect_variables(loaded))
    if not weights:
        raise InputError(f"'{folder}': no FILM variables found (feat_net/, predict_flow/, fusion/); "
                         "it is not a FILM model")
    cfg = read_config(folder)
    source = "cryotiger" if cfg is not None else "foreign"
    if cfg is None:
        cfg = infer_config(weights)
    net = FilmNet(cfg)
    import_weights(net, weights)
    del loaded
    return net, {"folder": folder, "config": cfg, "source": source}


def count_parameters(path: str) -> Tuple[int, Optional[FilmConfig]]:
    """(number of FILM parameters, config if known) of a model folder.

    Without FILM-named variables: the count of all its variables and None.
    The config comes from cryotiger_film.json or, failing that, from the
    variables (None when they do not describe a FILM network).

    Raises:
        InputError: when the folder holds no loadable SavedModel
            (``load_savedmodel``) or its cryotiger_film.json is invalid.
    """
    loaded, folder = load_savedmodel(path)
    weights = _weights_by_name(collect_variables(loaded))
    if not weights:
        total = int(sum(np.prod(v.shape) for v in collect_variables(loaded)))
        return total, None
    cfg = read_config(folder)
    if cfg is None:
        try:
            cfg = infer_config(weights)
        except InputError:
            cfg = None
    return int(sum(np.prod(a.shape) for a in weights.values())), cfg
