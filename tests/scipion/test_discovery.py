"""Scipion discovers the plugin and every one of its protocols and objects.

An import error in a protocol module silently drops the whole plugin from
Scipion (only a log warning), so this test imports nothing of ours directly
before asking Scipion's own discovery.
"""
import inspect
import os
import pkgutil
import unittest

import pyworkflow as pw

PLUGIN = "cryotiger_scipion"


def _ourProtocolModules():
    """Every protocols/protocol_*.py file of the package (found on disk)."""
    import importlib.util
    spec = importlib.util.find_spec(PLUGIN + ".protocols")
    folder = os.path.dirname(spec.origin)
    return sorted(m.name for m in pkgutil.iter_modules([folder]) if m.name.startswith("protocol_"))


class TestDiscovery(unittest.TestCase):
    def test_plugin_is_discovered(self):
        plugins = pw.Config.getDomain().getPlugins()
        self.assertIn(PLUGIN, plugins, "Scipion did not load the plugin (import error? see the log)")

    def test_every_protocol_is_discovered(self):
        import importlib
        domain = pw.Config.getDomain()
        found = {name: cls for name, cls in domain.getProtocols().items()
                 if cls.__module__.startswith(PLUGIN + ".")}
        self.assertIn("ProtCryoTigerInterpolate", found)
        # Every concrete protocol class defined in protocols/protocol_*.py is offered.
        for modName in _ourProtocolModules():
            module = importlib.import_module("%s.protocols.%s" % (PLUGIN, modName))
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__ or not name.startswith("Prot"):
                    continue
                self.assertIn(name, found, "%s (in %s) is not discovered: import it in "
                                           "cryotiger_scipion/protocols/__init__.py" % (name, modName))
                if not cls.isBase():
                    self.assertTrue(cls._label, name)

    def test_objects_are_discovered(self):
        objects = pw.Config.getDomain().getObjects()
        self.assertIn("CryoTigerModel", objects)

    def test_plugin_installation_is_valid(self):
        from cryotiger_scipion import Plugin
        self.assertEqual(Plugin.validateInstallation(), [])

    def test_templates_are_discovered(self):
        # as Scipion's template list does: the plugin instance's getTemplates()
        plugin = pw.Config.getDomain().getPlugins()[PLUGIN]._pluginInstance
        names = [t.name for t in plugin.getTemplates()]
        self.assertIn("cryotiger_interpolate_demo", names)

    def test_protocols_in_the_tomography_view(self):
        """protocols.conf places every protocol in tomo's groups of the
        Tomography view (issue 11 item 6), as Scipion's protocol tree loads it."""
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig
        domain = pw.Config.getDomain()
        views = ProtocolTreeConfig.load(domain, os.path.join(pw.Config.SCIPION_CONFIG, "none.conf"))
        self.assertIn("Tomography", views)

        def walk(node, path):
            for child in node.childs:
                text = getattr(child, "text", None)
                value = getattr(child, "value", None)
                if getattr(child, "tag", None) == "protocol":
                    yield value, path
                yield from walk(child, path + [text])
        where = {value: path for value, path in walk(views["Tomography"], [])}
        expected = {"ProtCryoTigerInterpolate": "Tilt-series preprocess",
                    "ProtCryoTigerTrain": "Tilt-series preprocess",
                    "ProtCryoTigerCtf": "CTF",
                    "ProtCryoTigerExport": "Export",
                    "ProtCryoTigerReconstruct": "Tomogram Reconstruction",
                    "ProtCryoTigerHoldout": "Quality Analysis",
                    "ProtCryoTigerCompareTomograms": "Quality Analysis",
                    "ProtCryoTigerPickingMetrics": "Quality Analysis",
                    "ProtCryoTigerSegmentationMetrics": "Quality Analysis"}
        ours = {name for name, cls in domain.getProtocols().items()
                if cls.__module__.startswith(PLUGIN + ".") and not cls.isBase()}
        self.assertEqual(set(expected), ours)
        for name, group in expected.items():
            self.assertIn(name, where, "%s is not in the Tomography view" % name)
            self.assertEqual(where[name][-1], group, name)

    def test_protocol_conventions(self):
        """Every protocol: _possibleOutputs, help text on every visible field,
        citations known to the plugin's bibtex, units written as Å in labels
        (issue 11 items 10, 11)."""
        from pyworkflow.protocol.params import Group, Line, Section
        from cryotiger_scipion import bibtex
        domain = pw.Config.getDomain()
        keys = set(_bibKeys(bibtex.__doc__))
        for name, cls in domain.getProtocols().items():
            if not cls.__module__.startswith(PLUGIN + ".") or cls.isBase():
                continue
            self.assertIn("_possibleOutputs", cls.__dict__, name)
            prot = cls()
            inLine = set()      # fields of a form line share the line's help
            for pName, param in prot._definition.iterAllParams():
                if isinstance(param, Line) and param.help.get():
                    inLine |= {k for k, _ in param.iterParams()}
            for pName, param in prot._definition.iterAllParams():
                if pName in inLine:
                    continue
                if isinstance(param, (Section, Group)) or pName in ("runName", "runMode",
                                                                     "numberOfThreads", "numberOfMpi",
                                                                     "hostName", "useQueue",
                                                                     "queueParams", "useQueueForSteps",
                                                                     "useQueueForProtocol",
                                                                     "useQueueForJobs", "comment"):
                    continue
                label = param.label.get() or ""
                self.assertTrue(param.help.get(), "%s.%s (%s) has no help text" % (name, pName, label))
                self.assertNotRegex(label, r"\(A\)|\bA/px|\(A\^2\)", "%s.%s: write Å" % (name, pName))
            for key in prot._citations() if hasattr(prot, "_citations") else []:
                self.assertIn(key, keys, "%s cites %s, missing in bibtex.py" % (name, key))


def _bibKeys(text):
    import re
    return re.findall(r"@\w+\{([^,\s]+),", text)


class TestScipionRunner(unittest.TestCase):
    def test_scipion_test_runner_finds_the_tests(self):
        """`scipion3 test --grep cryotiger` (pyworkflow's runner) lists our
        test classes under the plugin's package (issue 11 item 7)."""
        import subprocess
        import sys
        out = subprocess.run([sys.executable, "-m", "pyworkflow.apps.pw_run_tests", "--grep",
                              "cryotiger"], capture_output=True, text=True, timeout=600).stdout
        for cls in ("TestCryoTigerInterpolate", "TestCryoTigerReconstruct", "TestDiscovery"):
            self.assertIn("cryotiger_scipion.tests.test_scipion.%s" % cls, out)
