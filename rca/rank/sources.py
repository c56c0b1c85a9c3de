"""Logs and traces as signals beside the metrics, so one scorer judges all three sources and
an entity anomalous in several of them is seen to be (multi-source agreement).

Per entity, on the metric time grid (a sample at ``ts[j]`` counts events in
``[ts[j], ts[j+1])``), over trailing windows long enough to hold a few events at the entity's
usual rate (sampled traces and logs are sparse):

* ``log_error_lines`` — lines at ERROR/FATAL/CRITICAL (or, with no level, whose text says
  error/exception/fail…) as a Poisson surprise ``(count - expected) / sqrt(expected + 1)``
  against the entity's baseline rate;
* ``log_novel_lines`` — lines of warning/error templates never seen in the entity's baseline
  (>= 3 of them, on an entity that logged enough to know its vocabulary): a new code path;
* ``trace_self_latency_mean_s`` — the entity's *own* time per span: duration minus the time
  spent in its direct children. A slow callee makes every caller's span longer, but only its
  own self time rises — the trace-level answer to "who added the latency";
* ``trace_error_origin_ratio`` — share of the entity's spans that failed while none of their
  children failed: where errors start, not everyone they pass through.

Windows with fewer than 5 spans give NaN (no estimate). ``with_source_signals`` also sets each
row's resolution (the smallest change that means something) so the scorer does not turn
sampling noise into findings.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rca.entities import span_entities
from rca.signals import Signals
from rca.types import EntityId, LogRecord, MetricFrame, SeriesKey, Span, Window

__all__ = ["ERROR_LEVELS", "WARN_LEVELS", "log_signals", "trace_signals", "with_source_signals"]

ERROR_LEVELS = frozenset({"ERROR", "ERR", "FATAL", "CRITICAL", "CRIT", "SEVERE", "EMERG", "ALERT", "PANIC"})
WARN_LEVELS = frozenset({"WARN", "WARNING"})
_ERROR_TEXT = re.compile(r"\b(error|exception|fail(ed|ure)?|refused|timed? ?out|unavailable|panic)\b", re.I)
_MIN_SPANS = 3  # spans per entity and step below which a quantile is not estimated


def _bins(ts_grid: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Index of the grid step holding each time (-1 outside the grid)."""
    if not len(ts_grid):
        return np.full(len(t_s), -1)
    step = int(np.median(np.diff(ts_grid))) if len(ts_grid) > 1 else 60
    j = np.searchsorted(ts_grid, t_s, side="right") - 1
    return np.where((j >= 0) & (t_s < ts_grid[-1] + step), j, -1)


def _count_rows(ents: list[EntityId], ent_idx: np.ndarray, j: np.ndarray, T: int) -> np.ndarray:
    ok = j >= 0
    flat = np.bincount(ent_idx[ok] * T + j[ok], minlength=len(ents) * T)
    return flat.reshape(len(ents), T).astype(float)


def _rolling_sum(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, the sum over the last ``k[row]`` columns (trailing window, causal)."""
    c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)
    T = a.shape[1]
    idx = np.arange(1, T + 1)[None, :]
    lo = np.maximum(idx - k[:, None], 0)
    return np.take_along_axis(c, idx.repeat(a.shape[0], 0), axis=1) - np.take_along_axis(c, lo, axis=1)


def _window_steps(counts_b: np.ndarray, steps_b: np.ndarray | int, want: float) -> np.ndarray:
    """Steps per window so that a window holds about ``want`` events at the baseline rate
    (``counts_b`` events over ``steps_b`` steps, per row)."""
    rate = counts_b / np.maximum(steps_b, 1)
    return np.clip(np.ceil(want / np.maximum(rate, 1e-9)), 1, 20).astype(np.int64)


def log_signals(logs: Sequence[LogRecord], templates: Sequence[str], ts_grid: np.ndarray,
                baseline: Window) -> tuple[list[SeriesKey], list[EntityId], np.ndarray]:
    """Per entity: error lines as a Poisson surprise against the baseline rate, and lines of
    new error templates."""
    T = len(ts_grid)
    if not logs or not T:
        return [], [], np.zeros((0, T))
    ents = sorted({r.entity for r in logs})
    index = {e: i for i, e in enumerate(ents)}
    t_s = np.fromiter((r.ts_ns // 1_000_000_000 for r in logs), dtype=np.int64, count=len(logs))
    ent_idx = np.fromiter((index[r.entity] for r in logs), dtype=np.int64, count=len(logs))
    j = _bins(ts_grid, t_s)
    level = [(r.severity or "").upper() for r in logs]
    err = np.fromiter((lv in ERROR_LEVELS or (not lv and bool(_ERROR_TEXT.search(r.body)))
                       for lv, r in zip(level, logs, strict=True)), dtype=bool, count=len(logs))
    warn = err | np.fromiter((lv in WARN_LEVELS for lv in level), dtype=bool, count=len(logs))
    tpl = np.asarray(templates, dtype=object) if len(templates) == len(logs) else np.asarray(
        [r.body for r in logs], dtype=object)
    in_base = (t_s >= baseline.start) & (t_s <= baseline.end)
    after = t_s > baseline.end
    b_cols = (ts_grid >= baseline.start) & (ts_grid <= baseline.end)
    n_b = int(b_cols.sum())
    # new error templates: unseen in the entity's baseline, >= 3 lines after it, on an entity
    # that logged enough in the baseline for its vocabulary to be known
    lines_b = np.bincount(ent_idx[in_base], minlength=len(ents))
    seen = set(zip(ent_idx[in_base].tolist(), tpl[in_base].tolist(), strict=True))
    cand = warn & after
    per_tpl: dict[tuple[int, str], int] = {}
    for e, t in zip(ent_idx[cand].tolist(), tpl[cand].tolist(), strict=True):
        if (e, t) not in seen:
            per_tpl[(e, t)] = per_tpl.get((e, t), 0) + 1
    novel = np.fromiter((c and per_tpl.get((e, t), 0) >= 3 and lines_b[e] >= 20
                         for c, e, t in zip(cand.tolist(), ent_idx.tolist(), tpl.tolist(), strict=True)),
                        dtype=bool, count=len(logs))
    errs = _count_rows(ents, ent_idx[err], j[err], T)
    k = _window_steps(errs[:, b_cols].sum(axis=1), n_b, 5.0)
    roll = _rolling_sum(errs, k)
    lam = errs[:, b_cols].sum(axis=1) / max(n_b, 1) * k
    surprise = (roll - lam[:, None]) / np.sqrt(lam[:, None] + 1.0)
    nov = _rolling_sum(_count_rows(ents, ent_idx[novel], j[novel], T), np.full(len(ents), 4))
    keys, owners, rows = [], [], []
    for name, mat in (("log_error_lines", surprise), ("log_novel_lines", nov)):
        for i, e in enumerate(ents):
            if name == "log_novel_lines" and not mat[i].any():
                continue
            keys.append(SeriesKey.of(name, source="logs", entity=e))
            owners.append(e)
            rows.append(mat[i])
    return keys, owners, np.vstack(rows) if rows else np.zeros((0, T))


def trace_signals(spans: Sequence[Span], ts_grid: np.ndarray, aliases: Mapping[str, EntityId] | None = None,
                  baseline: Window | None = None) -> tuple[list[SeriesKey], list[EntityId], np.ndarray]:
    """Mean self time and error-origin share per entity over trailing windows that hold
    about 40 spans at the entity's usual rate (sampled traces are sparse)."""
    T = len(ts_grid)
    if not spans or not T:
        return [], [], np.zeros((0, T))
    df = pd.DataFrame({
        "trace": [s.trace_id for s in spans],
        "span": [s.span_id for s in spans],
        "parent": [s.parent or "" for s in spans],
        "ent": list(span_entities(spans, aliases)),
        "t": np.fromiter((s.start_ns // 1_000_000_000 for s in spans), dtype=np.int64, count=len(spans)),
        "dur": np.fromiter(((s.end_ns - s.start_ns) / 1e9 for s in spans), dtype=float, count=len(spans)),
        "err": np.fromiter((s.status == "error" for s in spans), dtype=bool, count=len(spans)),
    })
    child = df[df.parent != ""].groupby(["trace", "parent"], sort=False).agg(cdur=("dur", "sum"), cerr=("err", "max"))
    df = df.join(child, on=["trace", "span"])
    df["self"] = (df["dur"] - df["cdur"].fillna(0.0)).clip(lower=0.0)
    df["origin"] = df["err"].to_numpy() & ~(df["cerr"].to_numpy(dtype=float, na_value=0.0) > 0)
    j = _bins(ts_grid, df["t"].to_numpy())
    ok = j >= 0
    ents = sorted(df.ent[ok].unique())
    if not ents:
        return [], [], np.zeros((0, T))
    index = {e: i for i, e in enumerate(ents)}
    ei = df.ent[ok].map(index).to_numpy(dtype=np.int64)
    flat = ei * T + j[ok]
    size = len(ents) * T
    n = np.bincount(flat, minlength=size).reshape(len(ents), T).astype(float)
    self_sum = np.bincount(flat, weights=df["self"].to_numpy()[ok], minlength=size).reshape(len(ents), T)
    orig = np.bincount(flat, weights=df["origin"].to_numpy(dtype=float)[ok], minlength=size).reshape(len(ents), T)
    b_cols = (ts_grid >= baseline.start) & (ts_grid <= baseline.end) if baseline else np.ones(T, dtype=bool)
    # the usual rate: over the steps that have spans at all (traces may cover part of the window)
    k = _window_steps(n[:, b_cols].sum(axis=1), (n[:, b_cols] > 0).sum(axis=1), 40.0)
    rn, rs, ro = _rolling_sum(n, k), _rolling_sum(self_sum, k), _rolling_sum(orig, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_self = np.where(rn >= 5, rs / rn, np.nan)
        origin = np.where(rn >= 5, ro / rn, np.nan)
    keys, owners, rows = [], [], []
    for i, e in enumerate(ents):
        for name, mat in (("trace_self_latency_mean_s", mean_self), ("trace_error_origin_ratio", origin)):
            keys.append(SeriesKey.of(name, source="traces", entity=e))
            owners.append(e)
            rows.append(mat[i])
    return keys, owners, np.vstack(rows)


def with_source_signals(signals: Signals, logs: Sequence[LogRecord], templates: Sequence[str],
                        spans: Sequence[Span], baseline: Window,
                        aliases: Mapping[str, EntityId] | None = None) -> Signals:
    """``signals`` with the log and trace rows appended (unchanged when there are neither)."""
    ts = signals.frame.timestamps
    parts = [log_signals(logs, templates, ts, baseline), trace_signals(spans, ts, aliases, baseline)]
    keys = [k for p in parts for k in p[0]]
    if not keys:
        return signals
    ents = [e for p in parts for e in p[1]]
    vals = np.vstack([p[2] for p in parts if len(p[0])])
    frame = MetricFrame(tuple(signals.frame.keys) + tuple(keys), ts,
                        np.vstack([signals.frame.values, vals]) if len(signals.frame) else vals)
    # log rows are already in units of "surprise" / line counts: a change below 1 means
    # nothing however flat the baseline was (resolution 2 -> the scorer's scale is >= 1)
    # trace rows are means/shares of a few dozen sampled spans: a self-time change under 25 %
    # of its baseline, an error share under 5 points, is sampling noise, not a finding
    extra = np.array([2.0 if k.label("source") == "logs" else 0.0 for k in keys])
    b_cols = (ts >= baseline.start) & (ts <= baseline.end)
    for i, k in enumerate(keys):
        if k.name == "trace_self_latency_mean_s":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = float(np.nanmedian(vals[i, b_cols])) if b_cols.any() else float("nan")
            extra[i] = 0.5 * med if np.isfinite(med) else 0.0
        elif k.name == "trace_error_origin_ratio":
            extra[i] = 0.1
    res = signals.resolution if signals.resolution is not None else np.zeros(len(signals.frame))
    res = np.concatenate([res, extra])
    return Signals(frame, tuple(signals.entities) + tuple(ents), signals.changes, res)
