"""Anomaly-detection metrics over a score series and point labels (oracle thresholds).

Every ``best_*`` function sweeps every distinct score as the threshold (flag = score >= thr)
and returns the best value with its threshold, so "best" means an oracle threshold chosen on
the test labels themselves — the usual way SMD/ASD results are published, to compare scorers
rather than thresholders. NaN scores are never flagged. All sweeps are one sort and a few
cumulative sums (no loop over thresholds).

* point-wise F1 — precision and recall over points.
* composite F1 (Garg et al. 2021, "An evaluation of anomaly detection and diagnosis in
  multivariate time series") — point-wise precision, *event-wise* recall (the fraction of
  labelled segments with at least one flagged point). This is what we call event-wise F1.
* point-adjusted F1 — a labelled segment counts as fully detected when any of its points is
  flagged (then every point of it is a true positive). Known to inflate scores (random scores
  reach ~0.88 on SMD); reported only next to the two above.
* HitRate@P% (OmniAnomaly / InterFusion) — per segment with true dims G: rank dims by the
  per-dim score, hit = |top-floor(P·|G|) ∩ G| / |G|, averaged over segments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rca.errors import BadInput

__all__ = ["best_composite_f1", "best_f1", "best_pa_f1", "hit_rate", "segments"]


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise BadInput(f"{s.size} scores for {y.size} labels", field="scores",
                       fix="pass one score per labelled point")
    return np.where(np.isnan(s), -np.inf, s), y


def segments(labels: np.ndarray) -> np.ndarray:
    """``[[start, end), ...]`` of the runs of 1 in ``labels`` (int array ``[n_seg, 2]``)."""
    y = np.asarray(labels).ravel().astype(np.int8)
    d = np.diff(np.concatenate([[0], y, [0]]))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1)


def _sweep(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, last): points sorted by score descending and the index of the last point of
    each group of equal scores (a threshold flags whole groups)."""
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    last = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    last = last[np.isfinite(ss[last])]  # -inf (NaN) is never flagged
    return order, last


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    den = p + r
    return np.where(den > 0, 2 * p * r / np.where(den > 0, den, 1.0), 0.0)


def _best(f1: np.ndarray, thr: np.ndarray) -> tuple[float, float]:
    if f1.size == 0:
        return 0.0, float("inf")
    i = int(np.argmax(f1))
    return float(f1[i]), float(thr[i])


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best point-wise F1 over thresholds: ``(f1, threshold)``; no positive label -> 0."""
    s, y = _check(scores, labels)
    if not y.any():
        return 0.0, float("inf")
    order, last = _sweep(s)
    tp = np.cumsum(y[order])[last]
    flagged = last + 1
    return _best(_f1(tp / flagged, tp / y.sum()), s[order][last])


def _seg_max(s: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Max score of each segment (``reduceat`` needs the end boundaries handled)."""
    out = np.empty(len(seg))
    for k, (a, b) in enumerate(seg):  # a handful of segments per series
        out[k] = s[a:b].max()
    return out


def best_composite_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best composite F1 (point precision, event recall): ``(f1, threshold)``."""
    s, y = _check(scores, labels)
    seg = segments(y)
    if not len(seg):
        return 0.0, float("inf")
    order, last = _sweep(s)
    thr = s[order][last]
    tp = np.cumsum(y[order])[last]
    prec = tp / (last + 1)
    smax = np.sort(_seg_max(s, seg))
    found = len(seg) - np.searchsorted(smax, thr, side="left")  # segments with max >= thr
    return _best(_f1(prec, found / len(seg)), thr)


def best_pa_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best point-adjusted F1: ``(f1, threshold)``."""
    s, y = _check(scores, labels)
    seg = segments(y)
    if not len(seg):
        return 0.0, float("inf")
    order, last = _sweep(s)
    thr = s[order][last]
    fp = np.cumsum(~y[order])[last]
    smax = _seg_max(s, seg)
    by = np.argsort(smax)
    smax_sorted, lens = smax[by], (seg[:, 1] - seg[:, 0])[by]
    # points of the segments whose max >= thr: suffix sums of lengths in smax order
    suffix = np.r_[np.cumsum(lens[::-1])[::-1], 0]
    tp = suffix[np.searchsorted(smax_sorted, thr, side="left")]
    return _best(_f1(tp / np.maximum(tp + fp, 1), tp / y.sum()), thr)


def hit_rate(dim_scores: np.ndarray, true_dims: Sequence[Sequence[int]], p: float = 1.0) -> float:
    """HitRate@P: mean over segments of ``|top-floor(P·|G|) ∩ G| / |G|``.

    ``dim_scores[k]`` is the per-dim score of segment k (``[n_seg, n_dims]``, NaN ranks last),
    ``true_dims[k]`` its ground-truth dims (0-based). Segments without true dims are skipped;
    ``nan`` when none is left. Ties rank the lower dim index first (stable sort).
    """
    d = np.asarray(dim_scores, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(true_dims):
        raise BadInput(f"dim_scores shaped {d.shape} for {len(true_dims)} segments", field="dim_scores",
                       fix="pass one row of per-dim scores per segment")
    hits = []
    for row, g in zip(d, true_dims, strict=True):
        gs = set(int(i) for i in g)
        if not gs:
            continue
        k = int(np.floor(p * len(gs) + 1e-9))
        top = np.argsort(-np.where(np.isnan(row), -np.inf, row), kind="stable")[:k]
        hits.append(len(gs & set(top.tolist())) / len(gs))
    return float(np.mean(hits)) if hits else float("nan")
