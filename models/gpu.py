"""GPU fault detectors over DCGM exporter series (names and units: telemetry reference §2).

* ``XidEvents`` — ``DCGM_FI_DEV_XID_ERRORS`` is a gauge holding the **last XID value** (0 =
  none), not a count. An event is the value changing to a non-zero code; the score is that
  code's severity (``XID_SEVERITY``) from the change on, for as long as the gauge holds the new
  value. A code already held through the baseline is old news and scores 0.
* ``SaturationLevel`` — how close a gauge is to a hard limit (framebuffer used / total, KV cache
  usage as a fraction, throttled fraction of time): 0 while the level stays within what the
  baseline saw, rising to 1 as it approaches ``limit``. Use it where "near the ceiling" is
  the fault, whatever the baseline's spread was.
* ``DropToZero`` — a throughput that stops while it was flowing (NVLink/PCIe bandwidth,
  generation tokens): 1 where the value falls below ``frac`` of the baseline median.

All three are pointwise given the fitted baseline (``XidEvents`` also looks one column back),
so they are causal.
"""

from __future__ import annotations

import warnings

import numpy as np

from models._robust import ffill_rows
from models.base import BaseDetector, as_matrix

__all__ = ["XID_SEVERITY", "DropToZero", "SaturationLevel", "XidEvents", "xid_severity"]

# 1.0 = the GPU is gone or its memory is corrupt (drain the node); 0.5 = needs a reset;
# 0.2 = an application fault the GPU survives. Unknown codes score 0.5.
XID_SEVERITY: dict[int, float] = {
    79: 1.0, 48: 1.0, 64: 1.0, 95: 1.0, 119: 0.9, 120: 0.9, 74: 0.8, 94: 0.7, 63: 0.5, 92: 0.5,
    109: 0.5, 154: 0.6, 13: 0.2, 31: 0.2, 43: 0.2, 45: 0.1,
}


def xid_severity(codes: np.ndarray) -> np.ndarray:
    """Severity in [0, 1] per XID code (0 for code 0 / NaN, 0.5 for unknown codes)."""
    c = np.asarray(codes, dtype=float)
    out = np.where(np.isnan(c) | (c <= 0), 0.0, 0.5)
    for code, sev in XID_SEVERITY.items():
        out = np.where(c == code, sev, out)
    return out


class XidEvents(BaseDetector):
    def __init__(self, causal: bool = True) -> None:
        self.causal = causal

    def fit(self, X: np.ndarray) -> XidEvents:
        X = as_matrix(X)
        last = np.full(X.shape[0], np.nan)
        if X.shape[1]:
            ok = ~np.isnan(X)
            idx = np.where(ok.any(axis=1), X.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), -1)
            has = idx >= 0
            last[has] = X[np.flatnonzero(has), idx[has]]
        self.baseline_code_ = np.nan_to_num(last, nan=0.0)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "baseline_code_")
        held = self.baseline_code_[:, None]
        # forward-fill so a gap does not end an event; an event = held value differs from baseline
        filled = ffill_rows(X, self.baseline_code_)
        score = np.where(filled != held, xid_severity(filled), 0.0)
        return np.where(np.isnan(X), np.nan, score)


class SaturationLevel(BaseDetector):
    """0 below the baseline's ``q`` quantile, linear to 1 at ``limit`` (same unit as X)."""

    def __init__(self, limit: float = 1.0, q: float = 0.99, causal: bool = True) -> None:
        self.limit = limit
        self.q = q
        self.causal = causal

    def fit(self, X: np.ndarray) -> SaturationLevel:
        X = as_matrix(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            hi = np.nanquantile(X, self.q, axis=1) if X.shape[1] else np.full(X.shape[0], np.nan)
        self.high_ = np.where(np.isnan(hi), 0.0, np.minimum(hi, self.limit * 0.999))
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "high_")
        span = np.maximum(self.limit - self.high_, 1e-12)[:, None]
        return np.clip((X - self.high_[:, None]) / span, 0.0, 1.0)


class DropToZero(BaseDetector):
    """1 where the value falls below ``frac`` × the baseline median of a series that flowed."""

    def __init__(self, frac: float = 0.1, causal: bool = True) -> None:
        self.frac = frac
        self.causal = causal

    def fit(self, X: np.ndarray) -> DropToZero:
        X = as_matrix(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(X, axis=1) if X.shape[1] else np.full(X.shape[0], np.nan)
        self.median_ = np.nan_to_num(med, nan=0.0)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "median_")
        flowing = (self.median_ > 0)[:, None]
        out = np.where(flowing & (self.frac * self.median_[:, None] > X), 1.0, 0.0)
        return np.where(np.isnan(X), np.nan, out)

