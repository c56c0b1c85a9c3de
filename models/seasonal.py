"""Seasonal baseline: deviation from a robust daily (or weekly) profile, chosen per series.

Time. A profile needs the wall-clock phase of every column, but the detector contract only
passes matrices. The phase comes from constructor parameters (so ``get_params`` round-trips):

* ``step_s`` — seconds between columns; ``t0_s`` — unix time of column 0 of the *fit* data;
* ``anomaly_score(X)`` assumes X continues right after the fit data (column 0 of X is at
  ``t0_s + n_fit * step_s``) unless ``score_t0_s`` is set, in which case column 0 of X is at
  ``score_t0_s``. The engine sets ``t0_s``/``step_s`` before ``fit`` and, when the scored
  window does not follow the baseline directly, ``score_t0_s`` (``set_params``) before scoring.

Phase bins are ``bin_s`` wide (widened so every bin holds >= 8 fit samples), anchored at unix 0
(UTC midnight; weeks start on a Thursday, which does not matter as long as fit and score share
the anchor).

Model choice, per series. The plain robust baseline (median, scale as ``RobustDeviation``) is
the fallback. A daily profile is considered when the fit history holds >= ``min_periods`` full
days; a weekly one when it holds >= max(2, ``min_periods``) full weeks. ``method="profile"``
(default, vectorised over all series): the profile is the per-(series, phase bin) mean of the
values winsorised at +-3 robust scales around the bin median; the residual scale is the robust
scale of leave-one-period-out residuals (each fit sample against the profile of the other
periods), i.e. of the error the profile makes on data it has not seen. ``method="stl"``:
statsmodels STL on the bin-averaged series, one series at a time (small batches only); profile =
last trend value + the mean seasonal component per phase bin. The profile is used when it
explains the variance: strength = 1 - (mean |residual| / mean |x - median|)^2 >=
``min_strength`` (Hyndman's seasonal strength with mean absolute deviations: the IQR would not
see a peak that fills only a few hours a day, a variance would let one baseline spike decide).
Scales are floored like ``RobustDeviation`` and also at the data's resolution (the smallest step
between its values, 1 for counts), so a one-count change in a low-count series is not a 10-sigma
event. Weekly wins over daily only if it is stronger by 0.05 (it has fewer samples per bin, so
it overfits more).

Scores are pointwise given the fitted profile, so the detector is causal.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from models._robust import as_float_matrix, robust_center_scale
from models.base import BaseDetector
from rca.errors import BadInput

__all__ = ["SeasonalDeviation"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
_KIND_NAMES = ("robust", "daily", "weekly")
_MIN_BIN_SAMPLES = 8


def _phase_bins(t0_s: float, step_s: float, n: int, period_s: float, bin_s: float) -> np.ndarray:
    t = t0_s + step_s * np.arange(n, dtype=np.float64)
    n_bins = int(math.ceil(period_s / bin_s))
    return np.minimum((np.mod(t, period_s) // bin_s).astype(np.intp), n_bins - 1)


def _binned_median(X: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Median per (row, bin) over the columns in each bin; NaN for empty bins. One gather + sort."""
    order = np.argsort(bins, kind="stable")
    counts = np.bincount(bins, minlength=n_bins)
    width = int(counts.max()) if counts.size else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(width)[None, :]
    idx = np.where(slot < counts[:, None], starts[:, None] + slot, -1)  # [n_bins, width]
    cols = np.where(idx >= 0, order[np.clip(idx, 0, None)], 0)
    G = X[:, cols]  # [n, n_bins, width]
    G[:, idx < 0] = np.nan
    G.sort(axis=2)
    cnt = np.count_nonzero(~np.isnan(G), axis=2)
    lo = np.maximum(cnt - 1, 0) // 2
    hi = np.maximum(cnt, 1) // 2
    v_lo = np.take_along_axis(G, lo[..., None], axis=2)[..., 0]
    v_hi = np.take_along_axis(G, hi[..., None], axis=2)[..., 0]
    return np.where(cnt > 0, (v_lo + v_hi) / 2, np.nan).astype(X.dtype, copy=False)


def _cross_fit(X: np.ndarray, bins: np.ndarray, n_bins: int, period_idx: np.ndarray,
               med: np.ndarray, rel_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(profile [n, n_bins], leave-one-period-out prediction [n, T]).

    Values are first winsorised at +-3 robust scales around the per-bin median ``med``; the
    profile is then the per-bin mean, and every fit sample also gets the mean of its bin over the
    *other* periods. Its residual is an honest estimate of the error on new data (in-sample
    residuals are too small: the profile was fitted to them, and neighbouring samples of the
    same day are correlated). Sums per (period, bin) come from one sort + ``np.add.reduceat``."""
    n, t = X.shape
    base = med[:, bins]
    r = X - base
    _, s0 = robust_center_scale(r, rel_floor, 0.0)
    s0 = np.where(np.isnan(s0), 0, s0)[:, None]
    valid = ~np.isnan(X)
    W = np.where(valid, base + np.clip(np.nan_to_num(r), -3 * s0, 3 * s0), 0).astype(X.dtype)
    n_p = int(period_idx.max()) + 1 if t else 1
    key = period_idx * n_bins + bins
    order = np.argsort(key, kind="stable")
    uniq, starts = np.unique(key[order], return_index=True)
    S = np.zeros((n, n_p * n_bins), dtype=np.float64)
    C = np.zeros((n, n_p * n_bins), dtype=np.float64)
    S[:, uniq] = np.add.reduceat(W[:, order], starts, axis=1)
    C[:, uniq] = np.add.reduceat(valid[:, order].astype(np.float32), starts, axis=1)
    tot = S.reshape(n, n_p, n_bins).sum(axis=1)
    cnt = C.reshape(n, n_p, n_bins).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(cnt > 0, tot / cnt, np.nan)
        rest = cnt[:, bins] - C[:, key]
        lopo = np.where(rest > 0, (tot[:, bins] - S[:, key]) / rest, prof[:, bins])
    return prof.astype(X.dtype), lopo.astype(X.dtype)


def _stl_profile(X: np.ndarray, bins: np.ndarray, n_bins: int, step_s: float, bin_s: float) -> np.ndarray:
    """Profile per (row, bin) from statsmodels STL on bin-averaged data; loops over rows."""
    from statsmodels.tsa.seasonal import STL

    f = max(1, int(round(bin_s / step_s)))
    n_blocks = X.shape[1] // f
    out = np.full((X.shape[0], n_bins), np.nan, dtype=X.dtype)
    if n_blocks < 2 * n_bins:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        blocks = np.nanmean(X[:, : n_blocks * f].reshape(X.shape[0], n_blocks, f), axis=2)
    block_bins = bins[: n_blocks * f : f]
    for i in range(X.shape[0]):
        y = blocks[i]
        ok = ~np.isnan(y)
        if ok.sum() < 2 * n_bins:
            continue
        y = np.interp(np.arange(y.size), np.flatnonzero(ok), y[ok])
        res = STL(y, period=n_bins, robust=True).fit()
        seas = np.bincount(block_bins, weights=res.seasonal, minlength=n_bins)
        cnt = np.bincount(block_bins, minlength=n_bins)
        prof = np.where(cnt > 0, seas / np.maximum(cnt, 1), np.nan) + res.trend[-1]
        out[i] = prof
    return out


class SeasonalDeviation(BaseDetector):
    """|x - profile[phase(t)]| / residual scale, or the plain robust deviation (see module doc)."""

    def __init__(self, step_s: float = 30.0, t0_s: float = 0.0, score_t0_s: float | None = None,
                 period_s: float = DAY_S, weekly: bool = True, bin_s: float = 300.0, min_periods: int = 2,
                 min_strength: float = 0.3, method: str = "profile", rel_floor: float = 0.02,
                 abs_floor: float = 1e-9, causal: bool = True) -> None:
        self.step_s = step_s
        self.t0_s = t0_s
        self.score_t0_s = score_t0_s
        self.period_s = period_s
        self.weekly = weekly
        self.bin_s = bin_s
        self.min_periods = min_periods
        self.min_strength = min_strength
        self.method = method
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    # -- fitting ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.method not in ("profile", "stl"):
            raise BadInput(f"unknown method {self.method!r}", field="method", fix="use 'profile' or 'stl'")
        if not self.step_s > 0 or not self.period_s > 0 or not self.bin_s > 0:
            raise BadInput("step_s, period_s and bin_s must be > 0", field="step_s",
                           fix="pass the sampling step and period in seconds")

    def _bin_width(self, period_s: float) -> float:
        """``bin_s``, widened (to a multiple of ``step_s``) so each bin holds >= 8 fit samples."""
        n_periods = max(1, int(self.n_fit_ * self.step_s // period_s))
        need = self.step_s * math.ceil(_MIN_BIN_SAMPLES / n_periods)
        return float(min(max(self.bin_s, self.step_s, need), period_s))

    def _profile(self, X: np.ndarray, period_s: float,
                 method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(profile [n, n_bins], residual scale [n], strength [n], honest in-sample residuals [n, T]).

        ``profile``: residuals are leave-one-period-out (``_cross_fit``). ``stl``: in-sample
        residuals inflated by sqrt(1 + pi / (2 m)) (m samples per bin), the variance of a new
        point around a median of m i.i.d. samples."""
        bin_s = self._bin_width(period_s)
        n_bins = int(math.ceil(period_s / bin_s))
        bins = _phase_bins(self.t0_s, self.step_s, X.shape[1], period_s, bin_s)
        t = self.t0_s + self.step_s * np.arange(X.shape[1], dtype=np.float64)
        period_idx = (np.floor(t / period_s) - np.floor(self.t0_s / period_s)).astype(np.intp)
        if method == "stl":
            prof = _stl_profile(X, bins, n_bins, self.step_s, bin_s)
            prof = np.where(np.isnan(prof), self.center_[:, None], prof)
            resid = X - prof[:, bins]
            resid *= math.sqrt(1 + math.pi / (2 * max(1.0, X.shape[1] / n_bins)))
        else:
            med = _binned_median(X, bins, n_bins)
            med = np.where(np.isnan(med), self.center_[:, None], med)
            prof, lopo = _cross_fit(X, bins, n_bins, period_idx, med, self.rel_floor)
            prof = np.where(np.isnan(prof), self.center_[:, None], prof)
            resid = X - lopo
        _, rscale = robust_center_scale(resid, 0.0, 0.0)
        floor = np.fmax.reduce([self.rel_floor * np.abs(self.center_), np.full_like(rscale, self.abs_floor),
                                self.quantum_])
        rscale = np.fmax(rscale, floor)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanmean(np.abs(X - self.center_[:, None]), axis=1)
            strength = np.clip(1.0 - (np.nanmean(np.abs(resid), axis=1) / spread) ** 2, 0.0, 1.0)
        strength = np.where(np.isnan(strength), 0.0, strength)
        return prof, rscale, strength, resid

    def fit(self, X: np.ndarray) -> SeasonalDeviation:
        self._fit(X)
        return self

    def fit_signed_deviation(self, X: np.ndarray) -> np.ndarray:
        """Fit on X and return X's signed deviation, with honest (leave-one-period-out)
        residuals for the seasonal series: what a calibrator fitted on the baseline needs."""
        return self._fit(X, insample=True)

    def fit_score(self, X: np.ndarray) -> np.ndarray:
        """Fit on X and return X's in-sample scores (see ``fit_signed_deviation``)."""
        return np.abs(self.fit_signed_deviation(X))

    def _fit(self, X: np.ndarray, insample: bool = False) -> np.ndarray | None:
        self._check_params()
        X = as_float_matrix(X)
        n, t = X.shape
        self.center_, self.scale_, self.quantum_ = robust_center_scale(X, self.rel_floor, self.abs_floor,
                                                                       with_quantum=True)
        self.n_fit_ = int(t)
        kind = np.zeros(n, dtype=np.int8)
        seas_scale = self.scale_.copy()
        strength = np.zeros(n, dtype=np.float64)
        history_s = t * self.step_s
        self.profile_ = np.empty((n, 0), dtype=X.dtype)
        self.weekly_profile_ = np.empty((n, 0), dtype=X.dtype)
        Z = (X - self.center_[:, None]) / self.scale_[:, None] if insample else None
        if n and history_s >= self.min_periods * self.period_s:
            prof, rs, st, resid = self._profile(X, self.period_s, self.method)
            use = st >= self.min_strength
            kind[use], seas_scale[use], strength = 1, rs[use], st
            self.profile_ = prof
            if Z is not None:
                Z[use] = resid[use] / rs[use, None]
            if self.weekly and self.method == "profile" and history_s >= max(2, self.min_periods) * WEEK_S:
                wprof, wrs, wst, wres = self._profile(X, WEEK_S, "profile")
                usew = (wst >= self.min_strength) & (wst > strength + 0.05)
                kind[usew], seas_scale[usew], strength = 2, wrs[usew], np.fmax(strength, wst)
                self.weekly_profile_ = wprof
                if Z is not None:
                    Z[usew] = wres[usew] / wrs[usew, None]
        self.kind_ = kind
        self.seasonal_scale_ = seas_scale
        self.strength_ = strength
        return Z

    # -- scoring ---------------------------------------------------------------------------
    def model_names(self) -> np.ndarray:
        """Per series: 'robust', 'daily' or 'weekly' (the baseline the fit chose)."""
        self._check_fitted(np.empty((len(self.kind_), 0)), "kind_")
        return np.asarray(_KIND_NAMES)[self.kind_]

    def signed_deviation(self, X: np.ndarray, t0_s: float | None = None) -> np.ndarray:
        """(x - baseline) / scale. Column 0 of X is at ``t0_s`` if given, else at
        ``score_t0_s`` if set, else right after the fit data."""
        X = as_float_matrix(X)
        self._check_fitted(X, "center_")
        if t0_s is None:
            t0_s = self.score_t0_s if self.score_t0_s is not None else self.t0_s + self.n_fit_ * self.step_s
        Z = (X - self.center_[:, None]) / self.scale_[:, None]
        for k, prof, period in ((1, self.profile_, self.period_s), (2, self.weekly_profile_, WEEK_S)):
            rows = np.flatnonzero(self.kind_ == k)
            if rows.size == 0:
                continue
            bins = _phase_bins(t0_s, self.step_s, X.shape[1], period, self._bin_width(period))
            Z[rows] = (X[rows] - prof[rows][:, bins]) / self.seasonal_scale_[rows, None]
        return Z

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return np.abs(self.signed_deviation(X))

