"""The models: detectors and thresholders (scikit-learn contract, ``rca.protocols``).

Registries are plain dicts ``name -> class``; ``rca.wiring`` picks from them by settings.
"""

from models.changepoint import BOCPDDetector, CUSUMDetector
from models.deviation import NSigmaDeviation, RobustDeviation
from models.drift_detector import DistributionDrift
from models.gpu import DropToZero, SaturationLevel, XidEvents
from models.latency import QuantileShift, TailShift
from models.llm import LoadAdjustedLatency
from models.multivariate import IsolationForestScore, LOFScore, PCAReconstruction, RobustPCAEnsemble
from models.presence import Vanished
from models.seasonal import SeasonalDeviation
from models.smoothing import EWMAResidual, HoltWintersResidual
from models.streaming import StreamingNAB
from models.thresholds import CalibratedThreshold, FixedThreshold, QuantileThreshold

DETECTORS = {
    "robust_deviation": RobustDeviation,
    "nsigma": NSigmaDeviation,
    "vanished": Vanished,
    "seasonal_deviation": SeasonalDeviation,
    "ewma_residual": EWMAResidual,
    "holt_winters_residual": HoltWintersResidual,
    "cusum": CUSUMDetector,
    "bocpd": BOCPDDetector,
    "xid_events": XidEvents,
    "saturation_level": SaturationLevel,
    "drop_to_zero": DropToZero,
    "quantile_shift": QuantileShift,
    "tail_shift": TailShift,
    "load_adjusted_latency": LoadAdjustedLatency,
    "distribution_drift": DistributionDrift,
    "isolation_forest": IsolationForestScore,
    "lof": LOFScore,
    "pca_reconstruction": PCAReconstruction,
    "robust_pca_ensemble": RobustPCAEnsemble,
    "streaming_nab": StreamingNAB,
}
THRESHOLDERS = {
    "fixed": FixedThreshold,
    "quantile": QuantileThreshold,
    "calibrated": CalibratedThreshold,
}

__all__ = ["DETECTORS", "THRESHOLDERS", "BOCPDDetector", "CUSUMDetector", "CalibratedThreshold",
           "DistributionDrift", "DropToZero", "EWMAResidual", "FixedThreshold", "HoltWintersResidual",
           "IsolationForestScore", "LOFScore", "LoadAdjustedLatency", "NSigmaDeviation",
           "PCAReconstruction", "QuantileShift", "QuantileThreshold", "RobustDeviation",
           "RobustPCAEnsemble", "SaturationLevel", "SeasonalDeviation", "StreamingNAB", "TailShift",
           "Vanished", "XidEvents"]
