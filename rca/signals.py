"""From raw series to signals a detector can judge: rates, ratios, quantiles, gauges.

Raw Prometheus series are not comparable as they are: counters only grow, histogram buckets
are cumulative per ``le``. ``derive`` turns a raw ``MetricFrame`` into a derived one in a few
vectorised passes. Every derived row keeps the original labels (minus ``le``) and adds a
``stat`` label:

* counters (``*_total``, and DCGM's counters without that suffix, e.g. ``*_VIOLATION`` ns)
                                -> ``rate`` (per second over ``rate_window_s``, resets handled)
* counters with a categorical label (``code``, ``status``, ``finished_reason`` …)
                                -> ``rate`` of the group (label dropped), ``ratio:<label>=<v>`` per
                                   value, and ``error_ratio`` (5xx share) for status codes
* histograms (``_bucket``)     -> ``p50``, ``p95``, ``p99`` (exact ``histogram_quantile``
                                   semantics), ``mean`` (Δsum/Δcount) and ``rate`` (Δcount)
* ``*_info`` series            -> change events (a new label set appearing = a deploy/config change)
* everything else (gauges)      -> ``value``

``derive`` also maps every derived row to its entity (``rca.entities``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rca.entities import entity_of_series
from rca.types import EntityId, MetricFrame, SeriesKey

__all__ = ["Change", "Signals", "counter_increase", "derive", "histogram_quantile"]

_CATEGORICAL = ("code", "status_code", "status", "finished_reason", "http_status_code")
_DROP_INFO_LABELS = ("version", "revision", "image", "git_sha", "commit", "build")
# counters that do not follow the ``_total`` convention: DCGM's throttle-time (ns), energy,
# replay, ECC and remapped-row counters, and its upper-case ``_TOTAL`` names
_OTHER_COUNTERS = re.compile(r"^DCGM_FI_DEV_\w*(_VIOLATION|_TOTAL|_COUNTER|_COUNT|ENERGY_CONSUMPTION|"
                             r"REMAPPED_ROWS|RETIRED_(SBE|DBE|PENDING))$|^DCGM_EXP_\w*_COUNT$")


@dataclass(frozen=True)
class Change:
    """A label set of an ``*_info`` series appeared (``kind="appeared"``) at ``at`` (unix s)."""

    entity: EntityId
    at: int
    series: SeriesKey
    summary: str


@dataclass(frozen=True, eq=False)
class Signals:
    """Derived matrix, the entity of each row, change events, and per-row ``resolution``: the
    smallest meaningful change (histogram bucket width for quantiles, 0 when unknown)."""

    frame: MetricFrame
    entities: tuple[EntityId, ...]
    changes: tuple[Change, ...] = ()
    resolution: np.ndarray | None = None

    def stat(self, i: int) -> str:
        return self.frame.keys[i].label("stat", "value") or "value"


def counter_increase(v: np.ndarray, w: int) -> np.ndarray:
    """Increase over the last ``w`` samples per row, with counter resets handled (NaN kept)."""
    d = np.diff(v, axis=1, prepend=np.nan)
    d = np.where(d < 0, v, d)  # a reset: the counter restarted from 0
    if w <= 1:
        return d
    filled = np.where(np.isnan(d), 0.0, d)
    c = np.cumsum(filled, axis=1)
    out = c - np.concatenate([np.zeros((v.shape[0], w)), c[:, :-w]], axis=1)
    valid = np.cumsum(~np.isnan(d), axis=1)
    nvalid = valid - np.concatenate([np.zeros((v.shape[0], w)), valid[:, :-w]], axis=1)
    out[nvalid < max(1, w // 2)] = np.nan
    out[:, :1] = np.nan
    return out


def histogram_quantile(q: float, bounds: np.ndarray, counts: np.ndarray,
                       return_width: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Prometheus ``histogram_quantile`` on cumulative bucket counts.

    ``bounds``: upper bounds ``[B]`` sorted, the last one ``+Inf``; ``counts``: ``[..., B, T]``
    cumulative (already rated/increased). Returns ``[..., T]``. Semantics of
    ``promql/quantile.go`` (2.42): NaN without a +Inf bucket, with fewer than 2 buckets or no
    observations; monotonicity forced; the +Inf bucket clamps to the second-highest bound;
    the first bucket's lower bound is 0 (or the result is its bound when that is <= 0).
    With ``return_width`` also returns the width of the bucket each value fell in (the
    resolution of the estimate; NaN where the value is NaN).
    """
    if math.isnan(q):
        return np.full(counts.shape[:-2] + counts.shape[-1:], np.nan)
    if q < 0:
        return np.full(counts.shape[:-2] + counts.shape[-1:], -np.inf)
    if q > 1:
        return np.full(counts.shape[:-2] + counts.shape[-1:], np.inf)
    bounds = np.asarray(bounds, dtype=float)
    shape = counts.shape[:-2] + counts.shape[-1:]
    if len(bounds) < 2 or not np.isinf(bounds[-1]):
        return np.full(shape, np.nan)
    c = np.where(np.isnan(counts), 0.0, counts)
    c = np.maximum.accumulate(c, axis=-2)
    total = c[..., -1, :]
    rank = q * total
    ge = c >= rank[..., None, :]
    b = np.argmax(ge, axis=-2)  # first bucket with cum >= rank
    upper = bounds[b]
    lower = np.where(b > 0, bounds[np.maximum(b - 1, 0)], 0.0)
    cum_b = np.take_along_axis(c, b[..., None, :], axis=-2)[..., 0, :]
    cum_below = np.where(b > 0, np.take_along_axis(c, np.maximum(b - 1, 0)[..., None, :], axis=-2)[..., 0, :],
                         0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (rank - cum_below) / (cum_b - cum_below)
        val = lower + (upper - lower) * np.where(np.isfinite(frac), frac, 0.0)
    val = np.where(b == len(bounds) - 1, bounds[-2], val)
    val = np.where((b == 0) & (bounds[0] <= 0), bounds[0], val)
    missing = np.isnan(counts).all(axis=-2)
    out = np.where((total <= 0) | missing, np.nan, val)
    if not return_width:
        return out
    finite = bounds[np.isfinite(bounds)]
    last_w = finite[-1] - finite[-2] if len(finite) > 1 else abs(finite[-1]) if len(finite) else np.nan
    width = np.where(np.isinf(upper), last_w, upper - lower)
    return out, np.where(np.isnan(out), np.nan, width)


def _le(v: str) -> float:
    return math.inf if v in ("+Inf", "Inf", "inf") else float(v)


def derive(frame: MetricFrame, aliases: Mapping[str, EntityId] | None = None,
           rate_window_s: int = 60) -> Signals:
    """Derive signals from a raw frame (see the module docstring)."""
    ts = frame.timestamps
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else 60
    w = max(1, round(rate_window_s / max(step, 1)))
    dt = float(w * step)
    keys: list[SeriesKey] = []
    rows: list[np.ndarray] = []
    res: dict[int, float] = {}
    changes: list[Change] = []

    buckets: dict[tuple[str, tuple], list[tuple[float, int]]] = defaultdict(list)
    sums: dict[tuple[str, tuple], int] = {}
    counts: dict[tuple[str, tuple], int] = {}
    counters: dict[tuple[str, tuple], list[tuple[str, str, int]]] = defaultdict(list)

    for i, k in enumerate(frame.keys):
        name = k.name
        if name.endswith("_created"):
            continue
        if name.endswith("_bucket") and k.label("le") is not None:
            base = name[: -len("_bucket")]
            buckets[(base, tuple(p for p in k.labels if p[0] != "le"))].append((_le(k.label("le")), i))
        elif name.endswith("_sum"):
            sums[(name[:-4], k.labels)] = i
        elif name.endswith("_count"):
            counts[(name[:-6], k.labels)] = i
        elif name.endswith("_info"):
            vals = frame.values[i]
            present = np.flatnonzero(~np.isnan(vals))
            if len(present) and present[0] > 0:
                at = int(ts[present[0]])
                ent = entity_of_series(k, aliases)
                extra = {a: b for a, b in k.labels if a in _DROP_INFO_LABELS}
                changes.append(Change(ent, at, k, f"{name} {extra or dict(k.labels)} appeared"))
        elif name.endswith("_total") or _OTHER_COUNTERS.match(name):
            cat = next((c for c in _CATEGORICAL if k.label(c) is not None), "")
            group = tuple(p for p in k.labels if p[0] != cat)
            counters[(name, group)].append((cat, k.label(cat) or "", i))
        else:
            keys.append(k.with_name(name, stat="value"))
            rows.append(frame.values[i])

    # counters: one increase pass over all of them
    c_idx = [i for group in counters.values() for _, _, i in group]
    inc = counter_increase(frame.values[c_idx], w) if c_idx else np.empty((0, len(ts)))
    pos = {i: j for j, i in enumerate(c_idx)}
    for (name, group), members in counters.items():
        block = inc[[pos[i] for _, _, i in members]]
        total = np.nansum(block, axis=0)
        total[np.isnan(block).all(axis=0)] = np.nan
        gkey = SeriesKey(name, group)
        keys.append(gkey.with_name(name, stat="rate"))
        rows.append(total / dt)
        cat = members[0][0]
        if cat:
            with np.errstate(invalid="ignore", divide="ignore"):
                share = block / total
            share[:, total == 0] = 0.0
            err = np.zeros(len(ts))
            for (_, val, _), srow in zip(members, share, strict=True):
                keys.append(gkey.with_name(name, stat=f"ratio:{cat}={val}"))
                rows.append(srow)
                if val[:1] == "5" or val.lower() in ("error", "5xx"):
                    err = err + np.nan_to_num(srow)
            if "code" in cat or "status" in cat:
                err[np.isnan(total)] = np.nan
                keys.append(gkey.with_name(name, stat="error_ratio"))
                rows.append(err)

    # histograms: group by identical bucket layouts, one quantile pass per layout
    layouts: dict[tuple[float, ...], list[tuple[str, tuple]]] = defaultdict(list)
    for gk, bl in buckets.items():
        bl.sort()
        layouts[tuple(b for b, _ in bl)].append(gk)
    for bounds, groups in layouts.items():
        idx = [i for g in groups for _, i in buckets[g]]
        B = len(bounds)
        inc_b = counter_increase(frame.values[idx], w).reshape(len(groups), B, len(ts))
        qs = {q: histogram_quantile(q, np.array(bounds), inc_b, return_width=True) for q in (0.5, 0.95, 0.99)}
        for gi, (base, labels) in enumerate(groups):
            gkey = SeriesKey(base, labels)
            for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                keys.append(gkey.with_name(base, stat=name))
                rows.append(qs[q][0][gi])
                w_row = qs[q][1][gi]
                if np.isfinite(w_row).any():
                    res[len(rows) - 1] = float(np.nanmedian(w_row))
            c_i, s_i = counts.pop((base, labels), None), sums.pop((base, labels), None)
            n = inc_b[gi, -1] if c_i is None else counter_increase(frame.values[[c_i]], w)[0]
            keys.append(gkey.with_name(base, stat="rate"))
            rows.append(n / dt)
            if s_i is not None:
                s = counter_increase(frame.values[[s_i]], w)[0]
                with np.errstate(invalid="ignore", divide="ignore"):
                    keys.append(gkey.with_name(base, stat="mean"))
                    rows.append(np.where(n > 0, s / n, np.nan))
    # summaries' or orphan _sum/_count: keep as rates
    for (base, labels), i in list(sums.items()) + list(counts.items()):
        keys.append(SeriesKey(base, labels).with_name(base, stat="rate"))
        rows.append(counter_increase(frame.values[[i]], w)[0] / dt)

    values = np.vstack(rows) if rows else np.empty((0, len(ts)))
    out = MetricFrame(tuple(keys), ts, values)
    ents = tuple(entity_of_series(k, aliases) for k in keys)
    resolution = np.zeros(len(keys))
    for i, w_ in res.items():
        resolution[i] = w_
    return Signals(out, ents, tuple(sorted(changes, key=lambda c: c.at)), resolution)
