"""Series that vanish are anomalies, not silence (a GPU that fell off the bus stops reporting).

``Vanished`` scores 1.0 where a series that was present in the baseline has no sample, 0.0
where it has one, NaN for series that were mostly absent in the baseline too.
"""

from __future__ import annotations

import numpy as np

from models.base import BaseDetector, as_matrix

__all__ = ["Vanished"]


class Vanished(BaseDetector):
    def __init__(self, min_presence: float = 0.8, causal: bool = True) -> None:
        self.min_presence = min_presence
        self.causal = causal

    def fit(self, X: np.ndarray) -> Vanished:
        X = as_matrix(X)
        self.presence_ = (~np.isnan(X)).mean(axis=1) if X.shape[1] else np.zeros(X.shape[0])
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "presence_")
        out = np.isnan(X).astype(float)
        out[self.presence_ < self.min_presence] = np.nan
        return out
