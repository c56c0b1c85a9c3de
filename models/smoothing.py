"""Smoothing residuals: how far each sample is from what the recent past predicted.

``EWMAResidual``: causal exponentially weighted mean m and variance v (West's recursions),
score_t = |x_t - m_{t-1}| / sqrt(v_{t-1}). Both recursions are first-order linear filters, so
they run as two ``scipy.signal.lfilter`` calls along the rows: no Python loop over time.

``HoltWintersResidual``: additive Holt-Winters (level, trend, season of ``period_s``) in
error-correction form; score = |one-step-ahead residual| / robust scale of the in-sample
residuals. The recursion is sequential, so it loops over time with numpy ops over all series
(O(T) vector ops); the smoothing constants are fixed parameters, not optimised per series
(optimisation would cost a per-series solver and rarely changes which points stand out).

Both keep their state at the end of the fit data: ``anomaly_score(X)`` assumes X continues
right after the fit data (the first column is predicted from the last fitted state). NaN
samples do not update the state (EWMA: forward-filled; HW: the forecast stands in) and score
NaN. ``fit_score(X)`` fits and returns the in-sample scores of X (what calibration needs).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.signal import lfilter

from models._robust import as_float_matrix, ffill_rows, nan_quantiles, robust_center_scale
from models.base import BaseDetector

__all__ = ["EWMAResidual", "HoltWintersResidual"]


def _ewma_path(X: np.ndarray, alpha: float, m0: np.ndarray, v0: np.ndarray,
               floor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of X starting from state (m0, v0); returns (scores, m_end, v_end)."""
    n, t = X.shape
    if t == 0:
        return np.empty((n, 0), dtype=X.dtype), m0, v0
    dt = X.dtype
    nan = np.isnan(X)
    Xf = ffill_rows(X, m0)
    Xf = np.where(np.isnan(Xf), 0, Xf) if nan.any() else Xf  # rows with no state at all
    a = dt.type(alpha)
    den = np.array([1, -(1 - a)], dtype=dt)
    m = lfilter(np.array([a], dtype=dt), den, Xf, axis=1, zi=((1 - a) * m0)[:, None].astype(dt))[0]
    r = Xf - np.concatenate([m0[:, None].astype(dt), m[:, :-1]], axis=1)
    v = lfilter(np.array([a * (1 - a)], dtype=dt), den, r * r, axis=1,
                zi=((1 - a) * v0)[:, None].astype(dt))[0]
    v_prev = np.concatenate([v0[:, None].astype(dt), v[:, :-1]], axis=1)
    np.maximum(v_prev, (floor * floor)[:, None].astype(dt), out=v_prev)
    s = np.abs(r, out=r)
    s /= np.sqrt(v_prev, out=v_prev)
    s[nan] = np.nan
    return s, m[:, -1].copy(), v[:, -1].copy()


class EWMAResidual(BaseDetector):
    """|x_t - ewma_{t-1}| / ewm_std_{t-1} (see module doc).

    The starting state of ``fit`` is the median and robust variance of the first
    ceil(2 / alpha) columns; the std is floored at max(rel_floor * |m0|, abs_floor, resolution of
    those columns), so counts that sat still for a while do not score a one-count step as huge.
    """

    def __init__(self, alpha: float = 0.05, rel_floor: float = 0.02, abs_floor: float = 1e-9,
                 causal: bool = True) -> None:
        self.alpha = alpha
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def fit(self, X: np.ndarray) -> EWMAResidual:
        self.fit_score(X)
        return self

    def fit_score(self, X: np.ndarray) -> np.ndarray:
        """Fit on X and return the scores each column got while the state was built."""
        X = as_float_matrix(X)
        w = min(X.shape[1], max(2, math.ceil(2 / self.alpha)))
        m0, s0, qu = robust_center_scale(X[:, :w], self.rel_floor, self.abs_floor, True)
        with np.errstate(invalid="ignore"):  # integer-valued over the whole fit: resolution >= 1
            qu = np.where(np.all((np.round(X) == X) | np.isnan(X), axis=1), np.fmax(qu, 1.0), qu)
        self.floor_ = np.fmax.reduce([self.rel_floor * np.abs(m0), np.full_like(m0, self.abs_floor), qu])
        self.floor_ = np.where(np.isnan(m0), np.nan, self.floor_)
        scores, m_end, v_end = _ewma_path(X, self.alpha, m0, s0 * s0, self.floor_)
        self.mean_, self.var_ = m_end, v_end
        return scores

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_float_matrix(X)
        self._check_fitted(X, "mean_")
        return _ewma_path(X, self.alpha, self.mean_, self.var_, self.floor_)[0]


class HoltWintersResidual(BaseDetector):
    """Additive Holt-Winters one-step-ahead residuals, vectorised across series.

    Error-correction form with e_t = x_t - (l + b + s_{t mod m}):
    l += b + alpha e; b += alpha beta e; s_{t mod m} += gamma (1 - alpha) e.
    The season (m = period_s / step_s columns) is used only when the fit history holds
    >= ``min_periods`` periods; it starts from the mean per phase over those periods.
    """

    def __init__(self, alpha: float = 0.2, beta: float = 0.01, gamma: float = 0.1, period_s: float = 86_400.0,
                 step_s: float = 30.0, min_periods: int = 2, rel_floor: float = 0.02, abs_floor: float = 1e-9,
                 causal: bool = True) -> None:
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.period_s = period_s
        self.step_s = step_s
        self.min_periods = min_periods
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def _run(self, X: np.ndarray, level: np.ndarray, trend: np.ndarray, season: np.ndarray,
             phase: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Residuals [n, T] and the end state; ``season`` is [m, n] (m may be 0), not mutated."""
        XT = np.ascontiguousarray(X.T)
        R = np.empty_like(XT)
        lv, tr, se = level.copy(), trend.copy(), season.copy()
        m = se.shape[0]
        a, ab, g = self.alpha, self.alpha * self.beta, self.gamma * (1 - self.alpha)
        for t in range(XT.shape[0]):
            f = lv + tr
            if m:
                j = (phase + t) % m
                f = f + se[j]
            e = XT[t] - f
            R[t] = e
            e = np.nan_to_num(e, nan=0.0)
            lv += tr + a * e
            tr += ab * e
            if m:
                se[j] += g * e
        return R.T, lv, tr, se

    def fit_score(self, X: np.ndarray) -> np.ndarray:
        """Fit on X and return the in-sample one-step-ahead scores."""
        X = as_float_matrix(X)
        n, t = X.shape
        m = max(1, int(round(self.period_s / self.step_s)))
        w = min(t, max(2, math.ceil(2 / self.alpha)))
        center, _ = robust_center_scale(X, self.rel_floor, self.abs_floor)
        season = np.zeros((0, n), dtype=X.dtype)
        if t >= self.min_periods * m and m > 1:
            k = t // m
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                P = X[:, : k * m].reshape(n, k, m)
                season = np.nanmean(P - np.nanmean(P, axis=2, keepdims=True), axis=1).T
            season = np.nan_to_num(season, nan=0.0).astype(X.dtype)
        level0 = nan_quantiles(X[:, :w], (0.5,))[:, 0] if t else center
        level0 = np.where(np.isnan(level0), center, level0)
        if season.shape[0]:
            level0 = level0 - season[:w].mean(axis=0) if t else level0
        R, lv, tr, se = self._run(X, np.nan_to_num(level0), np.zeros(n, dtype=X.dtype), season, 0)
        burn = min(t // 4, w)
        _, rscale = robust_center_scale(R[:, burn:], 0.0, 0.0)
        floor = np.fmax(self.rel_floor * np.abs(center), self.abs_floor)
        self.scale_ = np.where(np.isnan(center), np.nan, np.fmax(rscale, floor))
        self.level_, self.trend_, self.season_ = lv, tr, se
        self.phase_ = int(t % m) if se.shape[0] else 0
        return np.abs(R) / self.scale_[:, None]

    def fit(self, X: np.ndarray) -> HoltWintersResidual:
        self.fit_score(X)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_float_matrix(X)
        self._check_fitted(X, "level_")
        R = self._run(X, self.level_, self.trend_, self.season_, self.phase_)[0]
        return np.abs(R) / self.scale_[:, None]
