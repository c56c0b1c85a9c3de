"""Thresholders turn scores into flags; kept apart from scoring (``rca.protocols.Thresholder``)."""

from __future__ import annotations

import numpy as np

from models._robust import as_float_matrix, sorted_quantiles
from models.base import BaseDetector, as_matrix
from rca.errors import BadInput

__all__ = ["CalibratedThreshold", "FixedThreshold", "QuantileThreshold"]


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


_KNOT_P = (0.0, 0.25, 0.5, 0.75, 0.9)


class CalibratedThreshold(BaseDetector):
    """Per-series calibration of raw scores to [0, 1], fitted on scores of a normal period.

    Body: the empirical CDF of the normal scores, linearly interpolated between per-series
    quantile knots at 0, .25, .5, .75, .9 and ``q_tail``. Tail: above u = the ``q_tail`` quantile,
    an exponential tail (a generalised Pareto with shape 0) whose scale is the mean excess over
    u: F(s) = 1 - (1 - q_tail) exp(-(s - u) / sigma). Shape 0 is a deliberate choice: the GPD
    shape estimated from the ~5% of a day's points above u is too noisy to extrapolate to the
    1e-5..1e-7 levels a fleet scan needs, and an exponential tail is conservative for the
    light-tailed scores (|z| of near-Gaussian noise) most series produce. sigma is floored at
    ``min_tail_scale`` so a series that was constant in the normal period does not flag every
    wiggle. Rows with fewer than ``min_samples`` valid normal scores borrow the median
    calibration of the other rows (NaN if none has enough).

    ``transform(scores)`` gives the calibrated value (monotone in the raw score per series,
    NaN stays NaN); ``flag(scores)`` is ``transform(scores) >= level``, computed as a raw
    per-series threshold (``thresholds(level)``) so flagging a big matrix is one comparison.
    """

    def __init__(self, q_tail: float = 0.95, level: float = 0.99, min_tail_scale: float = 1e-6,
                 min_samples: int = 20) -> None:
        self.q_tail = q_tail
        self.level = level
        self.min_tail_scale = min_tail_scale
        self.min_samples = min_samples

    def fit(self, scores: np.ndarray) -> CalibratedThreshold:
        s = as_float_matrix(scores, "scores")
        if not 0.5 <= self.q_tail < 1:
            raise BadInput(f"q_tail={self.q_tail} is outside [0.5, 1)", field="q_tail", fix="use e.g. 0.95")
        p = np.array(_KNOT_P + (self.q_tail,))
        S = np.sort(s, axis=1)
        cnt = np.count_nonzero(~np.isnan(s), axis=1)
        knots = sorted_quantiles(S, cnt, p).astype(np.float64)
        u = knots[:, -1]
        # the exceedances sit at the end of the sorted valid values: look at that tail only
        n_t = s.shape[1]
        width = min(n_t, int(np.ceil((1 - self.q_tail) * n_t)) + 2 + int(n_t - cnt.min(initial=n_t)))
        tail = S[:, n_t - width:].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            above = tail > u[:, None]
            n_exc = np.count_nonzero(above, axis=1)
            exc = np.where(above, tail - u[:, None], 0.0).sum(axis=1)
            sigma = np.where(n_exc > 0, exc / np.maximum(n_exc, 1), 0.0)
        sigma = np.fmax(sigma, self.min_tail_scale)
        few = cnt < self.min_samples
        if few.any():
            if (~few).any():
                knots[few] = np.median(knots[~few], axis=0)
                sigma[few] = np.median(sigma[~few])
            else:
                knots[few] = np.nan
                sigma[few] = np.nan
        self.knots_ = knots
        self.knot_p_ = p
        self.tail_scale_ = sigma
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated scores in [0, 1], same shape; NaN where the score (or calibration) is NaN."""
        s = as_matrix(scores, "scores")
        self._check_fitted(s, "knots_")
        K, P = self.knots_, self.knot_p_
        out = np.zeros_like(s)
        with np.errstate(invalid="ignore", divide="ignore"):
            for j in range(len(P) - 1):
                lo, hi = K[:, j, None], K[:, j + 1, None]
                frac = np.where(hi > lo, np.clip((s - lo) / (hi - lo), 0.0, 1.0), (s >= hi).astype(float))
                out = np.where(s >= lo, P[j] + (P[j + 1] - P[j]) * frac, out)
            u = K[:, -1, None]
            tail = 1.0 - (1.0 - P[-1]) * np.exp(-(s - u) / self.tail_scale_[:, None])
            out = np.where(s > u, tail, out)
        out[np.isnan(s) | np.isnan(u)] = np.nan
        return out

    def tail_probability(self, scores: np.ndarray) -> np.ndarray:
        """1 - F(score) for scores in the tail (used for window-level adjustment); any shape
        [n, ...] whose first axis is the series."""
        s = np.asarray(scores, dtype=float)
        u = self.knots_[:, -1].reshape((-1,) + (1,) * (s.ndim - 1))
        sig = self.tail_scale_.reshape(u.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            p = (1.0 - self.knot_p_[-1]) * np.exp(-(s - u) / sig)
        return np.where(s > u, p, 1.0 - self.transform(s.reshape(s.shape[0], -1)).reshape(s.shape))

    def thresholds(self, level: float | None = None) -> np.ndarray:
        """Per-series raw score at which the calibrated value reaches ``level``."""
        level = self.level if level is None else level
        K, P = self.knots_, self.knot_p_
        if level > P[-1]:
            return K[:, -1] + self.tail_scale_ * np.log((1.0 - P[-1]) / (1.0 - level))
        j = int(np.clip(np.searchsorted(P, level, side="right") - 1, 0, len(P) - 2))
        frac = (level - P[j]) / (P[j + 1] - P[j])
        return K[:, j] + frac * (K[:, j + 1] - K[:, j])

    def flag(self, scores: np.ndarray) -> np.ndarray:
        s = as_matrix(scores, "scores")
        self._check_fitted(s, "knots_")
        t = self.thresholds()
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(s), False, s >= t[:, None])
