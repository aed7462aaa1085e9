"""cryoTIGER protocols.  Scipion discovers the protocols imported here: add
one import line per protocol module (an import error drops the whole plugin;
tests/scipion/test_discovery.py checks that every protocol is found)."""
from .protocol_base import ProtCryoTigerBase
from .protocol_interpolate import ProtCryoTigerInterpolate
from .protocol_holdout import ProtCryoTigerHoldout
from .protocol_compare_tomograms import ProtCryoTigerCompareTomograms
from .protocol_picking_metrics import ProtCryoTigerPickingMetrics
from .protocol_segmentation_metrics import ProtCryoTigerSegmentationMetrics
from .protocol_ctf import ProtCryoTigerCtf
from .protocol_reconstruct import ProtCryoTigerReconstruct
from .protocol_train import ProtCryoTigerTrain
from .protocol_export import ProtCryoTigerExport
