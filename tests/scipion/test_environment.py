"""The managed environment from a wheel install (issue 11 item 8): the engine
comes from the plugin's own installed files (never the plugin again from
PyPI), TensorFlow is pinned to the tested range, CRYOTIGER_ENV_HOME is where
defineBinaries builds it, and a conda activation gets Scipion's conda hook."""
import glob
import os
import subprocess
import sys
import unittest
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestManagedEnvironment(unittest.TestCase):
    def test_wheel_install_copies_its_own_engine(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="ct-wheel-")
        build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                "-q", "-w", tmp, ROOT], capture_output=True, text=True)
        if build.returncode != 0:
            self.skipTest("cannot build a wheel here (pip wheel: %s)" % build.stderr.strip()[-200:])
        wheel = glob.glob(os.path.join(tmp, "scipion_em_cryotiger-*.whl"))[0]
        site = os.path.join(tmp, "site")                   # what pip would unpack
        zipfile.ZipFile(wheel).extractall(site)
        self.assertTrue(os.path.exists(os.path.join(site, "cryotiger_scipion", "protocols.conf")))
        # both shipped FILM models travel with the wheel (the starter; the time-aware model, issue 13)
        for model in ("film_starter", "film_timeaware"):
            for part in ("saved_model.pb", "cryotiger_film.json", "variables/variables.index"):
                self.assertTrue(os.path.exists(os.path.join(site, "cryotiger_scipion", "models", model, part)),
                                "%s/%s missing from the wheel" % (model, part))
        env = dict(os.environ, PYTHONPATH=site)
        code = ("from cryotiger_scipion import environment as e; "
                "print(e.is_source_tree()); print(' && '.join(e.install_commands('/x/env')))")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True, cwd=tmp).stdout
        self.assertTrue(out.startswith("False"), out)
        self.assertNotIn("install -qq --no-deps scipion-em-cryotiger", out)
        self.assertIn("--engine-files-only --prefix /x/env", out)
        self.assertIn("tensorflow-cpu>=2.15,<2.22", out)
        # the last command, run for real into a fresh venv (no network needed)
        prefix = os.path.join(tmp, "env")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", prefix], check=True)
        subprocess.run([sys.executable, "-m", "cryotiger_scipion.environment", "--engine-files-only",
                        "--prefix", prefix], env=env, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        check = subprocess.run([os.path.join(prefix, "bin", "python"), "-c",
                                "import cryotiger_scipion as c, cryotiger_scipion.engine; "
                                "print(c.__file__, c.__version__)"],
                               capture_output=True, text=True, check=True, cwd=tmp).stdout
        self.assertIn(prefix, check)
        from cryotiger_scipion.constants import VERSION
        self.assertIn(VERSION, check)
        with open(os.path.join(prefix, "bin", "cryotiger")) as f:
            self.assertIn("cryotiger_scipion.engine.cli", f.read())

    def test_env_home_and_conda_activation(self):
        import pyworkflow as pw
        pw.Config.getDomain().getPlugins()          # defines the plugin's variables
        from cryotiger_scipion import Plugin
        from cryotiger_scipion.constants import CRYOTIGER_ENV_ACTIVATION, CRYOTIGER_ENV_HOME

        class Env:
            def __init__(self):
                self.packages = {}

            def addPackage(self, name, **kwargs):
                self.packages[name] = kwargs
        saved = dict(Plugin._vars)
        try:
            Plugin._vars[CRYOTIGER_ENV_HOME] = "/opt/ct-env"
            env = Env()
            Plugin.defineBinaries(env)
            cmd, target = env.packages["cryotiger"]["commands"][0]
            self.assertEqual(target, "/opt/ct-env/bin/cryotiger")
            self.assertIn("-m venv /opt/ct-env", cmd)
            Plugin._vars[CRYOTIGER_ENV_ACTIVATION] = "conda activate cryotiger"
            Plugin._condaActivationCmd = 'eval "$(/opt/conda/bin/conda shell.bash hook)"&&'
            self.assertEqual(Plugin.getActivationCmd(),
                             'eval "$(/opt/conda/bin/conda shell.bash hook)"&& conda activate cryotiger')
        finally:
            Plugin._vars.clear()
            Plugin._vars.update(saved)
            Plugin._condaActivationCmd = None
