"""The one engine: ``Engine.analyze(request) -> Incident``.

CLI, REST API, scheduler and incident bot are thin shells around this. Flow: fetch one
snapshot from every connector (a failing source becomes a warning and ``no_data``), derive
signals, build the dependency graph, pick the symptom, rank, summarise, store.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from models.log_templates import LogTemplateMiner
from rca.catalog import classify
from rca.detect import detect
from rca.entities import aliases_from_inventory
from rca.errors import BadInput, SourceError
from rca.graph import DependencyGraph
from rca.graph.builders import build_graph
from rca.protocols import Connector, RankContext, Ranker, Store
from rca.rank.categories import describe
from rca.rank.sources import with_source_signals
from rca.signals import Signals, derive
from rca.types import (
    EntityId,
    Incident,
    Inventory,
    MetricFrame,
    Snapshot,
    Symptom,
    Window,
)

__all__ = ["AnalysisRequest", "Engine", "merge_snapshots", "pick_symptom"]


@dataclass(frozen=True)
class AnalysisRequest:
    """What to analyse. Either ``at`` (the time asked about, unix s) or an explicit incident
    ``window`` (and optionally its ``baseline``). ``signal``/``statistic`` name the symptom
    (``latency``/``p99``, ``errors``/``error_ratio`` …); ``scope`` restricts it to entities and
    ``metric`` (a regex on metric names, e.g. ``time_to_first_token``) to some of its series;
    ``selector`` limits what metric sources fetch (``{namespace="serving"}``); ``tz`` (IANA) is
    the zone the summary speaks in."""

    at: int | None = None
    window: Window | None = None
    baseline: Window | None = None
    question: str | None = None
    signal: str = "latency"
    statistic: str = "p99"
    scope: tuple[EntityId, ...] = ()
    metric: str | None = None
    selector: str | None = None
    tz: str = "UTC"
    params: dict = field(default_factory=dict)
    incident_id: str | None = None  # store the incident under this id (default: one derived from the request)


def merge_snapshots(window: Window, parts: Sequence[Snapshot], warnings: Sequence[str] = ()) -> Snapshot:
    inv = Inventory()
    for p in parts:
        inv = inv.merge(p.inventory)
    return Snapshot(window=window, metrics=MetricFrame.concat([p.metrics for p in parts]),
                    spans=tuple(s for p in parts for s in p.spans),
                    logs=tuple(r for p in parts for r in p.logs), inventory=inv,
                    warnings=tuple(warnings) + tuple(w for p in parts for w in p.warnings))


def _entry_points(graph: DependencyGraph) -> list[EntityId]:
    calls = [(a, b) for a, b, rel in graph.edges() if rel == "calls"]
    callers = {a for a, _ in calls}
    callees = {b for _, b in calls}
    return sorted(callers - callees)


def pick_symptom(signals: Signals, graph: DependencyGraph, baseline: Window, incident: Window,
                 signal: str, statistic: str, scope: Sequence[EntityId] = (), metric: str | None = None,
                 ) -> Symptom | None:
    """The series the question is about: ``signal`` family with ``statistic`` on the scoped
    entity (default: the entry point of the call graph, e.g. the API gateway), narrowed to
    metric names matching ``metric`` when some do (TTFT rather than any latency)."""
    targets = list(scope) or _entry_points(graph)
    if not targets:
        return None
    members = {b for a, b, rel in graph.edges() if rel == "member_of" and a in targets}
    targets = targets + sorted(members)
    f = signals.frame
    rows = [i for i, e in enumerate(signals.entities)
            if e in targets and classify(f.keys[i].name, f.keys[i].label("stat", "value") or "").family == signal]
    if not rows:
        return Symptom(entity=targets[0], signal=f"{statistic} {signal}")
    # what the entity serves, not the calls it makes to others (those are its callees' latency)
    rows = [i for i in rows if f.keys[i].label("side") != "client"] or rows
    if metric:
        rx = re.compile(metric, re.I)
        rows = [i for i in rows if rx.search(f.keys[i].name)] or rows
    exact = [i for i in rows if f.keys[i].label("stat") == statistic]
    rows = exact or rows
    ts = f.timestamps
    b = (ts >= baseline.start) & (ts <= baseline.end)
    i_ = (ts >= incident.start) & (ts <= incident.end)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = np.nanmedian(f.values[rows][:, b], axis=1)
        obs = np.nanmax(f.values[rows][:, i_], axis=1) if i_.any() else np.full(len(rows), np.nan)
        ratio = np.where(base > 0, obs / base, 0.0)
    j = int(np.nanargmax(np.nan_to_num(ratio, nan=-1.0)))
    r = rows[j]
    unit = classify(f.keys[r].name, f.keys[r].label("stat", "value") or "value").unit
    return Symptom(entity=signals.entities[r], signal=f"{statistic} {signal}", series=f.keys[r],
                   baseline=float(base[j]), observed=float(obs[j]), unit=unit)


def _summary(inc_symptom: Symptom | None, hyps, incident: Window, tz: str = "UTC") -> str:
    parts = []
    if inc_symptom and inc_symptom.series is not None and not np.isnan(inc_symptom.baseline):
        zone = UTC if tz == "UTC" else ZoneInfo(tz)  # the reader's zone: the one the question used
        start, end = (datetime.fromtimestamp(t, zone) for t in (incident.start, incident.end))
        parts.append(f"{inc_symptom.signal} of {inc_symptom.entity} went from {inc_symptom.baseline:.3g} to "
                     f"{inc_symptom.observed:.3g}{(' ' + inc_symptom.unit) if inc_symptom.unit else ''} "
                     f"between {start:%H:%M} and {end:%H:%M} {'UTC' if tz == 'UTC' else start.tzname()}.")
    if not hyps or hyps[0].confidence < 0.2:
        parts.append("No root cause stands out: nothing deviates clearly from the baseline"
                     + (f" (best guess {hyps[0].root}, confidence {hyps[0].confidence:.2f})." if hyps else "."))
        return " ".join(parts)
    h = hyps[0]
    parts.append(f"Most likely root cause: {h.root} ({h.category}, confidence {h.confidence:.2f}) — "
                 f"{describe(h.category)}.")
    if len(hyps) > 1:
        parts.append(f"Next: {hyps[1].root} ({hyps[1].category}, {hyps[1].confidence:.2f}).")
    return " ".join(parts)


class Engine:
    """Composes connectors, graph builders and a ranker (built by ``rca.wiring``)."""

    def __init__(self, connectors: Sequence[Connector], ranker: Ranker, store: Store | None = None,
                 graph_builders: Sequence | None = None, incident_before_s: int = 900,
                 incident_after_s: int = 300, baseline_s: int = 3600, detect_anomalies: bool = True,
                 max_window_s: int = 86400) -> None:
        self.connectors = list(connectors)
        self.ranker = ranker
        self.store = store
        self.graph_builders = graph_builders
        self.incident_before_s = incident_before_s
        self.incident_after_s = incident_after_s
        self.baseline_s = baseline_s
        self.detect_anomalies = detect_anomalies
        self.max_window_s = max_window_s

    def windows(self, req: AnalysisRequest, step: int) -> tuple[Window, Window]:
        if req.window is not None:
            inc = req.window
        elif req.at is not None:
            inc = Window(req.at - self.incident_before_s, req.at + self.incident_after_s, step)
        else:
            raise BadInput("nothing to analyse", field="at", fix="give a time (at) or a window")
        if inc.end - inc.start > self.max_window_s:
            raise BadInput(f"the window is {(inc.end - inc.start) / 3600:.1f} h long, over the "
                           f"{self.max_window_s / 3600:g} h limit", field="window",
                           fix="ask about a shorter time range (or raise RCA_MAX_WINDOW_S)")
        base = req.baseline or Window(inc.start - self.baseline_s, inc.start - inc.step, inc.step)
        return base, inc

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        """One snapshot from every source; a failing source becomes a warning. ``selector``
        (``{namespace="serving"}``) goes to the sources that take series selectors
        (``series_selector = True``: Prometheus-compatible, files, Loki); trace sources, whose
        own query languages differ, fetch the window whole."""
        parts, warnings = [], []
        for c in self.connectors:
            try:
                parts.append(c.fetch(window, selector if getattr(c, "series_selector", False) else None))
            except SourceError as exc:
                warnings.append(f"source {exc.source} gave no data: {exc}")
        return merge_snapshots(window, parts, warnings)

    def analyze(self, req: AnalysisRequest, snapshot: Snapshot | None = None) -> Incident:
        t0 = time.perf_counter()
        step = snapshot.window.step if snapshot is not None else 15
        base, inc = self.windows(req, step)
        snap = snapshot if snapshot is not None else self.fetch(Window(base.start, inc.end, step), req.selector)
        aliases = aliases_from_inventory(snap.inventory)
        signals = derive(snap.metrics, aliases)
        graph = build_graph(snap, self.graph_builders)
        symptom = pick_symptom(signals, graph, base, inc, req.signal, req.statistic, req.scope,
                               req.metric)
        templates = tuple(LogTemplateMiner().fit_transform([r.body for r in snap.logs])) if snap.logs else ()
        wants = self.detect_anomalies and getattr(self.ranker, "needs_anomalies", True)
        detection = detect(signals, snap, base, inc, templates=templates) if wants else None
        # logs and traces join the metrics as signals: one scorer, multi-source agreement
        signals = with_source_signals(signals, snap.logs, templates, snap.spans, base, aliases)
        ctx = RankContext(snapshot=snap, signals=signals.frame, signal_entities=signals.entities,
                          anomalies=detection.anomalies if detection else (), graph=graph, baseline=base,
                          incident=inc, symptom=symptom, changes=signals.changes,
                          resolution=signals.resolution, params=req.params, log_templates=templates)
        if hasattr(self.ranker, "rank_candidates"):
            ranked, pool = self.ranker.rank_candidates(ctx)
            hyps, candidates = tuple(ranked), tuple(pool)
        else:
            hyps, candidates = tuple(self.ranker.rank(ctx)), ()
        no_data = [w for w in snap.warnings]
        if not len(snap.metrics):
            no_data.append("metrics: no series in the window")
        checked = [f"{len(snap.metrics)} raw series, {len(signals.frame)} derived signals over "
                   f"{len({e for e in signals.entities})} entities",
                   f"{len(snap.spans)} spans, {len(snap.logs)} log lines",
                   f"dependency graph: {len(graph)} entities, {len(graph.edges())} edges"]
        source = getattr(self.ranker, "reranker", None)
        active = source.get() if source is not None else None
        params = {"ranker": getattr(self.ranker, "name", type(self.ranker).__name__),
                  **({"reranker_version": active.version} if active is not None else {}),
                  "baseline": [base.start, base.end], "incident": [inc.start, inc.end],
                  "signal": req.signal, "statistic": req.statistic, "scope": list(req.scope),
                  "metric": req.metric, "selector": req.selector, "tz": req.tz, "at": req.at, "elapsed_s": round(time.perf_counter() - t0, 3), **req.params}
        ident = hashlib.sha1(json.dumps([req.question, base.start, inc.start, inc.end, req.signal,
                                         req.statistic, list(req.scope), req.metric, req.tz], default=str).encode()).hexdigest()
        incident = Incident(id=req.incident_id or f"inc-{ident[:12]}", question=req.question, window=inc, symptom=symptom,
                            hypotheses=hyps, params=params, checked=tuple(checked), no_data=tuple(no_data),
                            summary=_summary(symptom, hyps, inc, req.tz), created_at=int(time.time()),
                            candidates=candidates)
        if self.store is not None:
            self.store.save_incident(incident)
        return incident

