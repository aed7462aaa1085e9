"""scipion-em-cryotiger: denser cryo-ET tilt series by deep frame interpolation (FILM),
CTF estimation and 3D-CTF-corrected reconstruction, as Scipion protocols."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def _version():
    with open(os.path.join(HERE, "cryotiger_scipion", "constants.py")) as f:
        return re.search(r'^VERSION = "([^"]+)"', f.read(), re.M).group(1)


with open(os.path.join(HERE, "README.md")) as f:
    LONG_DESCRIPTION = f.read()

# The Scipion side (what Scipion's python imports).  The engine's own
# requirements (TensorFlow) live in the managed environment, see
# cryotiger_scipion/environment.py and `python -m cryotiger_scipion.environment`.
SCIPION_REQUIRES = [
    "scipion-pyworkflow>=3.11",
    "scipion-em>=3.11",
    "scipion-em-tomo>=3.12",
]
ENGINE_REQUIRES = [
    "numpy>=1.23",
    "scipy>=1.10",
    "mrcfile>=1.4",
    "starfile>=0.5",     # cryotiger export (STAR files of RELION 5 / STOPGAP)
]

setup(
    name="scipion-em-cryotiger",
    version=_version(),
    description="cryoTIGER for Scipion: tilt interpolation (FILM), CTF and 3D-CTF reconstruction",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.9",
    packages=find_packages(include=["cryotiger_scipion", "cryotiger_scipion.*"]),
    include_package_data=True,
    package_data={"cryotiger_scipion": ["templates/*.json.template", "protocols.conf", "*.png",
                                        # the starter model of --fit-minutes (1.6 MB, aligned; bench/make_starter.py)
                                        "models/film_starter/*.pb", "models/film_starter/*.json",
                                        "models/film_starter/variables/*",
                                        # the time-aware model (--per-gap K, --at; bench/make_starter.py --time-aware)
                                        "models/film_timeaware/*.pb", "models/film_timeaware/*.json",
                                        "models/film_timeaware/variables/*"]},
    install_requires=ENGINE_REQUIRES + SCIPION_REQUIRES,
    extras_require={
        # For the managed environment, installed with --no-deps plus these.
        "engine": ENGINE_REQUIRES + ["tensorflow-cpu>=2.15"],
        "engine-gpu": ENGINE_REQUIRES + ["tensorflow[and-cuda]>=2.15"],
        "test": ["pytest", "scikit-image", "matplotlib", "tifffile", "wheel"],
    },
    entry_points={
        "pyworkflow.plugin": ["cryotiger_scipion = cryotiger_scipion"],
        "console_scripts": ["cryotiger = cryotiger_scipion.engine.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
    ],
)
