"""Plugin.defineBinaries: 'scipion3 installb cryotiger_models' installs the published
models with the engine's checked, resumable 'cryotiger model download' into
CRYOTIGER_MODELS (issue 12).  The command itself is tested end to end against a
local server in tests/engine/test_model_download.py."""
import os
import unittest


class _RecordingEnv:
    """Stands in for scipion-app's install Environment (not installed here): records addPackage."""

    def __init__(self):
        self.packages = {}

    def addPackage(self, name, **kwargs):
        self.packages[name] = kwargs


class TestDefineBinaries(unittest.TestCase):
    def test_models_target_downloads_both_published_models_into_models_dir(self):
        import pyworkflow as pw
        pw.Config.getDomain().getPlugins()     # loads the plugin: its variables are defined
        from cryotiger_scipion import Plugin
        from cryotiger_scipion.constants import MODEL_CRYOTIGER, MODEL_RECORD, MODEL_VIMEO
        env = _RecordingEnv()
        Plugin.defineBinaries(env)
        self.assertIn("cryotiger", env.packages)
        pkg = env.packages["cryotiger_models"]
        self.assertFalse(pkg["default"])            # a large download: only on request
        self.assertEqual(pkg["deps"], ["cryotiger"])  # needs the managed environment's cryotiger
        models = Plugin.getModelsDir()
        cmds = dict((target, cmd) for cmd, target in pkg["commands"])
        for name, folder in (("cryotiger", MODEL_CRYOTIGER), ("vimeo", MODEL_VIMEO)):
            target = os.path.join(models, folder, MODEL_RECORD)
            self.assertIn(target, cmds)
            self.assertTrue(cmds[target].split()[0].endswith(os.path.join("bin", "cryotiger")))
            self.assertIn("model download %s --output '%s'" % (name, models), cmds[target])
