# Source this file to use the checkout's environments:  . scripts/env.sh
# (scripts/setup.sh must have run once).
_CT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SCIPION_HOME="$_CT_ROOT/.scipion"
export SCIPION_USER_DATA="$_CT_ROOT/.scipion/data"
export SCIPION_TESTS="$_CT_ROOT/.scipion/tests"
export SCIPION_DOMAIN=pwem
export SCIPION_TEST_NOSYNC=1
export SCIPION_NOTIFY=False
export CRYOTIGER_ENV_ACTIVATION=". $_CT_ROOT/.venv-engine/bin/activate"
export PATH="$_CT_ROOT/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=2
