"""``StreamingNAB``: a causal univariate anomaly scorer for NAB-type series (vectorised across series).

Idea: a handful of robust "surprise" components, each measured against the series' own recent
past, each self-calibrated against how surprising that series usually is, then combined and
post-processed for the way streaming alerts are consumed (one early alert per incident).

Components (all causal; the statistics used at row t come from rows < t):

* ``value``  — |x_t - median| / scale over the trailing ``window`` rows (scale = IQR / 1.349 with
  floors), i.e. a sliding robust z-score: spikes, dips, fresh level shifts;
* ``diff``   — the same robust z of the first difference: jumps and spikes on a trending or
  seasonal series where the level itself is not unusual;
* ``level`` / ``trend`` — the mean of the last ``short`` (``long``) rows against the median before
  them, in units of the scale: sustained shifts, bursts and ramps that no single row makes extreme;
* ``flat``   — the usual scale over the spread of the last ``flat`` rows: a stuck sensor or a
  stalled pipeline (the series stops moving).

Calibration: each component's raw value is divided by the largest value that component reached
in the trailing ``memory`` rows (a "record ratio"): 1 means "as surprising as the worst thing seen
recently". This makes one threshold meaningful across series of very different character (a
heavy-tailed tweet count versus a clean sine). The combined ratio is the largest component ratio
plus ``support`` times the second largest (an anomaly that breaks records on two views at once is
more credible than one that barely breaks one), squashed to [0, 1) with ``r / (1 + r)``.

Not done (yet): a seasonal-residual component (pattern breaks that look normal by value) and a
CAD-OSE-like "novel subsequence" component. Defaults were tuned on ``rca.bench.nab_synth`` seeds
1-2 and checked on other seeds; real NAB was never seen.

Refractory post-processing: after the score reaches ``trigger``, the next
``refractory * (rows seen so far)`` rows are scaled by ``damp``. A streaming consumer wants one
alert per incident; the decision at t only uses scores at rows < t, so it stays causal.

``fit(X)`` stores X as history that precedes the rows passed to ``anomaly_score``; the model has
no other learned state (everything adapts online). ``causal`` is accepted for the contract: this
detector is always causal.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from models.base import BaseDetector, as_matrix

__all__ = ["StreamingNAB"]


class StreamingNAB(BaseDetector):
    def __init__(self, window: int = 400, short: int = 6, long: int = 60, flat: int = 12, memory: int = 3000,
                 min_periods: int = 30, components: str = "value,diff,level,trend,flat", support: float = 0.6,
                 trigger: float = 0.6, refractory: float = 0.1, damp: float = 0.3,
                 causal: bool = True) -> None:
        self.window = window
        self.short = short
        self.long = long
        self.flat = flat
        self.memory = memory
        self.min_periods = min_periods
        self.components = components
        self.support = support
        self.trigger = trigger
        self.refractory = refractory
        self.damp = damp
        self.causal = causal

    def fit(self, X: np.ndarray) -> StreamingNAB:
        self.history_ = as_matrix(X).copy()
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "history_")
        full = np.concatenate([self.history_, X], axis=1)
        if full.size == 0:
            return np.empty(X.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s = self._score(full)
        s = s[:, self.history_.shape[1]:]
        s[np.isnan(X)] = np.nan
        return s

    # -------------------------------------------------------------------------------- internals
    def _robust_z(self, F: pd.DataFrame) -> pd.DataFrame:
        """|F_t - median| / scale, statistics over the trailing window, strictly before t."""
        roll = F.rolling(self.window, min_periods=self.min_periods)
        med = roll.median().shift(1)
        iqr = (roll.quantile(0.75) - roll.quantile(0.25)).shift(1) / 1.349
        mean_abs = F.sub(med).abs().rolling(self.window, min_periods=self.min_periods).mean().shift(1)
        scale = np.fmax(iqr, 0.3 * mean_abs)
        scale = np.fmax(scale, 1e-3 * med.abs() + 1e-9)
        return (F - med).abs() / scale

    def _record_ratio(self, Z: pd.DataFrame) -> pd.DataFrame:
        Z = Z.fillna(0.0)
        past = Z.rolling(self.memory, min_periods=1).max().shift(1)
        return Z / np.fmax(past, 1e-9)

    def _score(self, full: np.ndarray) -> np.ndarray:
        n_series, n = full.shape
        F = pd.DataFrame(full.T).ffill()
        Z_val = self._robust_z(F)
        D = F.diff()
        Z_diff = self._robust_z(D)
        roll = F.rolling(self.window, min_periods=self.min_periods)
        med = roll.median()
        sc = np.fmax((roll.quantile(0.75) - roll.quantile(0.25)) / 1.349, 1e-3 * med.abs() + 1e-9)
        comps = {"value": Z_val, "diff": Z_diff}
        for name, k in (("level", self.short), ("trend", self.long)):  # last k rows vs the baseline before
            lvl = F.rolling(k, min_periods=k).mean()
            comps[name] = (lvl - med.shift(k)).abs() / sc.shift(k)
        # flat-line: the last `flat` rows barely move while the series usually does
        spread = F.rolling(self.flat, min_periods=self.flat).std()
        comps["flat"] = sc.shift(self.flat) / (spread + 1e-6 * sc.shift(self.flat) + 1e-12)
        use = [c.strip() for c in self.components.split(",")]
        ratios = [self._record_ratio(comps[c]) for c in use]
        stack = np.nan_to_num(np.stack([r.to_numpy() for r in ratios]), nan=0.0, posinf=1e6)
        top = np.sort(stack, axis=0)[::-1]
        R = top[0] + self.support * (top[1] if len(top) > 1 else 0.0)
        R[: self.min_periods + 1] = 0.0
        R = np.nan_to_num(R, nan=0.0, posinf=1e6)
        score = R / (1.0 + R)
        return self._refractory(score).T

    def _refractory(self, score: np.ndarray) -> np.ndarray:
        """Scale the rows after each alert by ``damp`` for ``refractory * (t + 1)`` rows, unless a row
        is more anomalous than the alert itself (a stronger event breaks through and becomes the new
        alert). Loops over alert events, not rows."""
        out = score.copy()
        for j in range(score.shape[1]):
            col, orig = out[:, j], score[:, j]
            cand = np.flatnonzero(orig >= self.trigger)
            k = 0
            while k < len(cand):
                t = int(cand[k])
                end = t + max(int(self.refractory * (t + 1)), 1)
                stronger = np.flatnonzero(orig[t + 1:end + 1] > orig[t])
                stop = t + 1 + int(stronger[0]) if len(stronger) else end + 1
                col[t + 1:stop] *= self.damp
                k = int(np.searchsorted(cand, stop - 1, side="right"))
        return out
