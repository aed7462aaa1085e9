import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.environ.get("CRYOTIGER_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every file a command writes must be declared in its engine.outputs.OutputSet.
os.environ.setdefault("CRYOTIGER_STRICT_OUTPUTS", "1")


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"real data folder {SHARED_DATA} is absent (a clone outside the workplace); "
                    "set CRYOTIGER_SHARED_DATA to use it")
    return SHARED_DATA


def cryotiger_cmd():
    """The `cryotiger` console script of the running interpreter's environment."""
    exe = os.path.join(os.path.dirname(sys.executable), "cryotiger")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "cryotiger_scipion.engine.cli"]
