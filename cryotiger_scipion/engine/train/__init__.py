"""Training and fine-tuning FILM on the user's own tilt series (issue 4).

Importing this package does not import TensorFlow.

Python API::

    from cryotiger_scipion.engine.train.data import SeriesSpec, DatabaseParams, build_database, make_dataset
    from cryotiger_scipion.engine.train.trainer import TrainConfig, Trainer, train

    db = build_database([SeriesSpec("TS.mrc", "TS.tlt", exclude=[0])], "work/database",
                        DatabaseParams(patch_size=256, spacings=(1, 2), seed=0))
    summary = train("work/database", "work", "MODEL_DIR", config="small",
                    train_config=TrainConfig(steps=1000, minutes=20), init=None)

Modules: data (triplets, patches, TFRecord database, tf.data reader), losses
(L1, VGG-19 perceptual and Gram style losses from a user-given weights file),
trainer (Adam with staircase decay, checkpoints/resume, validation, time budget),
film_api (the calls into engine/film: build, weight import, SavedModel export).
See docs/training.md.
"""
