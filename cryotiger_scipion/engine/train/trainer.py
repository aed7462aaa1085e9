"""The FILM trainer: Adam with staircase exponential decay, checkpoints and
resume, validation PSNR/SSIM, a time budget, and SavedModel export.

Folders::

    WORKDIR/database/       training database (data.py), reused when unchanged
    WORKDIR/checkpoints/    tf.train checkpoints (weights, Adam state, step, data iterator)
    WORKDIR/state.json      what this work folder trains (config, database), to refuse mixing
    OUTPUT/                 the exported SavedModel (FILM interface) + cryotiger_train.json

Running the same training again with the same work folder resumes from the
last checkpoint (same weights, optimiser state and data position), until
``steps`` is reached.  ``minutes`` stops early on time, writes a checkpoint
and exports.  Images are (B, H, W, 3) float32, normalised per pair (data.py).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

from .. import CryoTigerError, InputError
from ..progress import Progress


@dataclass
class TrainConfig:
    """Options of one training (``cryotiger train``); the defaults follow FILM's
    published recipe (Adam, learning rate 1e-4 decayed by 0.464158 every 750k
    steps, batch 8) except the step count.

    Steps and intervals count optimiser steps; ``minutes`` is wall-clock time
    of this run; ``crop`` pixels (a multiple of the network's size multiple);
    loss weights as in ``losses.Losses``.  Checked by ``Trainer`` (steps and
    batch size >= 1).
    """
    steps: int = 10000                  # total optimiser steps (over all resumed runs)
    minutes: float = 0.0                # wall-clock budget of THIS run (0 = none); stops and exports
    batch_size: int = 8
    learning_rate: float = 1e-4
    decay_steps: int = 750000           # staircase: lr * decay_rate ** floor(step / decay_steps)
    decay_rate: float = 0.464158
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    checkpoint_every: int = 500
    val_every: int = 500
    val_batches: int = 8
    log_every: int = 10
    seed: int = 0
    crop: int = 0                       # random crop size (0 = whole patches)
    augment: bool = True
    l1_weight: float = 1.0
    vgg_weights: str = ""               # VGG-19 weights file (optional; enables the VGG losses)
    vgg_weight: float = 1.0
    style_weight: float = 0.0
    keep_checkpoints: int = 3
    deterministic: bool = False         # tf op determinism (bit-exact resume; slower)


def learning_rate_at(cfg: TrainConfig, step: int) -> float:
    """Staircase exponential decay of the learning rate at optimiser ``step``:
    learning_rate * decay_rate ** floor(step / decay_steps) (FILM's schedule)."""
    return cfg.learning_rate * cfg.decay_rate ** math.floor(step / max(1, cfg.decay_steps))


class Adam:
    """Adam on tf.Variables (slots are tf.Variables, so tf.train.Checkpoint
    saves them), with the staircase exponential learning-rate decay.

    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    Algorithm 1 with the bias correction folded into the step size (their
    Section 2: lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), epsilon added to
    sqrt(v) uncorrected).  ``variables``: the trainable variables; ``cfg``:
    learning rate, decay, beta1, beta2, epsilon.
    """

    def __init__(self, variables, cfg: TrainConfig):
        import tensorflow as tf
        self.cfg = cfg
        self.vars = list(variables)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]

    def learning_rate(self):
        """The learning rate at the current iteration (float32 scalar tensor;
        the same rule as ``learning_rate_at``)."""
        import tensorflow as tf
        c = self.cfg
        k = tf.floor(tf.cast(self.iterations, tf.float32) / float(max(1, c.decay_steps)))
        return c.learning_rate * tf.pow(tf.constant(c.decay_rate, tf.float32), k)

    def apply(self, grads):
        """One Adam update of every variable with ``grads`` (one per variable, in
        order; None skips a variable).  Increments ``iterations``; returns the
        learning rate used (scalar tensor)."""
        import tensorflow as tf
        c = self.cfg
        lr = self.learning_rate()
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        corr = tf.sqrt(1.0 - tf.pow(c.beta2, t)) / (1.0 - tf.pow(c.beta1, t))
        for var, g, m, v in zip(self.vars, grads, self.m, self.v):
            if g is None:
                continue
            m.assign(c.beta1 * m + (1.0 - c.beta1) * g)
            v.assign(c.beta2 * v + (1.0 - c.beta2) * tf.square(g))
            var.assign_sub(lr * corr * m / (tf.sqrt(v) + c.epsilon))
        return lr

    def checkpoint_items(self) -> dict:
        """The optimiser state for tf.train.Checkpoint: iterations, first and
        second moments."""
        return {"iterations": self.iterations, "m": self.m, "v": self.v}


def _set_threads(threads: int) -> None:
    import tensorflow as tf
    if threads and threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:
            pass  # TensorFlow already initialised: keep its setting


def evaluate(net, dataset, max_batches: int = 0) -> dict:
    """Mean PSNR and SSIM (max value 1, normalised units, 3 channels) of the
    network and of linear interpolation ((1 - t) x0 + t x1) against the
    middle frame over ``dataset`` (batches from data.make_dataset, images
    (B, h, w, 3) float32 in [0, 1]), at most ``max_batches`` batches (0: all).

    Returns {'psnr' (dB), 'ssim', 'linear_psnr', 'linear_ssim', 'l1', 'patches'}
    as means per patch ({} for an empty dataset); SSIM is left at 0 for
    patches smaller than 11 pixels (its window)."""
    import numpy as np
    import tensorflow as tf

    sums = {"psnr": 0.0, "ssim": 0.0, "linear_psnr": 0.0, "linear_ssim": 0.0, "l1": 0.0}
    n = 0
    for k, batch in enumerate(dataset):
        if max_batches and k >= max_batches:
            break
        t = tf.reshape(tf.cast(batch["time"], tf.float32), [-1, 1, 1, 1])
        pred = net(batch["x0"], batch["x1"], time=batch["time"])
        lin = (1.0 - t) * batch["x0"] + t * batch["x1"]
        y = batch["y"]
        b = int(y.shape[0])
        small = min(int(y.shape[1]), int(y.shape[2])) < 11
        for name, img in (("", pred), ("linear_", lin)):
            sums[name + "psnr"] += float(np.sum(tf.image.psnr(img, y, max_val=1.0).numpy()))
            if not small:
                sums[name + "ssim"] += float(np.sum(tf.image.ssim(img, y, max_val=1.0).numpy()))
        sums["l1"] += float(tf.reduce_mean(tf.abs(pred - y)).numpy()) * b
        n += b
    if n == 0:
        return {}
    return {k: v / n for k, v in sums.items()} | {"patches": n}


class Trainer:
    """Train a FILM network (``engine.film``) on a training database.

    ``config``: a ``FilmConfig`` (or 'small' / 'published' / a .json path).
    ``init``: a FILM SavedModel folder whose weights (matched by name) start
    a NEW training (fine-tuning); ignored when resuming from a checkpoint.
    ``database``: folder made by ``data.build_database``; ``workdir``: folder of
    the checkpoints and state.json; ``train``: a ``TrainConfig``;
    ``progress``: progress lines; ``threads``: TensorFlow CPU threads (0: its
    default); ``log``: callable taking each message line.

    Raises:
        InputError: when steps or batch size are below 1, the database cannot
            be read (``data.read_manifest``), the configuration or ``init``
            model is invalid (``film_api.training_config``), the patch or crop
            size is not a multiple of the network's size multiple, the VGG
            weights cannot be loaded (``losses.Losses``), or ``workdir`` holds
            checkpoints of a different training.
    """

    def __init__(self, database: str, workdir: str, config="small", train: Optional[TrainConfig] = None,
                 init: Optional[str] = None, progress: bool = True, threads: int = 0, log=None):
        from . import film_api
        from ..formats.training_db import read_manifest
        _set_threads(threads)
        import tensorflow as tf

        self.cfg = train or TrainConfig()
        if self.cfg.steps < 1:
            raise InputError(f"--steps {self.cfg.steps}: must be 1 or more")
        if self.cfg.batch_size < 1:
            raise InputError(f"--batch-size {self.cfg.batch_size}: must be 1 or more")
        if self.cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.database = database
        self.manifest = read_manifest(database)
        self.workdir = workdir
        # From scratch: the aligned network (issue 10 item 2); --init: the model's own.
        self.film_config = film_api.training_config(config, init)
        size = self.cfg.crop or self.manifest["patch_size"]
        mult = film_api.size_multiple(self.film_config)
        if size % mult:
            raise InputError(f"patch/crop size {size} is not a multiple of {mult}, which the FILM "
                             f"configuration needs; give --patch-size (or --crop) {max(mult, size // mult * mult)}")
        self.progress_enabled = progress
        self.log = log
        self.net = film_api.build(self.film_config, seed=self.cfg.seed)
        self.variables = list(self.net.trainable_variables)
        self.opt = Adam(self.variables, self.cfg)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        from .losses import Losses
        self.losses = Losses(self.cfg.l1_weight, self.cfg.vgg_weights, self.cfg.vgg_weight,
                             self.cfg.style_weight)
        self.train_ds = self._dataset("train")
        self.val_ds = None
        if self.manifest["counts"].get("val"):
            from .data import make_dataset
            self.val_ds = make_dataset(database, "val", batch_size=self.cfg.batch_size, shuffle=False,
                                       repeat=False, augment=False)
        self.iterator = iter(self.train_ds)
        self.ckpt = tf.train.Checkpoint(step=self.step, net=self.net, optimizer=self.opt.checkpoint_items(),
                                        iterator=self.iterator)
        self.ckpt_dir = os.path.join(workdir, "checkpoints")
        self.manager = tf.train.CheckpointManager(self.ckpt, self.ckpt_dir,
                                                  max_to_keep=max(1, self.cfg.keep_checkpoints))
        self.init = init
        self.history = []
        self.resumed_from = 0
        self._check_state()
        self._train_step = tf.function(self._step_fn, reduce_retracing=True)

    # -- setup -----------------------------------------------------------------
    def _dataset(self, split):
        from .data import make_dataset
        return make_dataset(self.database, split, batch_size=self.cfg.batch_size, shuffle=True,
                            repeat=True, augment=self.cfg.augment, seed=self.cfg.seed, crop=self.cfg.crop)

    def _state(self) -> dict:
        return {"film_config": self.film_config.to_json(), "database": self.manifest["request"],
                "batch_size": self.cfg.batch_size, "crop": self.cfg.crop, "seed": self.cfg.seed,
                "vgg": bool(self.cfg.vgg_weights)}

    def _check_state(self):
        path = os.path.join(self.workdir, "state.json")
        if self.manager.latest_checkpoint and os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
            if old != self._state():
                changed = sorted(k for k in old if old.get(k) != self._state().get(k))
                raise InputError(f"{self.workdir} holds checkpoints of a different training "
                                 f"(changed: {', '.join(changed)}); give another --workdir or "
                                 "--restart to discard them")

    def _say(self, prog, message):
        if self.log:
            self.log(message)
        prog.log(message)

    def _step_fn(self, x0, x1, y, time=None):
        import tensorflow as tf
        with tf.GradientTape() as tape:
            # time: the target's fraction t (used by time-conditioned networks only)
            pred = self.net.forward_once(x0, x1, time=time)   # one pass (the symmetry average is for inference)
            total, parts = self.losses(pred, y)
        grads = tape.gradient(total, self.variables)
        lr = self.opt.apply(grads)
        self.step.assign_add(1)
        return total, parts, lr

    def restore_or_init(self) -> str:
        """Restore the last checkpoint, or load ``init`` weights; returns what happened
        (one line).  A new training writes ``workdir``/state.json first.

        Raises:
            InputError: when ``init`` cannot be imported (``film_api.init_from_model``).
            AssertionError: when the checkpoint does not match the network
                (tf.train's ``assert_existing_objects_matched``).
        """
        from . import film_api
        latest = self.manager.latest_checkpoint
        if latest:
            self.ckpt.restore(latest).assert_existing_objects_matched()
            self.resumed_from = int(self.step.numpy())
            return f"resumed from {latest} at step {self.resumed_from}"
        os.makedirs(self.workdir, exist_ok=True)
        with open(os.path.join(self.workdir, "state.json"), "w") as f:
            json.dump(self._state(), f, indent=1)
        if self.init:
            n, total = film_api.init_from_model(self.net, self.init)
            return f"initialised {n}/{total} variables from {self.init}"
        return "new network (random initialisation)"

    # -- training --------------------------------------------------------------
    def validate(self) -> dict:
        """``evaluate`` on the validation split (at most ``val_batches``
        batches); {} without a validation split."""
        if self.val_ds is None:
            return {}
        return evaluate(self.net, self.val_ds, self.cfg.val_batches)

    def run(self, stop_after: Optional[int] = None) -> dict:
        """Train until ``cfg.steps`` (or the time budget, or ``stop_after`` steps in
        this run, which behaves like an interruption: checkpoint, no export).

        Returns a summary dict: 'step', 'start_step', 'stopped' ('steps',
        'time' or 'interrupted'), 'seconds', 'mean_loss_first' and
        'mean_loss_last' (means of the first / last 10 losses of this run),
        'losses' (per step), 'validation' (``evaluate``'s dict), 'history'
        (validations during the run) and 'what' (``restore_or_init``).

        Raises:
            CryoTigerError: when the loss becomes non-finite (a checkpoint is
                written first).
            InputError: from ``restore_or_init``.
        """
        import numpy as np

        t0 = time.monotonic()
        what = self.restore_or_init()
        start = int(self.step.numpy())
        total_steps = self.cfg.steps
        prog = Progress(max(0, total_steps - start), "train", unit="step", enabled=self.progress_enabled)
        self._say(prog, f"{what}; FILM {self.film_config.describe()}; {self.manifest['counts']['train']} "
                        f"training / {self.manifest['counts'].get('val', 0)} validation patches of "
                        f"{self.manifest['patch_size']} px; batch {self.cfg.batch_size}; "
                        f"losses {'+'.join(self.losses.names())}")
        budget = self.cfg.minutes * 60.0 if self.cfg.minutes and self.cfg.minutes > 0 else None
        # Time kept back for the final checkpoint, validation and export.
        reserve = min(60.0, 0.1 * budget) if budget else 0.0
        stopped = "steps"
        losses = []
        step_times = []
        last_log = start
        if budget is not None and budget - reserve <= time.monotonic() - t0:
            stopped = "time"
        while stopped != "time" and int(self.step.numpy()) < total_steps:
            if stop_after is not None and int(self.step.numpy()) - start >= stop_after:
                stopped = "interrupted"
                break
            ts = time.monotonic()
            batch = next(self.iterator)
            loss, parts, lr = self._train_step(batch["x0"], batch["x1"], batch["y"], batch["time"])
            loss = float(loss.numpy())
            if not np.isfinite(loss):
                self.manager.save(checkpoint_number=int(self.step.numpy()))
                raise CryoTigerError(f"training diverged at step {int(self.step.numpy())} (loss {loss}); "
                                     "lower --lr or resume from an earlier checkpoint")
            losses.append(loss)
            step_times.append(time.monotonic() - ts)
            step = int(self.step.numpy())
            if step % max(1, self.cfg.log_every) == 0 or step == total_steps:
                detail = (f"loss {np.mean(losses[-self.cfg.log_every:]):.5f} lr {float(lr):.2e} "
                          f"{np.mean(step_times[-self.cfg.log_every:]):.2f} s/step")
                if budget is not None:
                    left = max(0.0, budget - reserve - (time.monotonic() - t0))
                    detail += f" (time left {left / 60:.1f} min)"
                    # The ETA is that of the steps the time budget allows.
                    rate = (step - start) / max(1e-6, time.monotonic() - prog.start)
                    prog.total = min(total_steps - start, step - start + int(rate * left))
                prog.update(step - last_log, detail)
                last_log = step
            if self.cfg.checkpoint_every and step % self.cfg.checkpoint_every == 0:
                self.manager.save(checkpoint_number=step)
            if self.val_ds is not None and self.cfg.val_every and step % self.cfg.val_every == 0 \
                    and step < total_steps:
                self._record_validation(prog, step)
            if budget is not None and time.monotonic() - t0 >= budget - reserve:
                stopped = "time"
        step = int(self.step.numpy())
        if step > start or not self.manager.latest_checkpoint:
            self.manager.save(checkpoint_number=step)
        val = {}
        if stopped != "interrupted" and self.val_ds is not None:
            val = self._record_validation(prog, step)
        return {"step": step, "start_step": start, "stopped": stopped, "seconds": time.monotonic() - t0,
                "mean_loss_first": float(np.mean(losses[:10])) if losses else None,
                "mean_loss_last": float(np.mean(losses[-10:])) if losses else None,
                "losses": losses, "validation": val, "history": self.history, "what": what}

    def _record_validation(self, prog, step) -> dict:
        val = self.validate()
        if val:
            self.history.append({"step": step, **{k: round(float(v), 5) for k, v in val.items()}})
            msg = (f"validation at step {step}: PSNR {val['psnr']:.2f} dB (linear {val['linear_psnr']:.2f}), "
                   f"SSIM {val['ssim']:.4f} (linear {val['linear_ssim']:.4f}) on {val['patches']} patches")
            self._say(prog, msg)
        return val

    def export(self, output: str, summary: Optional[dict] = None) -> str:
        """Write the SavedModel (FILM interface) to ``output`` atomically, with
        ``cryotiger_train.json`` (training record: configurations, database,
        step, and from ``summary`` (``run``'s) the stop reason, validation,
        history, seconds and losses) inside.  Returns ``output``.

        Raises:
            InputError: when ``output`` may not be written (``film_api.export``).
        """
        from . import film_api
        info = {"film_config": self.film_config.to_json(), "train": asdict(self.cfg),
                "database": {k: self.manifest[k] for k in ("series", "counts", "patch_size", "spacings",
                                                            "format", "validation_split", "normalization")},
                "init": self.init or "", "step": int(self.step.numpy())}
        try:
            info["parameters"] = int(self.net.count_params())
        except Exception:      # a network not built yet: leave it out
            pass
        if summary:
            info.update({k: summary[k] for k in ("stopped", "validation", "history", "seconds") if k in summary})
            if summary.get("losses"):       # training loss per step of this run (model viewer)
                info["losses"] = [round(float(v), 6) for v in summary["losses"]]
        film_api.export(self.net, output, info)
        return output


def train(database: str, workdir: str, output: Optional[str], config="small",
          train_config: Optional[TrainConfig] = None, init: Optional[str] = None,
          progress: bool = True, threads: int = 0, stop_after: Optional[int] = None) -> dict:
    """Train (or resume) and export to ``output`` unless interrupted (``stop_after``).

    Arguments as for ``Trainer`` and ``Trainer.run``; ``output`` None: no export.
    Returns ``Trainer.run``'s summary, with 'output' when the model was exported.

    Raises:
        InputError: as ``Trainer``, ``Trainer.run`` and ``Trainer.export``.
        CryoTigerError: when the training diverges (``Trainer.run``).
    """
    tr = Trainer(database, workdir, config, train_config, init=init, progress=progress, threads=threads)
    summary = tr.run(stop_after=stop_after)
    if output and summary["stopped"] != "interrupted":
        tr.export(output, summary)
        summary["output"] = output
    return summary
