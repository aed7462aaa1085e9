"""Scipion tests run real protocols in real headless projects.

Before pyworkflow is imported: set the Scipion variables that scripts/env.sh
sets (when unset), so that `.venv/bin/python -m pytest tests/scipion` works
without sourcing it, and put this interpreter's folder first on PATH (protocols
run in a subprocess that must find the same python with the plugin installed).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_defaults = {
    "SCIPION_HOME": os.path.join(ROOT, ".scipion"),
    "SCIPION_USER_DATA": os.path.join(ROOT, ".scipion", "data"),
    "SCIPION_TESTS": os.path.join(ROOT, ".scipion", "tests"),
    "SCIPION_DOMAIN": "pwem",
    "SCIPION_TEST_NOSYNC": "1",
    "SCIPION_NOTIFY": "False",
    "CRYOTIGER_ENV_ACTIVATION": ". %s" % os.path.join(ROOT, ".venv-engine", "bin", "activate"),
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
for _k, _v in _defaults.items():
    os.environ.setdefault(_k, _v)

_bin = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _bin:
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

for _d in ("config", "data", "tests"):
    os.makedirs(os.path.join(os.environ["SCIPION_HOME"], _d), exist_ok=True)
_hosts = os.path.join(os.environ["SCIPION_HOME"], "config", "hosts.conf")
if not os.path.exists(_hosts):
    from pyworkflow.protocol import HostConfig
    HostConfig.writeBasic(_hosts)
