"""scipion-em-cryotiger: cryoTIGER tilt interpolation (FILM), CTF estimation and
3D-CTF-corrected reconstruction for Scipion.

This module holds the Scipion Plugin class only.  The science lives in
``cryotiger_scipion.engine``, which runs inside the managed environment (a venv
with TensorFlow) where Scipion is not installed: there this module defines no
Plugin and imports nothing from Scipion.
"""
import os

from .constants import (CRYOTIGER_ASSUME_GPU, CRYOTIGER_CUDA, CRYOTIGER_ENV_ACTIVATION, CRYOTIGER_ENV_HOME,
                        CRYOTIGER_ENV_NAME, CRYOTIGER_MODELS, GCTF_BIN, GCTF_HOME, MODEL_CRYOTIGER,
                        MODEL_RECORD, MODEL_VIMEO, NOVACTF_BIN, NOVACTF_HOME, VERSION)

__version__ = VERSION

try:
    import pwem
    import pyworkflow.utils as pwutils
except ImportError:  # engine-only environment
    pwem = None

_references = ["Majtner2025"]
_logo = "cryotiger_logo.png"      # shown in the protocol forms' header

if pwem is not None:

    class Plugin(pwem.Plugin):
        """The cryoTIGER plugin: its variables (managed environment, models
        folder, Gctf and novaCTF binaries), the command that runs the
        ``cryotiger`` engine inside the managed environment, whether that
        environment sees a GPU, and the installers of the environment and
        the published models (``scipion3 installb cryotiger`` /
        ``cryotiger_models``)."""
        _homeVar = CRYOTIGER_ENV_HOME
        _pathVars = [CRYOTIGER_ENV_HOME]
        # This project's own home: a placeholder the maintainers replace when the
        # repository is published (docs/scipion.md, "Plugin home").
        _url = "https://github.com/cryotiger-scipion/scipion-em-cryotiger"
        _supportedVersions = [VERSION]

        @classmethod
        def _defineVariables(cls):
            cls._defineEmVar(CRYOTIGER_ENV_HOME, CRYOTIGER_ENV_NAME)
            cls._defineVar(CRYOTIGER_ENV_ACTIVATION, "")
            cls._defineVar(CRYOTIGER_CUDA, "False")
            cls._defineVar(CRYOTIGER_ASSUME_GPU, "False")
            cls._defineEmVar(CRYOTIGER_MODELS, "cryotiger-models")
            cls._defineVar(GCTF_BIN, "")
            cls._defineVar(NOVACTF_BIN, "")

        # --- managed environment ------------------------------------------
        @classmethod
        def getActivationCmd(cls):
            """Shell command that activates the managed environment:
            CRYOTIGER_ENV_ACTIVATION, else ``. $CRYOTIGER_ENV_HOME/bin/activate``.
            A ``conda activate ...`` command gets Scipion's conda activation
            (CONDA_ACTIVATION_CMD) in front, as other plugins' conda
            environments do, so that ``conda`` is defined in the job's shell."""
            custom = cls.getVar(CRYOTIGER_ENV_ACTIVATION)
            if not custom:
                return ". %s" % os.path.join(cls.getHome(), "bin", "activate")
            if "conda activate" in custom and "shell." not in custom and "conda.sh" not in custom:
                conda = cls.getCondaActivationCmd() or ""
                if conda and not custom.startswith(conda):
                    return "%s %s" % (conda.strip(), custom)
            return custom

        @classmethod
        def validateInstallation(cls):
            """Messages (list of str, empty when fine) about the installation.
            With CRYOTIGER_ENV_ACTIVATION set (scripts/env.sh, or an environment
            made without scipion-app), the script it sources must exist;
            otherwise Scipion's check of the CRYOTIGER_ENV_HOME folder."""
            custom = cls.getVar(CRYOTIGER_ENV_ACTIVATION)
            if not custom:
                return super().validateInstallation()
            words = custom.split()
            if len(words) >= 2 and words[0] in (".", "source") and not os.path.exists(words[1]):
                return ["CRYOTIGER_ENV_ACTIVATION = '%s': %s does not exist; make the managed "
                        "environment (bash scripts/setup.sh, or 'scipion3 installb cryotiger') or "
                        "fix the variable." % (custom, words[1])]
            return []

        @classmethod
        def getEngineCommand(cls):
            """The program string for runJob: the activation command
            (:meth:`getActivationCmd`), then the ``cryotiger`` CLI, joined by
            ``&&``; the subcommand and its arguments come after it."""
            return "%s && cryotiger" % cls.getActivationCmd()

        @classmethod
        def getEnviron(cls):
            """The environment of the engine's jobs (pyworkflow Environ): this
            process's variables with TensorFlow's C++ log level 2 (errors only)
            and unbuffered Python output, so the run log shows the engine's
            lines as they come."""
            environ = pwutils.Environ(os.environ)
            environ.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
                           position=pwutils.Environ.REPLACE)
            return environ

        @classmethod
        def engineSeesGpu(cls, probe: bool = True):
            """Whether TensorFlow in the managed environment sees a GPU here.

            The answer of a probe (``python -c 'import tensorflow ...'`` run with
            the activation, about 10 s) is cached per machine, activation and
            CUDA_VISIBLE_DEVICES for an hour in <SCIPION_USER_DATA>/tmp.  With
            ``probe`` False only the cache is read (forms are drawn without
            waiting); without a cached answer: True when an NVIDIA driver is
            present (``nvidia-smi`` on PATH) and the environment is built with
            CUDA (CRYOTIGER_CUDA), else False.  Returns True/False, or None when
            the probe itself failed (the environment is broken: the run will say)."""
            import json, hashlib, shutil, subprocess, time
            import pyworkflow as pw
            assume = os.environ.get(CRYOTIGER_ASSUME_GPU) or cls.getVar(CRYOTIGER_ASSUME_GPU) or ""
            if str(assume).lower() in ("1", "true", "yes"):
                return True
            key = "|".join([pwutils.getHostName(), cls.getActivationCmd(),
                            os.environ.get("CUDA_VISIBLE_DEVICES", "*")])
            cache = os.path.join(pw.Config.SCIPION_USER_DATA or os.path.expanduser("~"), "tmp",
                                 "cryotiger-gpu-%s.json" % hashlib.sha1(key.encode()).hexdigest()[:12])
            try:
                with open(cache) as f:
                    entry = json.load(f)
                if time.time() - entry["time"] < 3600:
                    return entry["gpus"] > 0
            except (OSError, ValueError, KeyError):
                pass
            if not probe:
                return bool(shutil.which("nvidia-smi")) and cls.useCuda()
            code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow as tf; "
                    "print('GPUS', len(tf.config.list_physical_devices('GPU')))")
            try:
                out = subprocess.run("%s && python -c \"%s\"" % (cls.getActivationCmd(), code),
                                     shell=True, capture_output=True, text=True, timeout=300,
                                     env=dict(cls.getEnviron()))
                gpus = int([l for l in out.stdout.splitlines() if l.startswith("GPUS ")][-1].split()[1])
            except Exception:
                return None
            try:
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                with open(cache, "w") as f:
                    json.dump({"gpus": gpus, "time": time.time(), "key": key}, f)
            except OSError:
                pass
            return gpus > 0

        @classmethod
        def useCuda(cls):
            """True when CRYOTIGER_CUDA says the managed environment is (to be)
            built with the CUDA build of TensorFlow ('1', 'true', 'yes')."""
            return str(cls.getVar(CRYOTIGER_CUDA)).lower() in ("1", "true", "yes")

        # --- models and external programs ------------------------------------
        @classmethod
        def getModelsDir(cls):
            """The folder of the published models (CRYOTIGER_MODELS, default
            <EM_ROOT>/cryotiger-models): cryoTIGER_model/ and
            pre-trained_Vimeo-90K_data_model/ are looked up in it."""
            return cls.getVar(CRYOTIGER_MODELS)

        @classmethod
        def getGctfBinary(cls):
            """Path of the Gctf binary: CRYOTIGER_GCTF_BIN (None when that file
            does not exist), else found in scipion-em-gctf's GCTF_HOME or its
            bin/ (Gctf, gctf or the versioned names), else None."""
            return _find_binary(cls.getVar(GCTF_BIN), os.environ.get(GCTF_HOME) or _em_var(GCTF_HOME),
                                ("Gctf", "gctf", "Gctf-v1.18_sm_30_cu10.1_x86_64",
                                 "Gctf-v1.06_sm_30_cu8.0_x86_64"))

        @classmethod
        def getNovaCtfBinary(cls):
            """Path of the novaCTF binary: CRYOTIGER_NOVACTF_BIN (None when that
            file does not exist), else novaCTF in NOVACTF_HOME or its bin/, else
            None."""
            return _find_binary(cls.getVar(NOVACTF_BIN),
                                os.environ.get(NOVACTF_HOME) or _em_var(NOVACTF_HOME),
                                ("novaCTF",))

        @classmethod
        def defineBinaries(cls, env):
            """Scipion's installer hook (``env``: scipion.install's Environment):
            the package ``cryotiger`` (default; the managed environment at
            CRYOTIGER_ENV_HOME, made by :func:`environment.install_commands`,
            CUDA build when CRYOTIGER_CUDA) and ``cryotiger_models`` (not
            default; the published models, downloaded from the authors' share
            and checked by ``cryotiger model download``)."""
            from .environment import install_commands
            prefix = cls.getHome()           # CRYOTIGER_ENV_HOME (default <EM_ROOT>/cryotiger-<version>)
            cmds = install_commands(prefix, gpu=cls.useCuda(), editable=False)
            target = os.path.join(prefix, "bin", "cryotiger")
            commands = [(" && ".join(cmds), target)]
            env.addPackage(CRYOTIGER_ENV_NAME.split("-")[0], version=VERSION, tar="void.tgz",
                           commands=commands, neededProgs=[], default=True)
            # The published models ('scipion3 installb cryotiger_models'): downloaded from the
            # authors' public share, checked and installed into CRYOTIGER_MODELS by the engine's
            # 'cryotiger model download' (resumable; the folder appears only once checked).
            models = cls.getModelsDir()
            cryotiger = os.path.join(prefix, "bin", "cryotiger")
            model_cmds = [("%s model download %s --output '%s'" % (cryotiger, name, models),
                           os.path.join(models, folder, MODEL_RECORD))
                          for name, folder in (("cryotiger", MODEL_CRYOTIGER), ("vimeo", MODEL_VIMEO))]
            env.addPackage("cryotiger_models", version=VERSION, tar="void.tgz", commands=model_cmds,
                           neededProgs=[], deps=[CRYOTIGER_ENV_NAME.split("-")[0]], default=False)

        @classmethod
        def getPluginTemplateDir(cls):
            """Templates ship in <package>/templates (a link to the top-level
            templates/ of the source tree)."""
            here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
            if os.path.isdir(here):
                return here
            return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "templates")

    def _em_var(name):
        try:
            return pwem.Config.__dict__.get(name) or None
        except Exception:
            return None

    def _find_binary(explicit, home, names):
        if explicit:
            return explicit if os.path.exists(explicit) else None
        from .engine.binaries import search_executable
        return search_executable([home, os.path.join(home, "bin")] if home else [], names)
