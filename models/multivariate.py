"""Multivariate detectors: one joint model over a group of related series.

``X`` is ``[n_series, n_time]`` as everywhere: the series are the *dimensions*, the time
columns are the *samples*. ``fit`` learns from the baseline columns; ``anomaly_score`` returns
X's shape — a per-dimension **attribution** of the anomaly at each time, >= 0, NaN where X is
NaN — so ``score.sum(axis=0)`` (or ``.max``) is the per-time score and ``argsort`` over a
column says which series carry the anomaly. ``time_score(X)`` returns the per-time score each
detector is meant to be read with (documented per class).

Shared preprocessing (``_RobustScaler``): per series ``(x - median) / scale`` with
``scale = max(IQR / 1.349, rel_floor * (max - min of the baseline), abs_floor)``. The range
floor keeps a near-constant baseline series from turning every small move into a huge score,
and is unit-free (it does not assume the data are scaled to [0, 1]). The joint models see the
scaled values clipped to ``±clip`` (one broken series must not own the whole model) with NaN
imputed by the fitted median (0 after scaling); their per-dim outputs are NaN where X is NaN.

Attribution choices:

* ``PCAReconstruction`` — squared residual per dim after projecting on the principal
  subspace of the baseline (``sum`` over dims = the SPE / Q statistic).
* ``IsolationForestScore`` / ``LOFScore`` — the joint score (IF: ``-score_samples`` in
  (0, 1]; LOF: the local outlier factor, ~1 for inliers) split across dims in proportion to
  each dim's robust |z|, so ``sum`` over dims gives back the joint score exactly and the
  ranking of dims is the |z| ranking. Equal split when every |z| is 0.
* ``RobustPCAEnsemble`` (the default for the SMD/ASD bench) — per dim, robust |z| plus the
  PCA residual |r| / (its baseline RMS), each divided by the 99th percentile of its own
  per-time score on the baseline, so the two parts are on one scale; then a causal EWMA along
  time. Per-time score = mean of the top-``top_k`` dims (one noisy dim is not enough, a break
  of a correlated group adds up). The |z| part catches level shifts and spikes in any single
  series; the residual part catches a group of series that stop moving together even when
  each stays inside its usual range.

All scores are pointwise given the fit, except the ensemble's EWMA, which is causal (the
filter state starts at the baseline's median level), so every detector here is causal.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.signal import lfilter

from models.base import BaseDetector, as_matrix

__all__ = ["IsolationForestScore", "LOFScore", "PCAReconstruction", "RobustPCAEnsemble"]


def _robust_center_scale(X: np.ndarray, rel_floor: float, abs_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row median and floored robust scale (see the module docstring); NaN ignored."""
    n, t = X.shape
    if n == 0 or t == 0 or np.isnan(X).all():
        return np.zeros(n), np.ones(n)
    has_nan = np.isnan(X).any()
    pct, mx, mn = (np.nanpercentile, np.nanmax, np.nanmin) if has_nan else (np.percentile, np.max, np.min)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q1, med, q3 = pct(X, [25, 50, 75], axis=1)
        rng = mx(X, axis=1) - mn(X, axis=1)
    med = np.nan_to_num(med)  # an all-NaN row centres at 0
    scale = np.fmax.reduce([(q3 - q1) / 1.349, rel_floor * rng, np.full(n, abs_floor)])
    return med, scale


def _top_k_mean(S: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest non-NaN values of each column (NaN when a column is all NaN)."""
    n, t = S.shape
    if n == 0:
        return np.full(t, np.nan)
    k = max(1, min(k, n))
    top = np.sort(np.where(np.isnan(S), -np.inf, S), axis=0)[n - k:]
    top = np.where(np.isneginf(top), np.nan, top)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(top, axis=0)


def _distribute(joint: np.ndarray, absz: np.ndarray, nan: np.ndarray) -> np.ndarray:
    """Split a per-time joint score over dims in proportion to |z| (NaN dims get nothing)."""
    w = np.where(nan, 0.0, absz)
    tot = w.sum(axis=0)
    n_ok = np.maximum((~nan).sum(axis=0), 1)
    w = np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), np.where(nan, 0.0, 1.0) / n_ok)
    out = w * joint[None, :]
    out[nan] = np.nan
    return out


class _Multivariate(BaseDetector):
    """Scaling, imputation and shape handling shared by the joint models."""

    rel_floor: float
    abs_floor: float
    clip: float

    def fit(self, X: Any) -> _Multivariate:
        X = as_matrix(X)
        self.center_, self.scale_ = _robust_center_scale(X, self.rel_floor, self.abs_floor)
        Y = self._prepared(X)
        self.n_baseline_ = int(Y.shape[1])
        if Y.shape[0] and Y.shape[1] >= 2:
            self._fit_joint(Y, X)
        return self

    def _z(self, X: np.ndarray) -> np.ndarray:
        return (X - self.center_[:, None]) / self.scale_[:, None]

    def _prepared(self, X: np.ndarray) -> np.ndarray:
        """Scaled, clipped, NaN imputed by the median (= 0 once scaled)."""
        return np.clip(np.nan_to_num(self._z(X), nan=0.0), -self.clip, self.clip)

    def _fitted(self) -> bool:
        return self.n_baseline_ >= 2 and self.center_.shape[0] > 0

    def anomaly_score(self, X: Any) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "center_")
        nan = np.isnan(X)
        if X.size == 0 or not self._fitted():
            return np.where(nan, np.nan, 0.0)
        return self._score(X, nan)

    def time_score(self, X: Any) -> np.ndarray:
        """Per-time score ``[n_time]``: the sum of the per-dim attribution (NaN dims skipped)."""
        S = self.anomaly_score(X)
        return np.where(np.isnan(S).all(axis=0), np.nan, np.nansum(S, axis=0)) if S.shape[0] else \
            np.full(S.shape[1], np.nan)

    def _fit_joint(self, Y: np.ndarray, X: np.ndarray) -> None:  # pragma: no cover - abstract
        """Fit the joint model on the prepared baseline ``Y`` (``X``: the raw baseline)."""
        raise NotImplementedError

    def _score(self, X: np.ndarray, nan: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class PCAReconstruction(_Multivariate):
    """Squared residual per dim off the baseline's principal subspace.

    ``variance``: keep the fewest components that explain this share of the (scaled,
    clipped) baseline variance. Sum over dims = SPE.
    """

    def __init__(self, variance: float = 0.9, rel_floor: float = 0.01, abs_floor: float = 1e-9,
                 clip: float = 10.0) -> None:
        self.variance = variance
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.clip = clip

    def _fit_joint(self, Y: np.ndarray, X: np.ndarray) -> None:
        self.mean_ = Y.mean(axis=1)
        Yc = Y - self.mean_[:, None]
        var, vec = np.linalg.eigh(Yc @ Yc.T)  # [n_series]^2 covariance: cheap for long baselines
        var, vec = np.clip(var[::-1], 0.0, None), vec[:, ::-1]
        total = var.sum()
        n = int(np.searchsorted(np.cumsum(var) / total, self.variance - 1e-12) + 1) if total > 0 else 0
        self.components_ = np.ascontiguousarray(vec[:, :min(n, len(var))].T)  # [n_comp, n_series]

    def residual(self, X: np.ndarray) -> np.ndarray:
        """Signed residual in scaled units ``[n_series, n_time]`` (NaN input imputed)."""
        Y = self._prepared(X) - self.mean_[:, None]
        P = self.components_
        return Y - P.T @ (P @ Y)

    def _score(self, X: np.ndarray, nan: np.ndarray) -> np.ndarray:
        R = self.residual(X) ** 2
        R[nan] = np.nan
        return R


class IsolationForestScore(_Multivariate):
    """scikit-learn IsolationForest on the scaled rows; joint score split by |z|."""

    def __init__(self, n_estimators: int = 100, max_samples: int = 256, rel_floor: float = 0.01,
                 abs_floor: float = 1e-9, clip: float = 10.0, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.clip = clip
        self.random_state = random_state

    def _fit_joint(self, Y: np.ndarray, X: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=self.n_estimators,
                                      max_samples=min(self.max_samples, Y.shape[1]),
                                      random_state=self.random_state).fit(Y.T)

    def _score(self, X: np.ndarray, nan: np.ndarray) -> np.ndarray:
        Y = self._prepared(X)
        joint = -self.model_.score_samples(Y.T)  # in (0, 1], higher = more isolated
        return _distribute(joint, np.abs(Y), nan)


class LOFScore(_Multivariate):
    """scikit-learn LocalOutlierFactor (``novelty=True``); joint LOF split by |z|.

    The baseline is thinned to at most ``max_train`` evenly spaced columns (deterministic)
    so that scoring stays fast on long baselines.
    """

    def __init__(self, n_neighbors: int = 20, max_train: int = 2000, rel_floor: float = 0.01,
                 abs_floor: float = 1e-9, clip: float = 10.0) -> None:
        self.n_neighbors = n_neighbors
        self.max_train = max_train
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self.clip = clip

    def _fit_joint(self, Y: np.ndarray, X: np.ndarray) -> None:
        from sklearn.neighbors import LocalOutlierFactor

        step = max(1, int(np.ceil(Y.shape[1] / max(self.max_train, 2))))
        train = Y[:, ::step].T
        k = max(1, min(self.n_neighbors, train.shape[0] - 1))
        self.model_ = LocalOutlierFactor(n_neighbors=k, novelty=True, algorithm="brute").fit(train)

    def _score(self, X: np.ndarray, nan: np.ndarray) -> np.ndarray:
        Y = self._prepared(X)
        joint = -self.model_.score_samples(Y.T)  # the LOF, ~1 for inliers
        return _distribute(joint, np.abs(Y), nan)


class RobustPCAEnsemble(PCAReconstruction):
    """Robust |z| + normalised PCA residual, causal EWMA; per-time = top-k mean over dims.

    ``quantile``: each part is divided by this quantile of its baseline per-time (top-k) score.
    ``alpha``: EWMA weight of the newest column (1 = no smoothing); anomalies last minutes,
    single-point noise does not. ``resid_floor``: smallest per-dim residual RMS (scaled units).
    """

    def __init__(self, variance: float = 0.9, rel_floor: float = 0.01, abs_floor: float = 1e-9,
                 clip: float = 10.0, top_k: int = 3, quantile: float = 0.99, alpha: float = 0.5,
                 resid_floor: float = 1e-3, z_cap: float = 1e3) -> None:
        super().__init__(variance=variance, rel_floor=rel_floor, abs_floor=abs_floor, clip=clip)
        self.top_k = top_k
        self.quantile = quantile
        self.alpha = alpha
        self.resid_floor = resid_floor
        self.z_cap = z_cap

    def _fit_joint(self, Y: np.ndarray, X: np.ndarray) -> None:
        super()._fit_joint(Y, X)
        R = Y - self.mean_[:, None]
        R = R - self.components_.T @ (self.components_ @ R)
        self.resid_rms_ = np.maximum(np.sqrt((R**2).mean(axis=1)), self.resid_floor)
        # |z| of the baseline itself (unclipped but capped, as at scoring time)
        Z = self._absz(X)
        Rn = np.abs(R) / self.resid_rms_[:, None]
        self.z_norm_ = max(float(np.nanquantile(_top_k_mean(Z, self.top_k), self.quantile)), 1e-9)
        self.r_norm_ = max(float(np.nanquantile(_top_k_mean(Rn, self.top_k), self.quantile)), 1e-9)
        D = Z / self.z_norm_ + Rn / self.r_norm_
        self.level_ = np.nan_to_num(np.nanmedian(D, axis=1))  # EWMA state before the first column

    def _absz(self, X: np.ndarray) -> np.ndarray:
        return np.minimum(np.abs(self._z(X)), self.z_cap)

    def _score(self, X: np.ndarray, nan: np.ndarray) -> np.ndarray:
        Z = np.nan_to_num(self._absz(X), nan=0.0)
        Rn = np.abs(self.residual(X)) / self.resid_rms_[:, None]
        D = Z / self.z_norm_ + Rn / self.r_norm_
        D[nan] = 0.0  # a missing value adds no evidence to the smoothed level
        a = float(self.alpha)
        if a < 1.0:
            zi = ((1.0 - a) * self.level_)[:, None]
            D, _ = lfilter([a], [1.0, -(1.0 - a)], D, axis=1, zi=zi)
        D[nan] = np.nan
        return D

    def time_score(self, X: Any) -> np.ndarray:
        """Per-time score ``[n_time]``: mean of the ``top_k`` largest dims."""
        return _top_k_mean(self.anomaly_score(X), self.top_k)
