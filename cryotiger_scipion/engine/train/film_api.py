"""The few calls the trainer makes into the FILM engine (engine/film, issue 3):
configuration, building, weight import for fine-tuning, SavedModel export."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Tuple

from .. import InputError

TRAIN_INFO = "cryotiger_train.json"


def resolve_config(config):
    """'small' | 'published' | path of a FilmConfig .json | dict | FilmConfig -> FilmConfig.

    The result is validated (``FilmConfig.validate``).

    Raises:
        InputError: when a .json path does not exist, a name is not 'small' or
            'published', or the options are invalid.
        OSError, json.JSONDecodeError: when an existing .json cannot be read.
    """
    from ..film.config import FilmConfig
    if isinstance(config, FilmConfig):
        return config.validate()
    if isinstance(config, str) and config.endswith(".json"):
        if not os.path.exists(config):
            raise InputError(f"FILM configuration file '{config}' not found; give small, published "
                             "or an existing .json")
        return FilmConfig.load(config)
    if isinstance(config, dict):
        return FilmConfig.from_json(config)
    return FilmConfig.named(str(config)).validate()


ALIGNMENT_KEYS = ("fusion_upsampling", "symmetric_flow", "average_symmetries")


def training_config(config, init=None):
    """The configuration a training builds: ``resolve_config(config)``, with the
    alignment fixes (``FilmConfig.aligned``: centred fusion upsampling,
    symmetric flows; issue 10 item 2) for a network trained from scratch.
    Fine-tuning (``init``: a model folder) keeps the alignment options of the
    model it starts from (the published ones for a foreign model); a .json or
    dict that sets the alignment keys is taken as it is.

    Raises:
        InputError: as ``resolve_config``, or when ``init`` holds no SavedModel
            (``film.savedmodel.find_saved_model_dir``) or an invalid
            cryotiger_film.json.
    """
    cfg = resolve_config(config)
    if init:
        from dataclasses import replace
        from ..film.savedmodel import find_saved_model_dir, read_config
        theirs = read_config(find_saved_model_dir(init))   # None for foreign models: published alignment
        if theirs is not None:
            return replace(cfg, **{k: getattr(theirs, k) for k in ALIGNMENT_KEYS})
        return cfg
    explicit = config if isinstance(config, dict) else None
    if isinstance(config, str) and config.endswith(".json"):
        with open(config) as f:
            explicit = json.load(f)
    if explicit is not None and any(k in explicit for k in ALIGNMENT_KEYS):
        return cfg
    return cfg.aligned()


def size_multiple(cfg) -> int:
    """Patch sizes must be multiples of this for the network's image pyramid."""
    return 2 ** (cfg.pyramid_levels - 1)


def build(cfg, seed: int = 0):
    """A fresh ``FilmNet`` of ``cfg`` (a FilmConfig) with weights drawn from ``seed``.

    Raises:
        InputError: for an invalid ``cfg`` (``FilmConfig.validate``).
    """
    from ..film.network import build_film
    return build_film(cfg, seed=seed)


def init_from_model(net, model_dir: str) -> Tuple[int, int]:
    """Start ``net`` from a FILM SavedModel folder (published, ours, or an
    earlier training; ``train --init``): its weights are copied into ``net``
    by ``film.savedmodel.import_weights`` (the one weight importer: features
    and flows by name, fusion by creation order and shape).  Returns
    (assigned, total) variable counts.

    Raises:
        InputError: when the folder cannot be loaded as a native FILM network
            (``film.savedmodel.load_network``), or its FILM configuration
            differs from ``net``'s.
    """
    from ..film.savedmodel import import_weights, load_network
    src, info = load_network(model_dir)
    if src.config != net.config:
        raise InputError(f"--init {model_dir}: its FILM configuration ({src.config.describe()}) differs "
                         f"from the one to train ({net.config.describe()}); give the model's "
                         "configuration with --config (published for the published models)")
    n = import_weights(net, {k: v.numpy() for k, v in src.named_variables().items()})
    return n, len(net.named_variables())


def export(net, output: str, info: dict) -> str:
    """SavedModel with the published FILM interface (engine/film export) plus
    ``cryotiger_train.json`` (``info``, JSON-ready), placed at ``output``
    atomically (an earlier model there is replaced).  Returns the absolute path.

    Raises:
        InputError: when ``output`` may not be written
            (``film.savedmodel.check_export_folder``).
        OSError: from the file system; the temporary folder is removed.
    """
    from ..film.savedmodel import check_export_folder, export_savedmodel
    output = check_export_folder(output)
    parent = os.path.dirname(output)
    tmp_parent = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", suffix=".export", dir=parent)
    try:
        tmp = export_savedmodel(net, os.path.join(tmp_parent, "model"))
        with open(os.path.join(tmp, TRAIN_INFO), "w") as f:
            json.dump(info, f, indent=1)
        if os.path.isdir(output):
            old = os.path.join(tmp_parent, "old")
            os.replace(output, old)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)
    return output
