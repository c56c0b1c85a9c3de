"""Logs and traces as ranking signals (rca/rank/sources.py)."""

from __future__ import annotations

import numpy as np

from rca.rank.sources import log_signals, trace_signals
from rca.types import LogRecord, Span, Window

T0 = 1_700_000_000
STEP = 10
GRID = T0 + STEP * np.arange(120)
BASE = Window(T0, T0 + STEP * 59, STEP)


def _trace(i: int, t: int, slow_leaf: bool, leaf_fails: bool) -> list[Span]:
    """frontend -> checkout -> payment; the leaf may be slow or fail (and the failure rises)."""
    tid = f"{i:032x}"
    ns = t * 1_000_000_000
    leaf = 0.50 if slow_leaf else 0.02
    mid = 0.01 + leaf
    top = 0.01 + mid
    err = "error" if leaf_fails else "ok"
    return [
        Span(tid, f"{3 * i:016x}", None, "frontend", "GET /", ns, ns + int(top * 1e9), err, "server"),
        Span(tid, f"{3 * i + 1:016x}", f"{3 * i:016x}", "checkout", "checkout", ns, ns + int(mid * 1e9), err),
        Span(tid, f"{3 * i + 2:016x}", f"{3 * i + 1:016x}", "payment", "charge", ns, ns + int(leaf * 1e9), err),
    ]


def _spans(slow_after: int | None = None, fail_after: int | None = None) -> list[Span]:
    out = []
    for i in range(1200):
        t = T0 + i
        out += _trace(i, t, slow_after is not None and t >= slow_after, fail_after is not None and t >= fail_after)
    return out


def _rows(keys, ents, vals, name):
    return {e: vals[i] for i, (k, e) in enumerate(zip(keys, ents, strict=True)) if k.name == name}


def test_self_time_rises_only_where_the_latency_is_added():
    onset = T0 + 800
    keys, ents, vals = trace_signals(_spans(slow_after=onset), GRID)
    self_t = _rows(keys, ents, vals, "trace_self_latency_mean_s")
    after = onset + 60 <= GRID
    before = onset > GRID
    rise = {e: np.nanmean(v[after]) - np.nanmean(v[before]) for e, v in self_t.items()}
    assert rise["service:payment"] > 0.4
    assert abs(rise["service:checkout"]) < 0.02 and abs(rise["service:frontend"]) < 0.02


def test_errors_are_attributed_to_where_they_originate():
    onset = T0 + 800
    keys, ents, vals = trace_signals(_spans(fail_after=onset), GRID)
    origin = _rows(keys, ents, vals, "trace_error_origin_ratio")
    after = onset + 60 <= GRID
    assert np.nanmean(origin["service:payment"][after]) > 0.9
    assert np.nanmean(origin["service:checkout"][after]) < 0.05
    assert np.nanmean(origin["service:frontend"][after]) < 0.05


def _logs(burst: bool) -> tuple[list[LogRecord], list[str]]:
    recs, tpls = [], []
    rng = np.random.default_rng(0)
    for t in range(T0, T0 + 1200, 2):
        recs.append(LogRecord(t * 1_000_000_000, "service:cart", "INFO", f"GET /cart/{rng.integers(100)} 200"))
        tpls.append("GET /cart/<*> 200")
        if rng.random() < 0.02:  # the odd error is normal
            recs.append(LogRecord(t * 1_000_000_000, "service:cart", "ERROR", "cache miss storm"))
            tpls.append("cache miss storm")
        if burst and t >= T0 + 800:
            recs.append(LogRecord(t * 1_000_000_000, "service:cart", "ERROR", "NullPointerException in Checkout"))
            tpls.append("NullPointerException in Checkout")
    return recs, tpls


def test_error_lines_are_a_surprise_against_the_usual_rate():
    quiet = _rows(*log_signals(*_logs(False), GRID, BASE), "log_error_lines")["service:cart"]
    loud = _rows(*log_signals(*_logs(True), GRID, BASE), "log_error_lines")["service:cart"]
    after = GRID >= T0 + 850
    assert np.max(np.abs(quiet)) < 4  # the normal trickle of errors is no surprise
    assert np.min(loud[after]) > 4


def test_new_error_templates_are_counted_only_when_new():
    keys, ents, vals = log_signals(*_logs(True), GRID, BASE)
    novel = _rows(keys, ents, vals, "log_novel_lines")["service:cart"]
    assert novel[GRID < T0 + 800].sum() == 0
    assert novel[GRID >= T0 + 850].min() > 0
