"""Per-series and per-entity deviation scores between a baseline and an incident window.

One vectorised pass over the derived matrix:

1. robust deviation (median/IQR of the baseline) of every incident sample, signed;
2. the catalogue says which direction is bad; the other direction counts half;
3. a 3-sample rolling median removes single-sample spikes (an anomaly must persist);
4. each series is calibrated against its own baseline extremes: a series that already
   swings wildly in normal times needs a bigger swing to score (so entities with many noisy
   columns do not win by having more of them);
5. a series present in the baseline that vanishes in the incident scores ``VANISHED_SCORE``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.deviation import RobustDeviation
from models.presence import Vanished
from rca.catalog import SignalInfo, classify
from rca.signals import Signals
from rca.types import Anomaly, EntityId, SeriesKey, Window

__all__ = ["THRESHOLD", "VANISHED_SCORE", "EntityScore", "SeriesScores", "clean_baseline", "entity_scores",
           "nanmedian_rows", "nanquantile_rows", "rolling_median", "score_series"]

THRESHOLD = 4.0
VANISHED_SCORE = 8.0
IN_RANGE_CAP = 2.0  # a value the baseline already reached is not anomalous by itself
NOVEL_SCORE = 10.0  # any move of a series that was constant in the baseline
LOG_CAP = 2 * THRESHOLD


@dataclass(frozen=True, eq=False)
class SeriesScores:
    score: np.ndarray  # [N] calibrated score (>= 0)
    onset: np.ndarray  # [N] unix s (int64), -1 when never above threshold
    peak: np.ndarray  # [N] unix s of the peak
    direction: np.ndarray  # [N] +1 up / -1 down
    baseline: np.ndarray  # [N] baseline median
    observed: np.ndarray  # [N] value at the peak
    vanished: np.ndarray  # [N] bool
    infos: tuple[SignalInfo, ...]
    before_vanishing: np.ndarray | None = None  # [N] score from the samples that were there


def _nanmedian3(a: np.ndarray) -> np.ndarray:
    """``rolling_median(a, 3)`` in closed form, bit for bit what ``np.nanmedian`` over the
    windows gives: per row, the NaN-ignoring median of each sample and the (up to) two before
    it. nanmedian computes ``(low + high) / 2`` of the two middle values (the middle one twice
    for an odd count) as a sum that also adds ``+0.0`` (so ``-0.0`` comes out as ``0.0``, and
    two huge values can overflow to inf); all missing gives NaN."""
    x1 = np.empty_like(a)  # the sample before (NaN before the first)
    x1[:, 0] = np.nan
    x1[:, 1:] = a[:, :-1]
    x2 = np.empty_like(a)  # two samples before
    x2[:, :2] = np.nan
    x2[:, 2:] = a[:, :-2]
    lo = np.minimum(a, x1)
    mid = np.maximum(lo, np.minimum(np.maximum(a, x1), x2))  # median of three (NaN if any is NaN)
    with np.errstate(all="ignore"):
        out = ((mid + mid) + 0.0) / 2
        n0, n1, n2 = np.isnan(a), np.isnan(x1), np.isnan(x2)
        missing = n0.view(np.int8) + n1.view(np.int8) + n2.view(np.int8)
        if missing.any():
            two = missing == 1  # the mean of the two present
            s2 = np.where(n0, 0.0, a) + np.where(n1, 0.0, x1) + np.where(n2, 0.0, x2)
            one = missing == 2  # the one present
            v = np.fmax(np.fmax(a, x1), x2)
            out = np.where(two, s2 / 2, np.where(one, ((v + v) + 0.0) / 2, out))
            out[missing == 3] = np.nan
    return out


def rolling_median(a: np.ndarray, k: int = 3) -> np.ndarray:
    """Per row, the NaN-ignoring median of each sample and the ``k - 1`` before it (a trailing
    window: the first columns see fewer samples); rows shorter than ``k`` come back as they are."""
    if a.shape[1] < k:
        return a
    if k == 3 and a.ndim == 2 and a.dtype == np.float64:
        return _nanmedian3(a)
    pad = np.concatenate([np.full((a.shape[0], k - 1), np.nan), a], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(pad, k, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(view, axis=-1)


def nanquantile_rows(X: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(X, q, axis=1)`` of a 2-d float matrix, the rows without NaN in one
    vectorised ``np.quantile`` (nanquantile loops over rows in Python; per row it runs the very
    same ``np.quantile``, so the values are identical)."""
    if X.ndim != 2 or X.dtype != np.float64 or X.shape[1] == 0:
        return np.nanquantile(X, q, axis=1)
    clean = ~np.isnan(X).any(axis=1)
    if not clean.any():
        return np.nanquantile(X, q, axis=1)
    out = np.empty(X.shape[0])
    out[clean] = np.quantile(X[clean], q, axis=1)
    if not clean.all():
        out[~clean] = np.nanquantile(X[~clean], q, axis=1)
    return out


def nanmedian_rows(X: np.ndarray) -> np.ndarray:
    """``np.nanmedian(X, axis=1)`` of a 2-d float matrix, the rows without NaN in one vectorised
    ``np.median`` (values identical: nanmedian runs ``np.median`` per row for rows of >= 600
    samples, and sums the two middle values for shorter ones, which only differs from
    ``np.median`` when that sum overflows: rows holding values that large keep nanmedian)."""
    if X.ndim != 2 or X.dtype != np.float64 or X.shape[1] == 0:
        return np.nanmedian(X, axis=1)
    clean = ~np.isnan(X).any(axis=1)
    if X.shape[1] < 600:
        clean &= np.abs(X).max(axis=1, initial=0.0) < 1e300
    if not clean.any():
        return np.nanmedian(X, axis=1)
    out = np.empty(X.shape[0])
    out[clean] = np.median(X[clean], axis=1)
    if not clean.all():
        out[~clean] = np.nanmedian(X[~clean], axis=1)
    return out


def _borrow_peer_baselines(det: RobustDeviation, X_b: np.ndarray, peers: list | None) -> None:
    """A series with no baseline (a replica that appeared during the incident, e.g. after a
    deploy) is judged against the baseline of its peers (same metric, same group)."""
    if peers is None:
        return
    empty = np.isnan(X_b).all(axis=1) if X_b.shape[1] else np.ones(len(peers), dtype=bool)
    if not empty.any():
        return
    by_peer: dict = {}
    for i, p in enumerate(peers):
        if p is not None and not empty[i]:
            by_peer.setdefault(p, []).append(i)
    for i in np.flatnonzero(empty):
        rows = by_peer.get(peers[i])
        if rows:
            det.median_[i] = float(np.median(det.median_[rows]))
            det.scale_[i] = float(np.max(det.scale_[rows]))


def clean_baseline(X_b: np.ndarray, z: float = 4.0, min_keep: float = 0.6) -> np.ndarray:
    """Mask of the baseline samples to keep: drop those where an unusual share of the series
    deviate *together* — an earlier incident inside the baseline window. Its samples would
    otherwise widen every range and spread and mask the incident being analysed. Robust
    statistics already shrug off a few odd samples per series; this removes the fleet-wide
    ones. Keeps everything when the baseline is short or the cleaning would drop too much."""
    T = X_b.shape[1]
    keep = np.ones(T, dtype=bool)
    if T < 8 or X_b.shape[0] < 3:
        return keep
    det = RobustDeviation().fit(X_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        share = np.nanmean(det.anomaly_score(X_b) >= z, axis=0)
    share = np.nan_to_num(share)
    med = float(np.median(share))
    mad = float(np.median(np.abs(share - med))) * 1.4826
    bad = share > med + max(4 * mad, 0.05)
    if not bad.any():
        return keep
    # a sample next to a bad one is often half-covered by the same event
    bad = bad | np.r_[bad[1:], False] | np.r_[False, bad[:-1]]
    return keep if (~bad).sum() < max(3, min_keep * T) else ~bad


def _classify_keys(keys: Sequence[SeriesKey]) -> tuple[SignalInfo, ...]:
    """``classify`` of every key, computed once per distinct (name, stat)."""
    memo: dict[tuple[str, str], SignalInfo] = {}
    out = []
    for k in keys:
        ns = (k.name, k.label("stat", "value") or "value")
        info = memo.get(ns)
        if info is None:
            info = memo[ns] = classify(*ns)
        out.append(info)
    return tuple(out)


def score_series(signals: Signals, baseline: Window, incident: Window,
                 peers: list | None = None) -> SeriesScores:
    f = signals.frame
    ts = f.timestamps
    b = (ts >= baseline.start) & (ts <= baseline.end)
    if b.any():
        b[np.flatnonzero(b)] = clean_baseline(f.values[:, b])
    i = (ts >= incident.start) & (ts <= incident.end)
    X_b, X_i = f.values[:, b], f.values[:, i]
    n = len(f)
    infos = _classify_keys(f.keys)
    det = RobustDeviation().fit(X_b)
    _borrow_peer_baselines(det, X_b, peers)
    degenerate = det.scale_ <= det.abs_floor * 10
    # floors: a share moving less than 1 percentage point, a quantile moving less than half
    # of its histogram bucket, is not a meaningful change whatever the baseline spread
    floor = np.array([0.01 if inf.unit == "fraction" else 1.0 if inf.unit == "%" else 0.0 for inf in infos])
    if signals.resolution is not None and len(signals.resolution) == n:
        floor = np.fmax(floor, 0.5 * np.nan_to_num(signals.resolution))
    det.scale_ = np.fmax(det.scale_, floor)
    degenerate &= floor == 0
    dev_i = det.signed_deviation(X_i)
    dev_b = det.signed_deviation(X_b)
    up = np.array([inf.bad_direction in ("up", "both") for inf in infos])[:, None]
    down = np.array([inf.bad_direction in ("down", "both") for inf in infos])[:, None]

    def directional(d: np.ndarray) -> np.ndarray:
        return np.where(d >= 0, d * np.where(up, 1.0, 0.5), -d * np.where(down, 1.0, 0.5))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmin(X_b, axis=1, initial=np.inf, where=~np.isnan(X_b))[:, None] if X_b.size else None
        hi = np.nanmax(X_b, axis=1, initial=-np.inf, where=~np.isnan(X_b))[:, None] if X_b.size else None
    raw_i = directional(dev_i)
    raw_b = directional(dev_b)
    if lo is not None:
        raw_i = np.where((X_i >= lo) & (X_i <= hi), np.minimum(raw_i, IN_RANGE_CAP), raw_i)
        raw_b = np.minimum(raw_b, IN_RANGE_CAP)
    # a series constant in the baseline has no spread to compare with: a sustained move
    # (>= 30% of the incident samples) scores NOVEL_SCORE, a sporadic one stays below threshold
    if degenerate.any() and raw_i.shape[1]:
        moved = raw_i > 0
        since = np.cumsum(moved, axis=1) > 0  # from the first move on
        present = ~np.isnan(X_i) & since
        sustained = moved.sum(axis=1) / np.maximum(present.sum(axis=1), 1) >= 0.3
        level = np.where(sustained, NOVEL_SCORE, THRESHOLD * 0.75)[:, None]
        raw_i = np.where(degenerate[:, None] & moved, level, raw_i)
    s_i = rolling_median(raw_i)
    s_b = rolling_median(raw_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        normal_extreme = nanquantile_rows(s_b, 0.98) if s_b.shape[1] else np.full(n, np.nan)
    calib = 2.0 / np.fmax(2.0, np.nan_to_num(normal_extreme, nan=2.0))
    s_i = s_i * calib[:, None]
    # logs corroborate, they do not convict: a log burst alone (teams log noisily, and a
    # caller logs its callee's failures) scores at most LOG_CAP
    from_logs = np.array([k.label("source") == "logs" for k in f.keys], dtype=bool)
    if from_logs.any():
        s_i[from_logs] = np.minimum(s_i[from_logs], LOG_CAP)
    filled = np.where(np.isnan(s_i), -np.inf, s_i)
    ts_i = ts[i]
    if s_i.shape[1] and n:
        peak_idx = np.argmax(filled, axis=1)
        score = np.maximum(filled[np.arange(n), peak_idx], 0.0)
        above = filled >= THRESHOLD
        first = np.argmax(above, axis=1)
        onset = np.where(above.any(axis=1), ts_i[first], -1)
        peak = ts_i[peak_idx]
        observed = X_i[np.arange(n), peak_idx]
        direction = np.sign(dev_i[np.arange(n), peak_idx])
    else:
        score = np.zeros(n)
        onset = peak = np.full(n, -1)
        observed = np.full(n, np.nan)
        direction = np.zeros(n)

    # vanished series: present in the baseline, mostly absent from some point of the incident
    before_vanishing = score.copy()
    van = Vanished().fit(X_b).anomaly_score(X_i)
    vanished = np.zeros(n, dtype=bool)
    if van.shape[1] and n:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tail_missing = np.nanmean(van[:, -max(2, van.shape[1] // 3):], axis=1) >= 0.99
        vanished = np.nan_to_num(tail_missing, nan=0).astype(bool)
        if vanished.any():
            missing = np.nan_to_num(van, nan=0) > 0
            first_missing = np.argmax(missing, axis=1)
            onset = np.where(vanished, ts_i[first_missing], onset)
            peak = np.where(vanished, ts_i[first_missing], peak)
            score = np.where(vanished, np.maximum(score, VANISHED_SCORE), score)
    return SeriesScores(score, onset.astype(np.int64), peak.astype(np.int64),
                        np.where(direction < 0, -1, 1), det.median_, observed, vanished, infos,
                        before_vanishing)


@dataclass
class EntityScore:
    entity: EntityId
    score: float
    onset: int
    rows: list[int]  # significant rows, best first
    roles: dict[str, float]  # role -> best score among significant rows
    families: dict[str, float]


def entity_scores(signals: Signals, s: SeriesScores) -> dict[EntityId, EntityScore]:
    """Best series per entity (max, not sum: more columns must not mean more blame)."""
    out: dict[EntityId, EntityScore] = {}
    order = np.argsort(-s.score, kind="stable")
    for r in order:
        ent = signals.entities[r]
        sc = float(s.score[r])
        es = out.get(ent)
        if es is None:
            es = out[ent] = EntityScore(ent, sc, -1, [], {}, {})
        if sc < THRESHOLD:
            continue
        es.rows.append(int(r))
        role = "down" if s.vanished[r] else s.infos[r].role
        es.roles[role] = max(es.roles.get(role, 0.0), sc)
        if s.vanished[r] and s.infos[r].role == "fault" and s.before_vanishing is not None \
                and s.before_vanishing[r] >= THRESHOLD:
            es.roles["fault"] = max(es.roles.get("fault", 0.0), sc)  # e.g. an XID, then silence
            es.families[s.infos[r].family] = max(es.families.get(s.infos[r].family, 0.0), sc)
        fam = "vanished" if s.vanished[r] else s.infos[r].family
        es.families[fam] = max(es.families.get(fam, 0.0), sc)
    for es in out.values():
        if es.rows:
            top = es.score
            onsets = [int(s.onset[r]) for r in es.rows if s.score[r] >= 0.5 * top and s.onset[r] >= 0]
            es.onset = min(onsets) if onsets else -1
    return out


def anomalies_from(signals: Signals, s: SeriesScores, detector: str = "robust_deviation") -> tuple[Anomaly, ...]:
    """The significant rows as ``Anomaly`` records (best first)."""
    rows = np.flatnonzero(s.score >= THRESHOLD)
    rows = rows[np.argsort(-s.score[rows], kind="stable")]
    return tuple(
        Anomaly(entity=signals.entities[r], series=signals.frame.keys[r],
                kind="vanished" if s.vanished[r] else s.infos[r].family,
                onset=int(s.onset[r]), peak=int(s.peak[r]), score=float(s.score[r]),
                direction="up" if s.direction[r] > 0 else "down",
                detector="vanished" if s.vanished[r] else detector,
                baseline=float(s.baseline[r]), observed=float(s.observed[r]))
        for r in rows)
