"""Change-point detectors: CUSUM (level and variance) and Bayesian online change-point detection.

Both standardise with the robust center/scale of the fit data (``standardize=False`` takes X
as already standardised, e.g. the signed output of ``SeasonalDeviation``), both are causal and
both start every ``anomaly_score`` call from the in-control state.

``CUSUMDetector``. Two-sided tabular CUSUM on z (clipped to +-``clip`` so one spike cannot
fake a sustained shift; spikes are the pointwise detectors' job):
S+_t = max(0, S+_{t-1} + z_t - k), S-_t = max(0, S-_{t-1} - z_t - k), and a variance CUSUM
V_t = max(0, V_{t-1} + min(z_t^2, clip^2) - 1 - k_var). The Lindley recursion
S_t = max(0, S_{t-1} + u_t) has the closed form S_t = C_t - min(0, min_{s<=t} C_s) with
C = cumsum(u), so the whole matrix is three cumsums and three running minima: no loop over
time. score = max(S+ / h, S- / h, V / h_var) (1.0 = the classic alarm line). The defaults make
the two statistics comparable: on i.i.d. N(0, 1) data P(S > x) ~ exp(-2k x) = exp(-x) and
P(V > x) ~ exp(-0.4 x) for k_var = 1, so h_var = 12.5 = 2.5 h gives both the same tail in
units of their alarm line. NaN samples add
nothing and score NaN.

``BOCPDDetector``. Adams & MacKay (2007) with a Normal-Gamma prior (Student-t predictive),
constant hazard, run length truncated at ``max_run`` (the longest bin absorbs what would grow
past it), state arrays [n_series, max_run], loop over time with numpy over series. The run
starts in the state "one long run that holds the fit data" (the fit data's sufficient
statistics in the longest bin), so scoring does not open with a spurious change.
score_t = P(r_t < short_run | x_1..t): the posterior mass on runs that started in the last
``short_run`` steps. In a stable regime it stays near hazard * short_run; a few steps after a
change it jumps towards 1, then decays as the new run grows past ``short_run``. (P(r_t = 0)
alone is useless: with constant hazard it always equals the hazard.)
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import gammaln, logsumexp

from models._robust import as_float_matrix, robust_center_scale
from models.base import BaseDetector

__all__ = ["BOCPDDetector", "CUSUMDetector", "lindley"]


def lindley(U: np.ndarray) -> np.ndarray:
    """S_t = max(0, S_{t-1} + U_t), S_{-1} = 0, along rows, in closed form."""
    C = np.cumsum(U, axis=1)
    M = np.minimum.accumulate(C, axis=1)
    np.minimum(M, 0, out=M)
    C -= M
    return C


class _Standardizing(BaseDetector):
    def _fit_standardizer(self, X: np.ndarray) -> None:
        if self.standardize:
            self.center_, self.scale_ = robust_center_scale(X, self.rel_floor, self.abs_floor)
        else:
            self.center_ = np.zeros(X.shape[0], dtype=X.dtype)
            self.scale_ = np.ones(X.shape[0], dtype=X.dtype)

    def _z(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Standardised X; ``rows`` says which fitted series X's rows are (default: all, in order)."""
        X = as_float_matrix(X)
        if rows is None:
            self._check_fitted(X, "center_")
            c, s = self.center_, self.scale_
        else:
            c, s = self.center_[rows], self.scale_[rows]
        if not self.standardize:
            return X
        return (X - c[:, None]) / s[:, None]


class CUSUMDetector(_Standardizing):
    """Two-sided level CUSUM plus a variance CUSUM on robust-standardised data (module doc).

    ``long_run``: divide z by the long-run standard deviation of AR(1) noise,
    sqrt((1 + phi) / (1 - phi)) with phi the lag-1 autocorrelation of the fit data (clipped to
    [0, 0.9]): autocorrelated noise random-walks the CUSUM much further than white noise of the
    same variance, and this keeps the statistic's null tail close to the white-noise one.

    ``ref_halflife`` (columns; None = off): measure z against a slow causal exponential average
    of the (clipped) z, updated once per block of ref_halflife / 2 columns, instead of the fixed
    fit center, so slow drifts (a diurnal ramp the baseline did
    not cover) are tracked while a shift, which the slow reference follows only after about a
    half-life, still accumulates. Its state carries over from the end of the fit data.
    """

    def __init__(self, k: float = 0.5, h: float = 5.0, k_var: float = 1.0, h_var: float = 12.5,
                 clip: float = 4.0, long_run: bool = True, ref_halflife: float | None = None,
                 standardize: bool = True, rel_floor: float = 0.02,
                 abs_floor: float = 1e-9, causal: bool = True) -> None:
        self.k = k
        self.h = h
        self.k_var = k_var
        self.h_var = h_var
        self.clip = clip
        self.long_run = long_run
        self.ref_halflife = ref_halflife
        self.standardize = standardize
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def fit(self, X: np.ndarray) -> CUSUMDetector:
        self.fit_score(X)
        return self

    def fit_score(self, X: np.ndarray) -> np.ndarray:
        """Fit on X and return X's in-sample scores (reference starting at the fit center)."""
        X = as_float_matrix(X)
        self._fit_standardizer(X)
        self.ref_ = np.zeros(X.shape[0], dtype=X.dtype)
        Z = self._z(X)
        self.lr_scale_ = np.ones(X.shape[0], dtype=X.dtype)
        if self.long_run and X.shape[1] > 2:
            with warnings.catch_warnings():  # an all-NaN row has no mean: it stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                C = Z - np.nanmean(Z, axis=1, keepdims=True) if X.shape[0] else Z
            with np.errstate(invalid="ignore", divide="ignore"):
                phi = np.nansum(C[:, 1:] * C[:, :-1], axis=1) / np.nansum(C * C, axis=1)
            phi = np.clip(np.nan_to_num(phi), 0.0, 0.9)
            self.lr_scale_ = np.sqrt((1 + phi) / (1 - phi)).astype(X.dtype)
        stats, self.ref_ = self._stats(Z, self.ref_, self.lr_scale_)
        return self._combine(stats, X)

    def _stats(self, Z: np.ndarray, ref0: np.ndarray,
               lr: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        nan = np.isnan(Z)
        Z = np.clip(Z / lr[:, None], -self.clip, self.clip)
        ref_end = ref0
        if self.ref_halflife and Z.shape[1]:
            ref_end = self._subtract_block_reference(Z, nan, ref0)
        elif ref0.size:
            Z -= ref0[:, None].astype(Z.dtype)
        Z[nan] = 0.0
        dt = Z.dtype.type
        # both sides from one cumsum: C_t -+ k (t + 1) are the cumulative increments of S+ and -S-
        C = np.cumsum(Z, axis=1)
        K = dt(self.k) * np.arange(1, Z.shape[1] + 1, dtype=Z.dtype)
        up = C - K
        M = np.minimum.accumulate(up, axis=1)
        np.minimum(M, 0, out=M)
        up -= M
        C += K
        M = np.maximum.accumulate(C, axis=1)
        np.maximum(M, 0, out=M)
        M -= C
        down = M
        Z *= Z
        Z -= dt(1 + self.k_var)
        Z[nan] = 0.0
        var = lindley(Z)
        return (up, down, var), ref_end

    def _subtract_block_reference(self, Z: np.ndarray, nan: np.ndarray, ref0: np.ndarray) -> np.ndarray:
        """Z -= the slow reference, in place; returns the reference state after the last column.

        The reference is an exponential average of block means (blocks of half a half-life),
        and column t sees only blocks that ended before its own: causal, and one reshape-mean
        plus a loop over a few dozen blocks instead of a filter over every column."""
        n, t = Z.shape
        L = max(1, int(round(self.ref_halflife / 2)))
        nb = -(-t // L)
        d = 0.5 ** (L / self.ref_halflife)
        V = np.zeros((n, nb * L), dtype=Z.dtype)
        V[:, :t] = np.where(nan, 0, Z)
        cnt = np.zeros((n, nb * L), dtype=np.float32)
        cnt[:, :t] = ~nan
        sums = V.reshape(n, nb, L).sum(axis=2)
        cnts = cnt.reshape(n, nb, L).sum(axis=2)
        refs = np.empty((n, nb), dtype=Z.dtype)
        cur = ref0.astype(Z.dtype, copy=True)
        for k in range(nb):
            refs[:, k] = cur
            ok = cnts[:, k] > 0
            w = (1 - d) * cnts[:, k] / L  # a partial block moves the reference less
            cur = np.where(ok, cur + w * (sums[:, k] / np.maximum(cnts[:, k], 1) - cur), cur)
        V[:, :t] = Z
        V.reshape(n, nb, L)[...] -= refs[:, :, None]
        Z[...] = V[:, :t]
        return cur

    def _combine(self, stats: tuple[np.ndarray, ...], X: np.ndarray) -> np.ndarray:
        up, down, var = stats
        np.maximum(up, down, out=up)
        up /= up.dtype.type(self.h)
        var /= var.dtype.type(self.h_var)
        np.maximum(up, var, out=up)
        up[np.isnan(X)] = np.nan
        return up

    def statistics(self, X: np.ndarray,
                   rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S+, S-, V), each X's shape, NaN samples contributing nothing (``rows``: see ``onset``)."""
        Z = self._z(X, rows)
        sel = slice(None) if rows is None else rows
        return self._stats(Z, self.ref_[sel], self.lr_scale_[sel])[0]

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_float_matrix(X)
        return self._combine(self.statistics(X), X)

    def onset(self, X: np.ndarray, alarm: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Column where the run that led to the alarm at column ``alarm[i]`` started: one
        after the last column <= alarm where the statistic that alarmed was zero. ``rows``
        (fitted series indices of X's rows) lets a caller pass only the alarmed series."""
        up, down, var = self.statistics(X, rows)
        idx = np.arange(up.shape[0])
        a = np.clip(np.asarray(alarm, dtype=np.intp), 0, max(up.shape[1] - 1, 0))
        out = np.full(up.shape[0], -1, dtype=np.intp)
        if up.shape[1] == 0:
            return out
        vals = np.stack([up[idx, a] / self.h, down[idx, a] / self.h, var[idx, a] / self.h_var])
        which = np.argmax(vals, axis=0)
        stat = np.where((which == 0)[:, None], up, np.where((which == 1)[:, None], down, var))
        cols = np.arange(up.shape[1])[None, :]
        zero = np.where((stat <= 0) & (cols <= a[:, None]), cols, -1)
        return np.max(zero, axis=1) + 1


class BOCPDDetector(_Standardizing):
    """Bayesian online change-point detection, vectorised across series (module doc).

    The prior is for standardised data: a vague mean (kappa0 = 0.1) and a variance near 1
    (alpha0 = beta0 = 3), so a new run mostly differs from the old one by its level and a lone
    outlier does not open a lasting new run. O(T) steps of O(n_series * max_run) work: meant
    for the series a scan flagged, not for the whole fleet.
    """

    def __init__(self, hazard: float = 1 / 250, max_run: int = 250, short_run: int = 10, mu0: float = 0.0,
                 kappa0: float = 0.1, alpha0: float = 3.0, beta0: float = 3.0, standardize: bool = True,
                 rel_floor: float = 0.02, abs_floor: float = 1e-9, causal: bool = True) -> None:
        self.hazard = hazard
        self.max_run = max_run
        self.short_run = short_run
        self.mu0 = mu0
        self.kappa0 = kappa0
        self.alpha0 = alpha0
        self.beta0 = beta0
        self.standardize = standardize
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.causal = causal

    def fit(self, X: np.ndarray) -> BOCPDDetector:
        X = as_float_matrix(X).astype(np.float64)
        self._fit_standardizer(X)
        Z = (X - self.center_[:, None]) / self.scale_[:, None]
        cnt = np.count_nonzero(~np.isnan(Z), axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, np.nansum(Z, axis=1) / np.maximum(cnt, 1), 0.0)
            ss = np.nansum((Z - mean[:, None]) ** 2, axis=1)
        # the fit data as one long run, its weight capped at the truncation length
        w = np.minimum(cnt, self.max_run)
        frac = np.where(cnt > 0, w / np.maximum(cnt, 1), 0.0)
        k0 = self.kappa0
        self.run_mu_ = (k0 * self.mu0 + w * mean) / (k0 + w)
        self.run_kappa_ = k0 + w
        self.run_alpha_ = self.alpha0 + w / 2
        self.run_beta_ = self.beta0 + 0.5 * frac * ss + k0 * w * (mean - self.mu0) ** 2 / (2 * (k0 + w))
        return self

    def fit_score(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).anomaly_score(X)

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        Z = self._z(X).astype(np.float64)
        n, t = Z.shape
        R = max(2, int(self.max_run))
        out = np.full((n, t), np.nan)
        if n == 0 or t == 0:
            return out
        log_r = np.full((n, R), -np.inf)
        log_r[:, -1] = 0.0
        mu = np.full((n, R), float(self.mu0))
        kappa = np.full((n, R), float(self.kappa0))
        alpha = np.full((n, R), float(self.alpha0))
        beta = np.full((n, R), float(self.beta0))
        mu[:, -1], kappa[:, -1] = self.run_mu_, self.run_kappa_
        alpha[:, -1], beta[:, -1] = self.run_alpha_, self.run_beta_
        log_h, log_1mh = np.log(self.hazard), np.log1p(-self.hazard)
        w = max(1, min(int(self.short_run), R))
        for j in range(t):
            x = Z[:, j]
            ok = ~np.isnan(x)
            if not ok.any():
                continue
            xs = np.where(ok, x, 0.0)[:, None]
            df = 2 * alpha
            scale2 = beta * (kappa + 1) / (alpha * kappa)
            logpred = (gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(np.pi * df * scale2)
                       - (df + 1) / 2 * np.log1p((xs - mu) ** 2 / (df * scale2)))
            joint = log_r + logpred
            grow = joint + log_1mh
            new = np.empty_like(log_r)
            new[:, 0] = logsumexp(joint, axis=1) + log_h
            new[:, 1:] = grow[:, :-1]
            new[:, -1] = np.logaddexp(grow[:, -2], grow[:, -1])
            new -= logsumexp(new, axis=1, keepdims=True)
            # sufficient statistics of every run after seeing x, shifted by one run length
            mu_u = (kappa * mu + xs) / (kappa + 1)
            beta_u = beta + kappa * (xs - mu) ** 2 / (2 * (kappa + 1))
            last_from_prev = (grow[:, -2] > grow[:, -1])[:, None]
            for arr, upd, prior in ((mu, mu_u, self.mu0), (kappa, kappa + 1, self.kappa0),
                                    (alpha, alpha + 0.5, self.alpha0), (beta, beta_u, self.beta0)):
                shifted = np.empty_like(arr)
                shifted[:, 0] = prior
                shifted[:, 1:] = upd[:, :-1]
                shifted[:, -1:] = np.where(last_from_prev, upd[:, -2:-1], upd[:, -1:])
                arr[ok] = shifted[ok]
            log_r[ok] = new[ok]
            out[ok, j] = np.exp(logsumexp(new[ok, :w], axis=1))
        return np.clip(out, 0.0, 1.0)
