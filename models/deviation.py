"""Deviation from a baseline window, one vectorised pass over the whole matrix.

``RobustDeviation`` is the BARO-style scorer: |x - median| / robust scale, where the scale is
the IQR (normalised to a standard deviation) with the MAD and a relative floor as fallbacks, so
a flat baseline does not turn every wiggle into an infinite score. ``NSigmaDeviation`` is the
classic mean/standard-deviation z-score. Both are pointwise given the fitted baseline, so they
are causal by construction.
"""

from __future__ import annotations

import warnings

import numpy as np

from models.base import BaseDetector, as_matrix

__all__ = ["NSigmaDeviation", "RobustDeviation"]


def _robust_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: 25th/50th/75th percentile and median absolute deviation, NaN ignored; exactly
    ``np.nanpercentile(X, [25, 50, 75], axis=1)`` and ``np.nanmedian(|X - med|, axis=1)``.
    Rows without NaN take one vectorised ``np.percentile`` / ``np.median`` (the nan-functions
    loop over rows in Python and run the same computation per row); the others keep the
    nan-functions. (For rows shorter than 600, ``np.nanmedian`` goes through masked arrays,
    which sum the two middle values, so a huge |deviation| could overflow there but not in
    ``np.median``: such rows also keep ``np.nanmedian``.)"""
    clean = ~np.isnan(X).any(axis=1)
    if X.dtype != np.float64 or not clean.any():
        q1, med, q3 = np.nanpercentile(X, [25, 50, 75], axis=1)
        return q1, med, q3, np.nanmedian(np.abs(X - med[:, None]), axis=1)
    q1, med, q3 = np.empty((3, X.shape[0]))
    mad = np.empty(X.shape[0])
    rest = ~clean
    q1[clean], med[clean], q3[clean] = np.percentile(X[clean], [25, 50, 75], axis=1)
    if rest.any():
        q1[rest], med[rest], q3[rest] = np.nanpercentile(X[rest], [25, 50, 75], axis=1)
    D = np.abs(X - med[:, None])
    if X.shape[1] < 600:
        big = np.zeros(X.shape[0], dtype=bool)
        big[clean] = ~(D[clean].max(axis=1) < 1e300)
        rest, clean = rest | big, clean & ~big
    if clean.any():
        mad[clean] = np.median(D[clean], axis=1)
    if rest.any():
        mad[rest] = np.nanmedian(D[rest], axis=1)
    return q1, med, q3, mad


class RobustDeviation(BaseDetector):
    """|x - median_b| / scale_b.

    scale = max(IQR / 1.349, 1.4826 * MAD, rel_floor * |median|, abs_floor). ``rel_floor``
    keeps a series that was perfectly flat from scoring huge on a tiny move.
    """

    def __init__(self, rel_floor: float = 0.02, abs_floor: float = 1e-9, causal: bool = True) -> None:
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def fit(self, X: np.ndarray) -> RobustDeviation:
        X = as_matrix(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if X.shape[1] == 0 or X.shape[0] == 0:
                med = np.full(X.shape[0], np.nan)
                q1 = q3 = mad = med
            else:
                q1, med, q3, mad = _robust_rows(X)
        scale = np.fmax.reduce([(q3 - q1) / 1.349, 1.4826 * mad, self.rel_floor * np.abs(med),
                                np.full_like(med, self.abs_floor)])
        self.median_ = med
        self.scale_ = scale
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "median_")
        return np.abs(X - self.median_[:, None]) / self.scale_[:, None]

    def signed_deviation(self, X: np.ndarray) -> np.ndarray:
        """(x - median) / scale: the direction the score came from."""
        X = as_matrix(X)
        self._check_fitted(X, "median_")
        return (X - self.median_[:, None]) / self.scale_[:, None]


class NSigmaDeviation(BaseDetector):
    """|x - mean_b| / std_b (std floored like ``RobustDeviation``)."""

    def __init__(self, rel_floor: float = 0.02, abs_floor: float = 1e-9, causal: bool = True) -> None:
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def fit(self, X: np.ndarray) -> NSigmaDeviation:
        X = as_matrix(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(X, axis=1) if X.shape[1] else np.full(X.shape[0], np.nan)
            std = np.nanstd(X, axis=1) if X.shape[1] else np.full(X.shape[0], np.nan)
        self.mean_ = mean
        self.scale_ = np.fmax.reduce([std, self.rel_floor * np.abs(mean), np.full_like(mean, self.abs_floor)])
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "mean_")
        return np.abs(X - self.mean_[:, None]) / self.scale_[:, None]
