"""``DistributionDrift``: is the *distribution* of a series moving, not just its level?

For each series, ``fit`` learns the baseline's quantile bin edges and bin shares (the binning
of ``drift_stats.psi``: ``n_bins`` equal-share bins plus one below and one above the baseline's
range). ``anomaly_score`` is, at every column t, the PSI of the trailing window of ``window``
samples ending at t against that baseline — so a series whose spread widens, becomes bimodal
or leaves its range scores high even when its median has not moved.

Vectorised: every value is binned once (``bin_index``), then for each of the few bins a
cumulative count along time gives the window counts by one subtraction; no loop over time
or series. NaN-aware: missing samples are left out of the window counts and score NaN
themselves; a window with fewer than ``min_count`` valid samples scores NaN (too little to
say). A constant baseline is fine: its values all fall in one bin, anything else lands in an
outer bin and gives a large but finite score. A series with no baseline data scores NaN.

Reading the score: the PSI levels 0.1 / 0.25 assume large samples. A window is small, so
with no drift PSI sits around ``(n_bins - 1) * (1/window + 1/n_baseline)`` (≈ 0.15 for the
defaults); leave the cut-off to a thresholder fitted on baseline scores.
"""

from __future__ import annotations

import numpy as np

from models.base import BaseDetector, as_matrix
from models.drift_stats import bin_counts, bin_index, quantile_edges, share_floor

__all__ = ["DistributionDrift"]


class DistributionDrift(BaseDetector):
    """Trailing-window PSI against a per-series baseline.

    ``window``: samples per window; ``n_bins``: equal-share baseline bins (5 keeps the noise of
    a 30-sample window low); ``min_count``: least valid samples in a window to score it
    (capped at ``window``); ``eps``: share floor for empty bins (None = half an observation of
    the smaller side, see ``share_floor``); ``causal``: trailing window (score at t uses
    columns <= t) — ``False`` centres the window instead (offline use).
    """

    def __init__(self, window: int = 30, n_bins: int = 5, min_count: int = 10, eps: float | None = None,
                 causal: bool = True) -> None:
        self.window = window
        self.n_bins = n_bins
        self.min_count = min_count
        self.eps = eps
        self.causal = causal

    def fit(self, X: np.ndarray) -> DistributionDrift:
        X = as_matrix(X)
        edges = quantile_edges(X, self.n_bins)
        self.edges_ = edges
        self.counts_ = bin_counts(X, edges)
        self.n_baseline_ = (~np.isnan(X)).sum(axis=1).astype(np.float64)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "edges_")
        n_series, n_time = X.shape
        if n_series == 0 or n_time == 0:
            return np.full(X.shape, np.nan)
        w = max(int(self.window), 1)
        shift = 0 if self.causal else w // 2
        valid = ~np.isnan(X)
        left, right = np.zeros((n_series, w), dtype=np.int32), np.empty((n_series, shift), dtype=np.int32)

        def window_sum(mask: np.ndarray) -> np.ndarray:
            """Sum of ``mask`` over columns [t + shift - w + 1, t + shift] (clipped to the data)."""
            c = np.cumsum(mask, axis=1, dtype=np.int32)
            right[:] = c[:, -1:]
            cp = np.concatenate([left, c, right], axis=1)
            return cp[:, w + shift : w + shift + n_time] - cp[:, shift : shift + n_time]

        n_win = window_sum(valid)
        floor = share_floor(self.n_baseline_[:, None], n_win, self.eps)
        idx = bin_index(X, self.edges_)
        score = np.zeros(X.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k in range(self.counts_.shape[1]):  # a handful of bins; vectorised over series x time
                base = np.maximum((self.counts_[:, k] / self.n_baseline_)[:, None], floor)
                cur = np.maximum(window_sum((idx == k) & valid) / n_win, floor)
                score += (cur - base) * np.log(cur / base)
        enough = n_win >= min(max(int(self.min_count), 1), w)
        return np.where(valid & enough & np.isfinite(score), np.maximum(score, 0.0), np.nan)
