"""LLM-serving detectors: latency relative to load, and the token black hole.

``LoadAdjustedLatency`` — TTFT and TPOT rise with load (queue length, running requests,
prompt tokens): a TTFT spike during a traffic surge is the surge, not a sick engine. The
detector fits, per series over the baseline, ``log(latency) = a + b·log(load)`` (one least
squares per row, vectorised; ``b`` clipped to [0, ``max_elasticity``]) and scores the robust
z of the residual. Without a load matrix it is a robust deviation of log latency. ``fit`` and
``anomaly_score`` take ``load`` as an optional second argument, like scikit-learn's ``y=None``.

``repetition_scores`` — the token black hole: a model that loops on repeated n-grams until
``max_tokens``. Score per sampled output text in [0, 1]: the share of word n-grams (n = 3 and
4, the larger wins) that repeat an earlier n-gram of the same text. Ordinary prose scores
< 0.1; a loop scores > 0.5. Texts shorter than ``min_tokens`` words score NaN (not enough to
judge). ``LOOP_THRESHOLD`` is the level above which a text counts as looping.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from models.base import BaseDetector, as_matrix

__all__ = ["LOOP_THRESHOLD", "LoadAdjustedLatency", "repetition_scores"]

LOOP_THRESHOLD = 0.5
_WORD = re.compile(r"\w+|[^\w\s]")


class LoadAdjustedLatency(BaseDetector):
    def __init__(self, max_elasticity: float = 2.0, eps: float = 1e-6, rel_floor: float = 0.02,
                 causal: bool = True) -> None:
        self.max_elasticity = max_elasticity
        self.eps = eps
        self.rel_floor = rel_floor
        self.causal = causal

    def _logs(self, X: np.ndarray, load: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        y = np.log(np.maximum(X, 0) + self.eps)
        if load is None:
            return y, np.zeros_like(y)
        L = as_matrix(load, "load")
        if L.shape != X.shape:
            from rca.errors import BadInput

            raise BadInput(f"load has shape {L.shape}, latency {X.shape}", field="load",
                           fix="pass one load row per latency row, on the same time columns")
        return y, np.log(np.maximum(L, 0) + self.eps)

    def fit(self, X: np.ndarray, load: np.ndarray | None = None) -> LoadAdjustedLatency:
        X = as_matrix(X)
        y, lx = self._logs(X, load)
        ok = ~(np.isnan(y) | np.isnan(lx))
        n = ok.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ym = np.nansum(np.where(ok, y, 0), axis=1) / n
            lm = np.nansum(np.where(ok, lx, 0), axis=1) / n
            dy, dl = np.where(ok, y - ym[:, None], 0), np.where(ok, lx - lm[:, None], 0)
            var_l = (dl * dl).sum(axis=1)
            slope = np.where(var_l > 1e-9 * np.maximum(n, 1), (dl * dy).sum(axis=1) / var_l, 0.0)
            slope = np.clip(np.nan_to_num(slope), 0.0, self.max_elasticity)
            intercept = ym - slope * lm
            resid = np.where(ok, y - intercept[:, None] - slope[:, None] * lx, np.nan)
            med = np.nanmedian(resid, axis=1) if X.shape[1] else np.full(X.shape[0], np.nan)
            mad = np.nanmedian(np.abs(resid - med[:, None]), axis=1) if X.shape[1] else med
        self.slope_ = slope
        self.intercept_ = np.nan_to_num(intercept + np.nan_to_num(med))
        # log-scale floor: a relative change of rel_floor is never more than one scale unit
        self.scale_ = np.fmax(np.nan_to_num(1.4826 * mad, nan=self.rel_floor), self.rel_floor)
        return self

    def signed_deviation(self, X: np.ndarray, load: np.ndarray | None = None) -> np.ndarray:
        X = as_matrix(X)
        self._check_fitted(X, "slope_")
        y, lx = self._logs(X, load)
        expected = self.intercept_[:, None] + self.slope_[:, None] * (lx if load is not None else 0.0)
        return (y - expected) / self.scale_[:, None]

    def anomaly_score(self, X: np.ndarray, load: np.ndarray | None = None) -> np.ndarray:
        return np.abs(self.signed_deviation(X, load))


def repetition_scores(texts: Sequence[str], min_tokens: int = 12) -> np.ndarray:
    """Per text, the share of repeated word n-grams (n = 3, 4; the larger), NaN if too short."""
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        toks = _WORD.findall(str(text).lower())
        if len(toks) < min_tokens:
            continue
        best = 0.0
        for n in (3, 4):
            grams = list(zip(*(toks[j:] for j in range(n)), strict=False))
            if grams:
                best = max(best, 1.0 - len(set(grams)) / len(grams))
        out[i] = best
    return out
