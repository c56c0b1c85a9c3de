"""Thresholders turn scores into flags; kept apart from scoring (``rca.protocols.Thresholder``)."""

from __future__ import annotations

import numpy as np

from models.base import BaseDetector, as_matrix

__all__ = ["FixedThreshold", "QuantileThreshold"]


class FixedThreshold(BaseDetector):
    """Flag scores >= ``threshold``."""

    def __init__(self, threshold: float = 3.0) -> None:
        self.threshold = threshold

    def fit(self, scores: np.ndarray) -> FixedThreshold:
        self.threshold_ = float(self.threshold)
        return self

    def flag(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        t = getattr(self, "threshold_", self.threshold)
        return np.where(np.isnan(s), False, s >= t)


class QuantileThreshold(BaseDetector):
    """Flag scores above the ``q`` quantile of the scores seen in ``fit`` (per row),
    times ``margin``. Use it to calibrate a threshold on a normal period."""

    def __init__(self, q: float = 0.99, margin: float = 1.0) -> None:
        self.q = q
        self.margin = margin

    def fit(self, scores: np.ndarray) -> QuantileThreshold:
        s = as_matrix(scores, "scores")
        with np.errstate(all="ignore"):
            t = np.nanquantile(s, self.q, axis=1) if s.shape[1] else np.full(s.shape[0], np.nan)
        self.threshold_ = np.where(np.isnan(t), np.inf, t * self.margin)
        return self

    def flag(self, scores: np.ndarray) -> np.ndarray:
        s = as_matrix(scores, "scores")
        return np.where(np.isnan(s), False, s > self.threshold_[:, None])
