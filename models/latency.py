"""Latency shifts from histogram quantiles (``rca.signals.histogram_quantile`` makes them).

``QuantileShift`` scores an upward shift of a latency quantile on a log scale (latency is
multiplicative: 0.1 s -> 0.2 s is as big a move as 1 s -> 2 s), with a floor at the
histogram's bucket ``resolution`` so a quantile hopping between two bucket bounds is not a
shift. ``TailShift`` is the tail-only case — p99 up while p50 stays flat, the signature of a
slow minority (one bad replica, a cold cache shard, GC pauses) — scoring
``max(0, z_tail - max(0, z_median))``. Pass the p50 rows of the same histograms as the
optional second argument (row i of ``median`` belongs to row i of ``X``); without it the
tail shift is the plain quantile shift. Both are pointwise given the fit, so causal.
"""

from __future__ import annotations

import warnings

import numpy as np

from models.base import BaseDetector, as_matrix

__all__ = ["QuantileShift", "TailShift"]


def _log_fit(X: np.ndarray, rel_floor: float, eps: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.log(np.maximum(X, 0) + eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if X.size:
            q1, med, q3 = np.nanpercentile(y, [25, 50, 75], axis=1)
        else:
            q1 = med = q3 = np.full(X.shape[0], np.nan)
    scale = np.fmax((q3 - q1) / 1.349, rel_floor)
    return med, np.where(np.isnan(scale), rel_floor, scale)


class QuantileShift(BaseDetector):
    """Upward shift of log(quantile) in robust-scale units; ``resolution`` (seconds, one value
    or one per row) floors the scale at log((m + resolution) / m)."""

    def __init__(self, rel_floor: float = 0.05, resolution: float | list[float] = 0.0, eps: float = 1e-6,
                 causal: bool = True) -> None:
        self.rel_floor = rel_floor
        self.resolution = resolution
        self.eps = eps
        self.causal = causal

    def fit(self, X: np.ndarray) -> QuantileShift:
        X = as_matrix(X)
        med, scale = _log_fit(X, self.rel_floor, self.eps)
        m = np.exp(np.nan_to_num(med, nan=0.0))
        res = np.log((m + np.broadcast_to(np.asarray(self.resolution, float), m.shape)) / np.maximum(m, self.eps))
        self.median_ = med
        self.scale_ = np.fmax(scale, np.nan_to_num(res))
        return self

    def signed_deviation(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "median_")
        return (np.log(np.maximum(X, 0) + self.eps) - self.median_[:, None]) / self.scale_[:, None]

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        d = self.signed_deviation(X)
        return np.where(np.isnan(d), np.nan, np.maximum(d, 0.0))


class TailShift(BaseDetector):
    def __init__(self, rel_floor: float = 0.05, resolution: float | list[float] = 0.0, eps: float = 1e-6,
                 causal: bool = True) -> None:
        self.rel_floor = rel_floor
        self.resolution = resolution
        self.eps = eps
        self.causal = causal

    def fit(self, X: np.ndarray, median: np.ndarray | None = None) -> TailShift:
        self.tail_ = QuantileShift(self.rel_floor, resolution=self.resolution, eps=self.eps).fit(X)
        self.median_fit_ = None if median is None else QuantileShift(self.rel_floor, eps=self.eps).fit(median)
        return self

    def anomaly_score(self, X: np.ndarray, median: np.ndarray | None = None) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "tail_")
        tail = self.tail_.signed_deviation(X)
        if median is None or self.median_fit_ is None:
            return np.where(np.isnan(tail), np.nan, np.maximum(tail, 0.0))
        mid = np.nan_to_num(self.median_fit_.signed_deviation(median), nan=0.0)
        return np.where(np.isnan(tail), np.nan, np.maximum(tail - np.maximum(mid, 0.0), 0.0))

    def _check_fitted(self, X: np.ndarray, attr: str) -> None:
        if not hasattr(self, "tail_"):
            from rca.errors import BadInput

            raise BadInput("TailShift is not fitted", field="fit", fix="call fit(baseline) first")
        self.tail_._check_fitted(X, "median_")
