"""Constants shared by the Scipion layer and the engine.

Nothing here imports Scipion or TensorFlow: the engine reads it too.
"""
import os

VERSION = "0.1.0"

# --- Plugin variables (set in scipion.conf or the environment) ---------------
# Command that activates the managed environment (a venv with TensorFlow and
# this package's engine).  Default: source <EM_ROOT>/cryotiger-<VERSION>/bin/activate
CRYOTIGER_ENV_ACTIVATION = "CRYOTIGER_ENV_ACTIVATION"
# Folder of the managed environment (used to build the default activation).
CRYOTIGER_ENV_HOME = "CRYOTIGER_ENV_HOME"
CRYOTIGER_ENV_NAME = "cryotiger-%s" % VERSION
# Trust 'Use GPU' without checking that TensorFlow sees a GPU here (e.g. to test
# the GPU fan-out on a machine without one; normally the run falls back to the CPU).
CRYOTIGER_ASSUME_GPU = "CRYOTIGER_ASSUME_GPU"
# Build the managed environment with the CUDA build of TensorFlow.
CRYOTIGER_CUDA = "CRYOTIGER_CUDA"
# Folder that holds published models (cryoTIGER_model/, pre-trained_Vimeo-90K_data_model/).
CRYOTIGER_MODELS = "CRYOTIGER_MODELS"
# External binaries.
GCTF_BIN = "CRYOTIGER_GCTF_BIN"
GCTF_HOME = "GCTF_HOME"            # as defined by scipion-em-gctf
NOVACTF_BIN = "CRYOTIGER_NOVACTF_BIN"
NOVACTF_HOME = "NOVACTF_HOME"      # as defined by scipion-em-novactf

# --- Methods and modes --------------------------------------------------------
METHOD_LINEAR = "linear"
METHOD_FILM = "film"
METHODS = (METHOD_LINEAR, METHOD_FILM)

MODE_ADD = "add"
MODE_RESTORE = "restore"
MODES = (MODE_ADD, MODE_RESTORE)

# --- Published models (looked up inside CRYOTIGER_MODELS) --------------------
MODEL_CRYOTIGER = "cryoTIGER_model"
MODEL_VIMEO = "pre-trained_Vimeo-90K_data_model"
PUBLISHED_MODELS = {
    MODEL_CRYOTIGER: "cryoTIGER cryo-ET model (Majtner et al. 2025), published with "
                     "the cryoTIGER paper (Communications Biology, "
                     "doi 10.1038/s42003-025-08961-5) and its code repository",
    MODEL_VIMEO: "FILM Vimeo-90K model (Reda et al., ECCV 2022), published by the "
                 "FILM project (google-research/frame-interpolation) as "
                 "pretrained_models/film_net/Style/saved_model",
}

# --- Models shipped inside the package (cryotiger_scipion/models/) -----------
SHIPPED_MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
# Midpoint-only, the starting point of fitting (bench/make_starter.py).
STARTER_MODEL = "film_starter"
# Time-aware (issue 13; bench/make_starter.py --time-aware): makes a tilt at any
# fraction of its gap; used for --per-gap K / --at when no model is chosen.
TIMEAWARE_MODEL = "film_timeaware"
# Tilts per gap a midpoint-only FILM model makes (recursive midpoints).
MIDPOINT_PER_GAP = (1, 3, 7)

# Where the published models come from, and the one command that installs them
# (engine/download.py; every "model missing" message quotes MODELS_INSTALL_HINT).
MODELS_SHARE_URL = "https://oc.biophys.mpg.de/owncloud/s/MFi6Q7rCFYLAqFT"
MODEL_RECORD = "cryotiger_download.json"   # written in a model folder once downloaded and checked
MODELS_INSTALL_HINT = ("The published models come from the cryoTIGER authors' public share (%s); "
                       "install them with 'scipion3 installb cryotiger_models' (or, in the managed "
                       "environment, 'cryotiger model download cryotiger --output <CRYOTIGER_MODELS>')."
                       % MODELS_SHARE_URL)

# --- Scipion attribute names ---------------------------------------------------
# Set on EVERY output TiltImage: True for tilts made by the plugin.
ATTR_SYNTHETIC = "_cryotigerSynthetic"
# Input stack indices (1-based, comma separated) the tilt was made from.
ATTR_SOURCES = "_cryotigerSources"
# FILM only (issue 13): per-tilt confidence, 0..1 (real tilts 1.0), on every output TiltImage.
ATTR_CONFIDENCE = "_cryotigerConfidence"

# Reason a tilt series failed (on the series of the FailedTiltSeries output).
ATTR_FAILED_REASON = "_cryotigerFailReason"

# --- Input attribute names (the protocols' form parameters) --------------------
# Names of the pointer parameters, used wherever a protocol, the streaming mixin,
# the failed-series bookkeeping or a template refers to an input.
IN_TILTSERIES = "inputSetOfTiltSeries"         # SetOfTiltSeries (interpolate, CTF, reconstruct, ...)
IN_CTFS = "inputSetOfCtfTomoSeries"            # SetOfCTFTomoSeries (reconstruct, export)
IN_TILTSERIES_LIST = "inputSetsOfTiltSeries"   # several SetOfTiltSeries (train)
IN_TOMOGRAMS = "inputTomograms"                # several SetOfTomograms (compare tomograms)
IN_COORDINATES = "inputCoordinates"            # SetOfCoordinates3D (picking metrics)
IN_MASKS_A = "inputMasksA"                     # segmentation metrics: masks A
IN_MASKS_B = "inputMasksB"                     # segmentation metrics: masks B

# --- Output names ---------------------------------------------------------------
OUT_TILTSERIES = "TiltSeries"
OUT_MODEL = "Model"
OUT_CTFS = "CTFTomoSeries"
OUT_TOMOGRAMS = "Tomograms"
# Tilt series that failed, with the reason (as scipion-em-aretomo's FailedTiltSeries).
OUT_FAILED = "FailedTiltSeries"

# --- Form parameters shared by several protocols ---------------------------------
# "Aligned image size" (engine --aligned-size NX,NY): frame of the images aligned
# with the series' transforms (interpolate, reconstruct); empty: the engine's default.
PARAM_ALIGNED_SIZE = "alignedSize"
ALIGNED_SIZE_HELP = ("Only when the tilt series carry transforms that the protocol applies (not "
                     "resampled yet): size in pixels (of the input images) of the aligned images, "
                     "as 'NX,NY' (e.g. 1024,1440), as IMOD newstack -size. Empty: the raw size, "
                     "x and y swapped when the transforms rotate by about 90 degrees. Ignored for "
                     "tilt series already resampled with their alignment.")

# --- Streaming ---------------------------------------------------------------------
# Seconds between two looks at a growing input set (protocols/streaming.py).
STREAM_POLL_S = 5
