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
        """The model folder as stored (absolute or relative to the project)."""
        return self._path.get()

    def setPath(self, path: str) -> None:
        """Set the model folder (a SavedModel folder, see the class)."""
        self._path.set(path)

    def getAbsPath(self) -> str:
        """The model folder as an absolute path ('' when unset)."""
        return os.path.abspath(self.getPath()) if self.getPath() else ""

    def exists(self) -> bool:
        """True when the folder holds a SavedModel (saved_model.pb)."""
        p = self.getAbsPath()
        return bool(p) and os.path.isfile(os.path.join(p, "saved_model.pb"))

    def getBaseModel(self) -> str:
        """The model this one was fine-tuned from (folder or published name), or None."""
        return self._baseModel.get()

    def setBaseModel(self, value: str) -> None:
        """Set the model this one was fine-tuned from."""
        self._baseModel.set(value)

    def getTrainingPairs(self):
        """Number of training triplets used (int), or None when unknown."""
        return self._trainingPairs.get()

    def setTrainingPairs(self, value: int) -> None:
        """Set the number of training triplets used."""
        self._trainingPairs.set(value)

    def getTiltsPerGap(self):
        """The gap the model was trained for: synthetic tilts per gap (1 = midpoints)."""
        return self._tiltsPerGap.get()

    def setTiltsPerGap(self, value: int) -> None:
        """Set the number of synthetic tilts per gap it was trained for."""
        self._tiltsPerGap.set(value)

    def getFiles(self):
        """Files of this object for Scipion's copy/export: {model folder}, or an empty set."""
        return {self.getPath()} if self.getPath() else set()

    def __str__(self):
        return "CryoTigerModel (%s)" % (os.path.basename(self.getPath() or "") or "no path")
