"""The models: detectors and thresholders (scikit-learn contract, ``rca.protocols``).

Registries are plain dicts ``name -> class``; ``rca.wiring`` picks from them by settings.
"""

from models.deviation import NSigmaDeviation, RobustDeviation
from models.presence import Vanished
from models.thresholds import FixedThreshold, QuantileThreshold

DETECTORS = {
    "robust_deviation": RobustDeviation,
    "nsigma": NSigmaDeviation,
    "vanished": Vanished,
}
THRESHOLDERS = {
    "fixed": FixedThreshold,
    "quantile": QuantileThreshold,
}

__all__ = ["DETECTORS", "THRESHOLDERS", "FixedThreshold", "NSigmaDeviation", "QuantileThreshold",
           "RobustDeviation", "Vanished"]
