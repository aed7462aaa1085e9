"""Scipion objects of the cryoTIGER plugin (discovered from this module)."""
from .model import CryoTigerModel
