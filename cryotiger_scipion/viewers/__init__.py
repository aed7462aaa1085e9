"""Viewers of the cryoTIGER plugin (discovered from this module)."""
from .viewer_holdout import CryoTigerHoldoutViewer
from .viewer_evaluation import (CryoTigerCompareTomogramsViewer, CryoTigerPickingMetricsViewer,
                                CryoTigerSegmentationMetricsViewer)
from .viewer_model import CryoTigerModelViewer
from .viewer_confidence import CryoTigerConfidenceViewer
