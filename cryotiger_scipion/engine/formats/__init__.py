"""The engine's file formats: one module per format, each with its one reader
and its one writer; every other module (engine commands, drivers, the Scipion
layer's ``convert.py`` and protocols) calls them instead of parsing or writing
the files itself.

==================  =========================================================
module              format
==================  =========================================================
``text``            checked decoding of small text files (shared by the
                    text formats below and ``cryotiger parallel``)
``mrc``             MRC stacks and volumes (MRC2014, IMOD's 8-bit rule),
                    pixel-size rules
``tlt``             tilt-angle files (IMOD .tlt/.rawtlt)
``mdoc``            SerialEM .mdoc (read only)
``xf``              IMOD .xf linear transforms
``acquisition``     acquisition JSON (``--acquisition-json``, ``.order.json``)
``ctf_json``        CTF.json (``cryotiger ctf``)
``record``          the interpolation record OUT.json (``cryotiger interpolate``)
``training_db``     the FILM training database (TFRecord shards + manifest;
                    ``cryotiger train``); TensorFlow inside its functions
==================  =========================================================

Model folders (SavedModel) stay with their code (``film/savedmodel.py``).
Every module here but ``training_db`` imports only the standard library,
numpy, mrcfile and ``engine`` (its errors, ``outputs.atomic_path`` and, for the
.mdoc dose rule, ``plan``), so that the Scipion layer may import it
(``tests/engine/test_layers.py``); ``training_db`` needs TensorFlow when used
and the Scipion layer never imports it.
Conventions: stacks (n, y, x) float32, volumes (z, y, x); angles in degrees;
pixel sizes and defocus in Angstrom; doses in e/A^2.  A file a user can fix
raises ``engine.InputError`` with one line naming the file, the problem and
the fix.
"""
