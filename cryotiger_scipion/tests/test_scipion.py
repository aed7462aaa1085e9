"""Every test class of the source tree's tests/scipion/test_*.py, for Scipion's
runner: ``scipion3 test --grep cryotiger`` lists them as
``cryotiger_scipion.tests.test_scipion.<Class>`` and runs each one in a real
headless project, as pytest does (``bash scripts/test.sh``)."""
import glob
import importlib
import inspect
import os
import sys
import unittest

from . import SOURCE_TESTS

if os.path.isdir(SOURCE_TESTS):
    if SOURCE_TESTS not in sys.path:
        sys.path.insert(0, SOURCE_TESTS)      # the tests import their helpers as 'common'
    importlib.import_module("conftest")       # Scipion variables when run outside scipion3
    for _path in sorted(glob.glob(os.path.join(SOURCE_TESTS, "test_*.py"))):
        _modName = os.path.splitext(os.path.basename(_path))[0]
        try:
            _module = importlib.import_module(_modName)
        except Exception as _e:          # one broken module must not hide the others
            def _failed(self, _msg="%s: %s: %s" % (_modName, type(_e).__name__, _e)):
                self.fail("cannot import " + _msg)
            _name = "TestImport_" + _modName
            globals()[_name] = type(_name, (unittest.TestCase,), {"__module__": __name__,
                                                                    "test_import": _failed})
            continue
        for _name, _cls in inspect.getmembers(_module, inspect.isclass):
            if issubclass(_cls, unittest.TestCase) and _cls.__module__ == _module.__name__:
                # a subclass named here, so that Scipion's runner, which runs each
                # class by its dotted name in a new process, finds it again
                globals()[_name] = type(_name, (_cls,), {"__module__": __name__,
                                                         "__doc__": _cls.__doc__})
else:
    class TestCryoTigerTestsMissing(unittest.TestCase):
        def test_source_tree(self):
            self.skipTest("the Scipion tests are in the source tree (%s), not in an installed "
                          "wheel: install the plugin from a checkout (scipion3 installp -p DIR "
                          "--devel) to run them" % SOURCE_TESTS)
