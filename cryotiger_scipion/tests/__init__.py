"""Scipion's own test runner looks for tests in <package>/tests
(``scipion3 test --grep cryotiger``, ``scipion3 tests cryotiger_scipion.tests...``).

The plugin's Scipion tests live in the source tree's tests/scipion (with the
engine tests in tests/engine; ``bash scripts/test.sh`` runs both with
pytest).  :mod:`cryotiger_scipion.tests.test_scipion` makes Scipion's runner
find and run the same test classes from a source checkout (``installp -p DIR
--devel``); a wheel carries no tests (that module then says so).
"""
import os

SOURCE_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "scipion")
