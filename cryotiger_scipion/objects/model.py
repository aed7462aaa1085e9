"""CryoTigerModel: a FILM model folder (a TensorFlow SavedModel) as a Scipion object.

Made by ProtCryoTigerTrain (output ``Model``) and selected as the model of
ProtCryoTigerInterpolate ("a model trained by the plugin").
"""
import os

from pwem.objects import EMObject
from pyworkflow.object import Integer, String


class CryoTigerModel(EMObject):
    """A trained or published FILM model: the folder that the engine's
    ``--model`` option takes (it holds ``saved_model.pb`` and ``variables/``)."""

    def __init__(self, path=None, **kwargs):
        super().__init__(**kwargs)
        self._path = String(path)            # model folder (absolute or project-relative)
        self._baseModel = String()           # model it was fine-tuned from, if any
        self._trainingPairs = Integer()      # number of training triplets used, if known
        self._tiltsPerGap = Integer(1)       # the gap it was trained for (1: midpoints)

    def getPath(self) -> str:
        return self._path.get()

    def setPath(self, path: str) -> None:
        self._path.set(path)

    def getAbsPath(self) -> str:
        return os.path.abspath(self.getPath()) if self.getPath() else ""

    def exists(self) -> bool:
        """True when the folder holds a SavedModel (saved_model.pb)."""
        p = self.getAbsPath()
        return bool(p) and os.path.isfile(os.path.join(p, "saved_model.pb"))

    def getBaseModel(self) -> str:
        return self._baseModel.get()

    def setBaseModel(self, value: str) -> None:
        self._baseModel.set(value)

    def getTrainingPairs(self):
        return self._trainingPairs.get()

    def setTrainingPairs(self, value: int) -> None:
        self._trainingPairs.set(value)

    def getTiltsPerGap(self):
        return self._tiltsPerGap.get()

    def setTiltsPerGap(self, value: int) -> None:
        self._tiltsPerGap.set(value)

    def getFiles(self):
        return {self.getPath()} if self.getPath() else set()

    def __str__(self):
        return "CryoTigerModel (%s)" % (os.path.basename(self.getPath() or "") or "no path")
