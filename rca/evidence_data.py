"""The series behind one evidence item, ready to plot (``GET /v1/incidents/{id}/evidence/{n}/plot.png``).

``evidence_series(incident, hypothesis_rank, n, snapshot)`` finds what evidence ``n`` (1-based,
its position in the hypothesis) of hypothesis ``hypothesis_rank`` (1-based) points at and
rebuilds it from the snapshot, cut to baseline start .. incident end:

* ``metric`` — the derived signal row whose key is the evidence's ``ref["series"]`` (compared as
  name + label set, so label order does not matter). Only the raw series of that metric name
  are derived; a log/trace signal row (``source="logs"|"traces"``) is rebuilt from the
  snapshot's logs or spans alone.
* ``log`` — lines per step of the evidence's template (re-mined with the engine's miner; lines
  whose template equals an example's count too) on the hypothesis' root, its members and the
  evidence entity — the entities the ranker counted.
* ``trace`` — the median duration of the named span per bin (or its error share, when the
  evidence is about errors rather than latency); bins hold a few baseline spans each.
* ``change`` and ``graph`` items have no series: ``NotFound(field="n")`` with a fix.

Units: timestamps int64 unix seconds, values float64 with NaN for "no sample" (kept as gaps).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rca.catalog import classify
from rca.entities import aliases_from_inventory, entity_of_span
from rca.errors import BadInput, NotFound
from rca.serialize import parse_rfc3339
from rca.types import Evidence, Hypothesis, Incident, SeriesKey, Snapshot, Window

__all__ = ["EvidenceSeries", "evidence_series", "parse_series_key"]

_SERIES = re.compile(r"^\s*([^{}\s]+)\s*(?:\{(.*)\})?\s*$", re.S)
_LABEL = re.compile(r'\s*([^=,\s"]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)', re.S)
_SUFFIXES = ("", "_bucket", "_sum", "_count")
# Prometheus naming conventions, for series the signal catalogue gives no unit
_UNIT_SUFFIXES = (("_bytes", "bytes"), ("_seconds", "s"), ("_ratio", "fraction"), ("_percent", "%"),
                  ("_pct", "%"), ("_celsius", "°C"), ("_watts", "W"), ("_hertz", "Hz"), ("_mib", "MiB"))


@dataclass(frozen=True)
class EvidenceSeries:
    """One evidence item as a time series.

    ``timestamps`` int64 unix s (baseline start .. incident end); ``values`` float64, NaN =
    missing. ``baseline`` / ``incident`` are ``(start, end)`` unix s; ``onset`` unix s or None;
    ``baseline_value`` / ``observed_value`` are the evidence's own numbers in ``unit`` (None
    when it has none).
    """

    title: str
    unit: str
    timestamps: np.ndarray
    values: np.ndarray
    baseline: tuple[int, int]
    incident: tuple[int, int]
    onset: int | None
    baseline_value: float | None
    observed_value: float | None


def parse_series_key(text: str) -> SeriesKey | None:
    """``'name{a="1",b="2"}'`` (as ``str(SeriesKey)`` prints it) -> ``SeriesKey``; None if it
    does not parse. ``\\"`` and ``\\\\`` in values are unescaped."""
    m = _SERIES.match(text or "")
    if not m:
        return None
    name, body = m.group(1), (m.group(2) or "").strip()
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        lm = _LABEL.match(body, pos)
        if not lm or lm.end() == pos:
            return None
        labels[lm.group(1)] = re.sub(r"\\(.)", r"\1", lm.group(2))
        pos = lm.end()
    return SeriesKey.of(name, labels)


def evidence_series(incident: Incident, hypothesis_rank: int, n: int, snapshot: Snapshot) -> EvidenceSeries:
    """The series behind evidence ``n`` of hypothesis ``hypothesis_rank`` (both 1-based).

    Raises ``NotFound`` (``field="hypothesis"`` or ``"n"``) when there is no such item, or when
    the item has nothing to plot (a change event, a graph relation, a series the snapshot no
    longer holds).
    """
    hyp, ev = _pick(incident, hypothesis_rank, n)
    base, inc = _windows(incident, snapshot)
    if ev.kind == "metric":
        return _metric_series(ev, snapshot, base, inc, n)
    if ev.kind == "log":
        return _log_series(ev, hyp, snapshot, base, inc, n)
    if ev.kind == "trace":
        return _trace_series(ev, snapshot, base, inc, n)
    fixes = {"change": "a change event is a point in time, not a series: plot the metric evidence next to it",
             "graph": "a graph relation has no series: plot the metric evidence of the entity it names"}
    raise NotFound(f"evidence {n} is a {ev.kind!r} item ({ev.summary[:120]}), nothing to plot", field="n",
                   fix=fixes.get(ev.kind, "plot a metric, log or trace evidence item instead"))


# ---------------------------------------------------------------------------------------------- lookup

def _pick(incident: Incident, rank: int, n: int) -> tuple[Hypothesis, Evidence]:
    hyps = incident.hypotheses
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= len(hyps):
        raise NotFound(f"incident {incident.id} has no hypothesis {rank!r} (it has {len(hyps)})",
                       field="hypothesis", fix=f"use a rank from 1 to {len(hyps)}" if hyps else
                       "this incident has no hypotheses, so no evidence to plot")
    hyp = hyps[rank - 1]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(hyp.evidence):
        raise NotFound(f"hypothesis {rank} ({hyp.root}) has no evidence {n!r} (it has {len(hyp.evidence)})",
                       field="n", fix=f"use n from 1 to {len(hyp.evidence)}" if hyp.evidence else
                       "this hypothesis has no evidence items")
    return hyp, hyp.evidence[n - 1]


def _windows(incident: Incident, snapshot: Snapshot) -> tuple[Window, Window]:
    """Baseline and incident windows from ``incident.params`` (the engine writes them), else the
    incident window and everything of the snapshot before it."""
    step = snapshot.window.step
    p = incident.params or {}
    try:
        inc = Window(int(p["incident"][0]), int(p["incident"][1]), step)
    except (KeyError, TypeError, ValueError, IndexError, BadInput):
        inc = Window(incident.window.start, incident.window.end, step)
    try:
        base = Window(int(p["baseline"][0]), int(p["baseline"][1]), step)
    except (KeyError, TypeError, ValueError, IndexError, BadInput):
        start = min(snapshot.window.start, inc.start - step)
        base = Window(start, inc.start - step, step)
    return base, inc


def _grid(snapshot: Snapshot) -> np.ndarray:
    ts = snapshot.metrics.timestamps
    return ts if len(ts) else snapshot.window.timestamps()


def _cut(ts: np.ndarray, values: np.ndarray, base: Window, inc: Window) -> tuple[np.ndarray, np.ndarray]:
    keep = (ts >= base.start) & (ts <= inc.end)
    return np.asarray(ts[keep], dtype=np.int64), np.asarray(values[keep], dtype=np.float64)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _onset(v: Any) -> int | None:
    if v is None:
        return None
    try:
        return parse_rfc3339(v, field="onset")
    except BadInput:
        return None


def _result(title: str, unit: str, ts: np.ndarray, vals: np.ndarray, base: Window, inc: Window,
            onset: int | None, b: float | None, o: float | None) -> EvidenceSeries:
    t, v = _cut(ts, vals, base, inc)
    return EvidenceSeries(title=title, unit=unit, timestamps=t, values=v, baseline=(base.start, base.end),
                          incident=(inc.start, inc.end), onset=onset, baseline_value=b, observed_value=o)


# ---------------------------------------------------------------------------------------------- metric

def _metric_series(ev: Evidence, snapshot: Snapshot, base: Window, inc: Window, n: int) -> EvidenceSeries:
    text = ev.ref.get("series")
    if not isinstance(text, str) or not text:
        raise NotFound(f"metric evidence {n} names no series", field="n",
                       fix="re-run the analysis: its evidence should carry ref.series")
    want = parse_series_key(text)
    name = want.name if want is not None else text.split("{", 1)[0].strip()
    source = want.label("source") if want is not None else None
    if source == "logs" and name.startswith("log_"):
        keys, vals, ts = _log_signal_rows(snapshot, base, name)
    elif source == "traces" and name.startswith("trace_"):
        keys, vals, ts = _trace_signal_rows(snapshot, base)
    else:
        keys, vals, ts = _metric_rows(snapshot, name)
    row = next((i for i, k in enumerate(keys) if str(k) == text), None)
    if row is None and want is not None:
        row = next((i for i, k in enumerate(keys) if k == want), None)
    if row is None:
        raise NotFound(f"series {text} of evidence {n} is not in the snapshot (its data may have expired "
                       "or the source no longer returns it)", field="n",
                       fix="fetch a window that still holds the incident's data, or re-run the analysis")
    key = keys[row]
    stat = key.label("stat", "value") or "value"
    unit = _unit(key.name, stat)
    entity = str(ev.ref.get("entity") or ev.entity)
    title = f"{entity} · {key.name}" + ("" if stat == "value" else f" {stat}")
    return _result(title, unit, ts, vals[row], base, inc, _onset(ev.ref.get("start")),
                   _num(ev.ref.get("baseline")), _num(ev.ref.get("observed")))


def _unit(name: str, stat: str) -> str:
    if name == "log_error_lines":
        return "z (Poisson surprise)"
    if name == "log_novel_lines":
        return "lines"
    unit = classify(name, stat).unit
    if unit:
        return unit
    if stat == "rate":
        return "1/s"
    if stat.startswith("ratio:") or stat == "error_ratio":
        return "fraction"
    return next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), "")


def _metric_rows(snapshot: Snapshot, name: str) -> tuple[Sequence[SeriesKey], np.ndarray, np.ndarray]:
    """Derive only the raw series a derived ``name`` can come from (histogram parts, counters,
    gauges); each derived row depends on its own raw rows only, so this equals a full derive."""
    from rca.signals import derive

    raw = snapshot.metrics
    wanted = {name + s for s in _SUFFIXES}
    part = raw.select(lambda k: k.name in wanted)
    if not len(part):
        return (), np.empty((0, len(raw.timestamps))), raw.timestamps
    sig = derive(part, aliases_from_inventory(snapshot.inventory))
    return sig.frame.keys, sig.frame.values, sig.frame.timestamps


def _log_signal_rows(snapshot: Snapshot, base: Window, name: str
                     ) -> tuple[Sequence[SeriesKey], np.ndarray, np.ndarray]:
    from rca.rank.sources import log_signals

    ts = _grid(snapshot)
    # templates only change the novel-lines rows; mining them costs ~0.2 s on a few thousand lines
    templates = _templates(snapshot) if name == "log_novel_lines" else ()
    keys, _, vals = log_signals(snapshot.logs, templates, ts, base)
    return keys, vals, ts


def _trace_signal_rows(snapshot: Snapshot, base: Window
                       ) -> tuple[Sequence[SeriesKey], np.ndarray, np.ndarray]:
    from rca.rank.sources import trace_signals

    ts = _grid(snapshot)
    keys, _, vals = trace_signals(snapshot.spans, ts, aliases_from_inventory(snapshot.inventory), base)
    return keys, vals, ts


def _templates(snapshot: Snapshot) -> tuple[str, ...]:
    """The engine's templates of the snapshot's lines (same miner, same input -> same output)."""
    from models.log_templates import LogTemplateMiner

    if not snapshot.logs:
        return ()
    return tuple(LogTemplateMiner().fit_transform([r.body for r in snapshot.logs]))


# ---------------------------------------------------------------------------------------------- logs

def _bin_index(grid: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Index of the grid step holding each time (a sample at grid[j] counts [grid[j], grid[j+1]));
    -1 outside the grid."""
    if not len(grid):
        return np.full(len(t_s), -1)
    step = int(np.median(np.diff(grid))) if len(grid) > 1 else 60
    j = np.searchsorted(grid, t_s, side="right") - 1
    return np.where((j >= 0) & (t_s < grid[-1] + step), j, -1)


def _log_series(ev: Evidence, hyp: Hypothesis, snapshot: Snapshot, base: Window, inc: Window,
                n: int) -> EvidenceSeries:
    template = ev.ref.get("template")
    if not isinstance(template, str) or not template:
        raise NotFound(f"log evidence {n} names no template", field="n",
                       fix="re-run the analysis: its evidence should carry ref.template")
    logs = snapshot.logs
    if not logs:
        raise NotFound(f"the snapshot holds no log lines for evidence {n}", field="n",
                       fix="fetch a window (and log source) that still holds the incident's logs")
    templates = _templates(snapshot)
    examples = {str(x)[:300] for x in ev.ref.get("examples") or ()}
    targets = {template} | {tpl for r, tpl in zip(logs, templates, strict=True) if r.body[:300] in examples}
    # the entities the ranker counted: the root, its group members, and the evidence's own
    ents = {hyp.root, ev.entity, *snapshot.inventory.members(hyp.root)}
    t_s = np.fromiter((r.ts_ns // 1_000_000_000 for r, tpl in zip(logs, templates, strict=True)
                       if tpl in targets and r.entity in ents), dtype=np.int64)
    grid = _grid(snapshot)
    step = int(np.median(np.diff(grid))) if len(grid) > 1 else snapshot.window.step
    j = _bin_index(grid, t_s)
    counts = np.bincount(j[j >= 0], minlength=len(grid)).astype(np.float64)[: len(grid)]
    if not len(t_s):
        counts[:] = np.nan  # the template is gone from this snapshot: no data, not "zero lines"
    b_count, i_count = _num(ev.ref.get("baseline_count")), _num(ev.ref.get("count"))
    b_val = b_count * step / max(base.duration, 1) if b_count is not None else None
    o_val = i_count * step / max(inc.duration, 1) if i_count is not None else None
    onset = None
    if b_count == 0:  # a new template: its first line after the baseline is the onset
        after = t_s[t_s > base.end]
        onset = int(after.min()) if len(after) else None
    short = template if len(template) <= 70 else template[:69] + "…"
    title = f"{ev.entity} · log lines '{short}'"
    return _result(title, f"lines per {step} s", grid, counts, base, inc, onset, b_val, o_val)


# ---------------------------------------------------------------------------------------------- traces

def _trace_series(ev: Evidence, snapshot: Snapshot, base: Window, inc: Window, n: int) -> EvidenceSeries:
    name = ev.ref.get("span")
    if not isinstance(name, str) or not name:
        raise NotFound(f"trace evidence {n} names no span", field="n",
                       fix="re-run the analysis: its evidence should carry ref.span")
    aliases = aliases_from_inventory(snapshot.inventory)
    groups = {r.src: r.dst for r in snapshot.inventory.relations if r.relation == "member_of"}
    rows = []
    for s in snapshot.spans:
        if s.name != name:
            continue
        e = entity_of_span(s, aliases)
        if e == ev.entity or groups.get(e) == ev.entity:
            rows.append((s.start_ns // 1_000_000_000, s.duration_s, s.status == "error"))
    if not rows:
        raise NotFound(f"the snapshot holds no '{name}' spans of {ev.entity} for evidence {n}", field="n",
                       fix="fetch a window (and trace source) that still holds the incident's spans")
    t_s = np.array([r[0] for r in rows], dtype=np.int64)
    dur = np.array([r[1] for r in rows], dtype=np.float64)
    err = np.array([r[2] for r in rows], dtype=np.float64)
    db, di = _num(ev.ref.get("baseline_median_s")), _num(ev.ref.get("incident_median_s"))
    eb, ei = _num(ev.ref.get("baseline_error_share")), _num(ev.ref.get("incident_error_share"))
    # the ranker reports a span for latency (median x1.5) or errors (+5 points); plot what it saw
    latency = not (db is not None and di is not None and di < 1.5 * db
                   and eb is not None and ei is not None and ei >= eb + 0.05)
    grid = _grid(snapshot)
    step = int(np.median(np.diff(grid))) if len(grid) > 1 else snapshot.window.step
    # bins that hold ~5 baseline spans each: sampled traces are sparse, one span per bin is noise
    # (over the part of the baseline that has spans at all: traces may cover part of the window)
    in_b = (t_s >= base.start) & (t_s <= base.end)
    covered = base.end - max(base.start, int(t_s[in_b].min())) if in_b.any() else base.duration
    per_step = in_b.sum() / max(covered / step, 1)
    k = int(np.clip(math.ceil(5.0 / max(per_step, 1e-9)), 1, 20))
    bins = grid[::k]
    j = _bin_index(bins, t_s)
    ok = j >= 0
    vals = np.full(len(bins), np.nan)
    order = np.argsort(j[ok], kind="stable")
    jj, x = j[ok][order], (dur if latency else err)[ok][order]
    if len(jj):
        cuts = np.flatnonzero(np.diff(jj)) + 1
        for idx, chunk in zip(np.split(jj, cuts), np.split(x, cuts), strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                vals[idx[0]] = float(np.median(chunk)) if latency else float(np.mean(chunk))
    what = "median duration" if latency else "error share"
    title = f"{ev.entity} · span '{name}' {what}"
    unit = "s" if latency else "fraction"
    b_val, o_val = (db, di) if latency else (eb, ei)
    return _result(title, unit, bins, vals, base, inc, None, b_val, o_val)

