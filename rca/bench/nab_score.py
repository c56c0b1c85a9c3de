"""Numenta Anomaly Benchmark scoring, re-implemented exactly (NAB v1.1 ``sweeper.py``,
``optimizer.py``, ``runner.normalize``) but vectorised.

What NAB does, and what this module does identically:

* **Probation**: the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a file are not scored at
  all (neither FP nor TP; a window lying wholly inside probation is not counted as a miss).
* **Sweep score of a row** (``Sweeper.calcSweepScore``): inside a window with right index ``R``
  and width ``W`` (rows), row ``i`` is worth ``scaledSigmoid(-(R - i + 1) / W) / scaledSigmoid(-1)
  * tpWeight`` (the first row of a window is worth exactly ``tpWeight``); outside windows it is
  ``-fpWeight`` before the first window and ``scaledSigmoid(|R_prev - i| / (W_prev - 1)) *
  fpWeight`` after one (``scaledSigmoid(p) = -1`` for ``p > 3``, else ``2 / (1 + exp(5p)) - 1``).
* **Score at a threshold** (``Sweeper.calcScoreByThreshold``): detections are rows with
  ``anomaly_score >= threshold``; every detection outside windows adds its (negative) sweep score,
  every window adds the best sweep score of its detections (= the earliest one) or ``-fnWeight``
  if it has none.
* **Threshold** (``optimizer.optimizeThreshold``): ONE threshold per profile for the whole
  corpus, chosen among "no detection at all" (NAB's initial threshold 1.1) and every distinct
  score value; among equal totals the highest threshold wins (NAB sorts the list, which is in
  decreasing threshold order, with a stable sort).
* **Normalisation** (``runner.normalize``): ``100 * (raw - null) / (perfect - null)`` with
  ``null`` the raw score of NAB's null detector (a constant 0.5 score, swept like any detector,
  which in practice means "never fire": ``-fnWeight`` per counted window) and ``perfect =
  tpWeight * number of labelled windows`` (NAB counts every window in the labels file).

Choices where NAB's code has no answer (documented, never hit by NAB's own corpus):

* window limits are mapped to rows with ``searchsorted`` (first row ``>= start``, last row
  ``<= end``); NAB needs exact timestamp matches and silently skips every later window otherwise;
* a window of one row has ``W - 1 = 0`` after it (NAB divides by zero); we use ``max(W - 1, 1)``;
* totals are cumulative sums instead of NAB's re-summed dict, so they agree to ~1e-12; ties
  between thresholds are compared after rounding to 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PROFILES", "CorpusScore", "CostMatrix", "probation_length", "scaled_sigmoid", "score_at_threshold",
           "score_corpus", "sweep_scores", "window_rows"]

NO_DETECTION_THRESHOLD = 1.1  # NAB's starting threshold: above every score, nothing fires


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fn: float
    fp: float


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fn=2.0, fp=0.11),
}


def scaled_sigmoid(p: np.ndarray | float) -> np.ndarray:
    """NAB's ``scaledSigmoid``: ``-1`` for ``p > 3``, else ``2 / (1 + exp(5 p)) - 1``."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0
    return np.where(p > 3.0, -1.0, val)


def probation_length(n_rows: int, percent: float = 0.15) -> int:
    """Rows ``i < probation_length`` are not scored: ``min(floor(percent * n), percent * 5000)``."""
    return int(min(np.floor(percent * n_rows), percent * 5000))


def window_rows(timestamps: np.ndarray, windows: Sequence[tuple[object, object]]) -> list[tuple[int, int]]:
    """Map ``[start, end]`` timestamps to inclusive row ranges; windows with no row are dropped."""
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    out = []
    for start, end in sorted(windows, key=lambda w: np.datetime64(w[0], "ns")):
        i0 = int(np.searchsorted(ts, np.datetime64(start, "ns"), side="left"))
        i1 = int(np.searchsorted(ts, np.datetime64(end, "ns"), side="right")) - 1
        if i0 <= i1:
            out.append((i0, i1))
    return out


def sweep_scores(n_rows: int, windows: Sequence[tuple[int, int]], cost: CostMatrix,
                 probation_percent: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: NAB's weighted sweep score, the window index (-1 outside) and "scorable" (post-probation).

    ``windows`` are inclusive, sorted, disjoint row ranges (``window_rows``)."""
    i = np.arange(n_rows)
    win = np.full(n_rows, -1, dtype=np.int64)
    w_sweep = np.full(n_rows, -cost.fp, dtype=np.float64)  # before the first window
    if windows:
        starts = np.array([w[0] for w in windows])
        ends = np.array([w[1] for w in windows])
        widths = (ends - starts + 1).astype(np.float64)
        k = np.searchsorted(starts, i, side="right") - 1  # last window starting at or before i
        inside = (k >= 0) & (i <= ends[np.clip(k, 0, None)])
        win[inside] = k[inside]
        kin = k[inside]
        pos = -(ends[kin] - i[inside] + 1) / widths[kin]
        w_sweep[inside] = scaled_sigmoid(pos) / scaled_sigmoid(-1.0) * cost.tp
        prev = np.searchsorted(ends, i, side="left") - 1  # last window ending before i
        after = ~inside & (prev >= 0)
        kp = prev[after]
        pos = np.abs(ends[kp] - i[after]) / np.maximum(widths[kp] - 1.0, 1.0)
        w_sweep[after] = scaled_sigmoid(pos) * cost.fp
    scorable = i >= probation_length(n_rows, probation_percent)
    return w_sweep, win, scorable


@dataclass(frozen=True)
class CorpusScore:
    """The best threshold of one profile over the whole corpus and what it scores."""

    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    tp_windows: int  # windows with at least one detection
    fn_windows: int  # counted (post-probation) windows with none
    fp_rows: int  # detections outside every window (post-probation)
    tp_rows: int  # detections inside windows

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _sweep(scores: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[int, int]]], cost: CostMatrix,
           probation_percent: float) -> dict[str, np.ndarray]:
    """Every candidate threshold (NAB's order: no-detection first, then decreasing scores)."""
    s_all, w_all, g_all = [], [], []
    n_windows = 0
    for s, wins in zip(scores, windows, strict=True):
        s = np.asarray(s, dtype=np.float64)
        w_sweep, win, scorable = sweep_scores(len(s), wins, cost, probation_percent)
        s_all.append(s[scorable])
        w_all.append(w_sweep[scorable])
        g_all.append(np.where(win[scorable] >= 0, win[scorable] + n_windows, -1))
        n_windows += len(wins)
    s = np.concatenate(s_all) if s_all else np.empty(0)
    w = np.concatenate(w_all) if w_all else np.empty(0)
    g = np.concatenate(g_all) if g_all else np.empty(0, dtype=np.int64)
    counted = np.unique(g[g >= 0])
    base = -cost.fn * len(counted)

    order = np.argsort(-s, kind="stable")
    s, w, g = s[order], w[order], g[order]
    in_win = g >= 0
    # per window running max of the sweep score in decreasing-score order; the increment each row
    # brings to the window's contribution is cummax - previous cummax (previous = -fn at first)
    gi = g[in_win]
    wi = w[in_win]
    delta = np.zeros(len(s))
    first = np.zeros(len(s), dtype=bool)
    if len(gi):
        o2 = np.argsort(gi, kind="stable")  # group rows of one window, keeping decreasing-score order
        gs, ws = gi[o2], wi[o2]
        new_group = np.r_[True, gs[1:] != gs[:-1]]
        grp_start = np.maximum.accumulate(np.where(new_group, np.arange(len(gs)), 0))
        # cummax within groups: add a large offset per group so a global cummax never crosses groups
        span = (np.abs(ws).max() + 1.0) * 4.0
        rank = np.cumsum(new_group).astype(np.float64)
        cm = np.maximum.accumulate(ws + rank * span) - rank * span
        prev_cm = np.where(new_group, -cost.fn, np.r_[0.0, cm[:-1]])
        d_sorted = cm - prev_cm
        d_in = np.empty_like(d_sorted)
        d_in[o2] = d_sorted
        delta[in_win] = d_in
        f_in = np.empty(len(gs), dtype=bool)
        f_in[o2] = np.arange(len(gs)) == grp_start
        first[in_win] = f_in
    contrib = np.where(in_win, delta, w)
    total = base + np.cumsum(contrib)
    last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.empty(0, dtype=bool)
    top = s.max() if len(s) else 0.0
    thr = np.r_[NO_DETECTION_THRESHOLD if top < NO_DETECTION_THRESHOLD else top + 1.0, s[last_of_tie]]
    return {
        "threshold": thr,
        "total": np.r_[base, total[last_of_tie]],
        "tp_windows": np.r_[0, np.cumsum(first)[last_of_tie]],
        "fp_rows": np.r_[0, np.cumsum(~in_win)[last_of_tie]],
        "tp_rows": np.r_[0, np.cumsum(in_win)[last_of_tie]],
        "n_counted": np.array(len(counted)),
        "n_windows": np.array(n_windows),
    }


def _best(sw: dict[str, np.ndarray]) -> int:
    return int(np.argmax(np.round(sw["total"], 9)))  # first maximum = highest threshold, as NAB


def score_corpus(scores: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[int, int]]],
                 cost: CostMatrix, probation_percent: float = 0.15) -> CorpusScore:
    """Optimise one threshold over all files and score the corpus with it (NAB's raw and normalised).

    ``scores[k]`` are file k's anomaly scores (NAB expects [0, 1]); ``windows[k]`` its inclusive
    row ranges (``window_rows``). The null score is computed by sweeping NAB's null detector
    (constant 0.5) over the same corpus."""
    sw = _sweep(scores, windows, cost, probation_percent)
    b = _best(sw)
    null_sw = _sweep([np.full(len(s), 0.5) for s in scores], windows, cost, probation_percent)
    null = float(null_sw["total"][_best(null_sw)])
    perfect = cost.tp * float(sw["n_windows"])
    raw = float(sw["total"][b])
    norm = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    tp_w = int(sw["tp_windows"][b])
    return CorpusScore(threshold=float(sw["threshold"][b]), raw=raw, null=null, perfect=perfect,
                       normalised=norm, tp_windows=tp_w, fn_windows=int(sw["n_counted"]) - tp_w,
                       fp_rows=int(sw["fp_rows"][b]), tp_rows=int(sw["tp_rows"][b]))


def score_at_threshold(scores: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[int, int]]],
                       cost: CostMatrix, threshold: float, probation_percent: float = 0.15) -> float:
    """Raw NAB score of the corpus when detections are ``score >= threshold`` (NAB ``scoreDataSet``)."""
    sw = _sweep(scores, windows, cost, probation_percent)
    ok = np.flatnonzero(sw["threshold"] >= threshold)
    return float(sw["total"][ok[-1]]) if len(ok) else float(sw["total"][0])
