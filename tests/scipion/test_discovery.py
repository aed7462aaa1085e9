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
