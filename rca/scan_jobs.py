"""Scan jobs: what a scheduled scan looks at (``ScanJob``) and one run of it (``ScanRunner``).

A run is a thin shell around the engine (DESIGN §1): ``Engine.fetch`` one snapshot,
``rca.scan.scan_snapshot`` to flag anomalies in the last ``window`` against the ``baseline``
before it, one ``Engine.analyze`` over the same snapshot to rank root causes of what was
flagged, then ``rca.scan_incidents`` to open, update or resolve incidents. Every run is
stored as a scan record (``running`` -> ``ok | partial | failed``); a run never raises once
its record exists (the scheduler must survive anything a source or detector does).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rca.detect import LEVEL
from rca.engine import AnalysisRequest, Engine
from rca.errors import BadInput, RcaError
from rca.scan import parse_duration, scan_snapshot
from rca.scan_incidents import Change, OnChange, reconcile
from rca.settings import parse_json_or_yaml
from rca.types import Window

__all__ = ["ScanJob", "ScanRunner", "load_scan_jobs"]

log = logging.getLogger(__name__)

_FIELDS = ("name", "trigger", "window", "baseline", "min_level", "selector", "sources", "step",
           "min_confidence", "max_incidents", "incidents")


@dataclass(frozen=True)
class ScanJob:
    """One scan to run on a schedule. ``trigger`` is a five-field crontab (``*/5 * * * *``,
    UTC) or an interval (``5m``, ``90s``); ``None`` for a manual (ad-hoc) scan. ``window`` is
    judged against the ``baseline`` before it; anomalies at or above ``min_level`` are flagged.
    ``selector`` goes to the metric sources; ``sources`` names the configured sources to use
    (empty: all). Hypotheses at or above ``min_confidence`` that explain flagged entities become
    incidents (at most ``max_incidents`` per run); ``incidents=False`` only detects."""

    name: str
    trigger: str | None = "5m"
    window: str = "30m"
    baseline: str = "3h"
    min_level: float = LEVEL
    selector: str | None = None
    sources: tuple[str, ...] = ()
    step: str = "15s"
    min_confidence: float = 0.5
    max_incidents: int = 3
    incidents: bool = True

    @property
    def window_s(self) -> int:
        return parse_duration(self.window, field=f"scan job {self.name}: window")

    @property
    def baseline_s(self) -> int:
        return parse_duration(self.baseline, field=f"scan job {self.name}: baseline")

    @property
    def step_s(self) -> int:
        return parse_duration(self.step, field=f"scan job {self.name}: step")

    def trigger_kind(self) -> str:
        """``cron``, ``interval`` or ``manual``."""
        if self.trigger is None:
            return "manual"
        return "cron" if len(self.trigger.split()) == 5 else "interval"

    def interval_s(self) -> int:
        """Seconds between two runs (for cron: between the next two fire times); 0 if manual."""
        kind = self.trigger_kind()
        if kind == "manual":
            return 0
        if kind == "interval":
            return parse_duration(self.trigger or "", field=f"scan job {self.name}: trigger")
        from datetime import UTC, datetime

        from apscheduler.triggers.cron import CronTrigger

        trig = CronTrigger.from_crontab(self.trigger, timezone=UTC)
        first = trig.get_next_fire_time(None, datetime.now(UTC))
        second = trig.get_next_fire_time(first, first)
        return int((second - first).total_seconds()) if first and second else 0

    def params(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "window_s": self.window_s, "baseline_s": self.baseline_s,
                "min_level": self.min_level, "selector": self.selector, "sources": list(self.sources),
                "step_s": self.step_s, "min_confidence": self.min_confidence,
                "max_incidents": self.max_incidents, "incidents": self.incidents}


def load_scan_jobs(spec: str | Sequence[dict[str, Any]] | None) -> list[ScanJob]:
    """Scan jobs from settings: a JSON or YAML list of mappings (or the list itself). Every
    mistake is a ``BadInput`` naming the job and the field."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []
    items: Any = spec
    if isinstance(spec, str):
        items = parse_json_or_yaml(spec, "scan_jobs", 'give a list, e.g. [{"name": "fleet", "trigger": "5m"}]')
    if not isinstance(items, list):
        raise BadInput(f"scan jobs must be a list, got {type(items).__name__}", field="scan_jobs",
                       fix='give a list, e.g. [{"name": "fleet", "trigger": "5m"}]')
    jobs: list[ScanJob] = []
    for i, item in enumerate(items):
        job = _one_job(item, i)
        if job.name in {j.name for j in jobs}:
            raise BadInput(f"two scan jobs are named {job.name!r}", field=f"scan job {job.name}: name",
                           fix="give every job its own name")
        jobs.append(job)
    return jobs


def _one_job(item: Any, i: int) -> ScanJob:
    if not isinstance(item, dict):
        raise BadInput(f"scan job #{i + 1} is not a mapping", field=f"scan job #{i + 1}",
                       fix="give name, trigger, window, ... as keys")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise BadInput(f"scan job #{i + 1} has no usable name", field=f"scan job #{i + 1}: name",
                       fix="give a short unique name, e.g. fleet")
    where = f"scan job {name}"
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise BadInput(f"{where}: unknown field(s) {', '.join(unknown)}", field=f"{where}: {unknown[0]}",
                       fix=f"use only {', '.join(_FIELDS)}")
    kw = dict(item)
    if "trigger" not in kw or kw["trigger"] in (None, ""):
        raise BadInput(f"{where} has no trigger", field=f"{where}: trigger",
                       fix='give a crontab ("*/5 * * * *") or an interval ("5m")')
    for key in ("trigger", "window", "baseline", "step"):
        if key in kw:
            kw[key] = str(kw[key]).strip()
    sources = kw.get("sources") or ()
    if isinstance(sources, str):
        sources = tuple(s.strip() for s in sources.split(",") if s.strip())
    if not all(isinstance(s, str) for s in sources):
        raise BadInput(f"{where}: sources must be names", field=f"{where}: sources", fix='e.g. ["prom"]')
    kw["sources"] = tuple(sources)
    for key, lo, hi in (("min_level", 0.0, 1.0), ("min_confidence", 0.0, 1.0)):
        if key in kw:
            v = kw[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise BadInput(f"{where}: {key} {v!r} is outside {lo}..{hi}", field=f"{where}: {key}",
                               fix="use e.g. 0.99")
            kw[key] = float(v)
    if "max_incidents" in kw and (isinstance(kw["max_incidents"], bool) or not isinstance(kw["max_incidents"], int)
                                  or kw["max_incidents"] < 1):
        raise BadInput(f"{where}: max_incidents must be a positive integer", field=f"{where}: max_incidents",
                       fix="use e.g. 3")
    if "selector" in kw and kw["selector"] is not None and not isinstance(kw["selector"], str):
        raise BadInput(f"{where}: selector must be text", field=f"{where}: selector",
                       fix='e.g. {namespace="serving"}')
    job = ScanJob(**kw)
    _check_trigger(job, where)
    job.window_s  # noqa: B018 - each duration is read once here so a bad one fails at load
    if job.baseline_s < 4 * job.step_s:
        raise BadInput(f"{where}: baseline {job.baseline} is too short", field=f"{where}: baseline",
                       fix="give at least a few steps of history, e.g. 3h")
    return job


def _check_trigger(job: ScanJob, where: str) -> None:
    if job.trigger_kind() == "interval":
        parse_duration(job.trigger or "", field=f"{where}: trigger")
        return
    from datetime import UTC

    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(job.trigger, timezone=UTC)
    except ValueError as e:
        raise BadInput(f"{where}: cannot read crontab {job.trigger!r}: {e}", field=f"{where}: trigger",
                       fix='use five fields, e.g. "*/5 * * * *"') from None


def _noop(state: dict[str, Any], incident: Any, change: Change) -> None:
    return None


class ScanRunner:
    """Runs ``ScanJob`` s against ``engine``, storing scans and incident states in ``store``
    (a ``SqlStore``). ``clock`` gives unix seconds (the scan time when ``run`` gets no
    ``now``); ``on_change(state_row, incident, change)`` hears every opened / updated /
    resolved incident (the bot's notifiers hang here)."""

    def __init__(self, engine: Engine, store: Any, clock: Callable[[], float] = time.time,
                 on_change: OnChange = _noop) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()  # incident states: one reconciliation at a time per process

    def run(self, job: ScanJob, now: int | None = None) -> dict[str, Any]:
        """One scan at ``now`` (default: the clock); returns the scan record as stored."""
        now = int(self.clock() if now is None else now)
        scan: dict[str, Any] = {"id": f"scan-{uuid.uuid4().hex[:12]}", "job": job.name, "status": "running",
                                "started_at": int(self.clock()), "finished_at": None,
                                "params": {**job.params(), "at": now}, "result": {}}
        self.store.save_scan(scan)
        try:
            scan.update(self._scan(job, now, scan["id"]))
        except RcaError as e:
            scan.update(status="failed", result={"error": str(e), "warnings": []})
        except Exception as e:  # a bug must not kill the scheduler either; the traceback goes to the log
            log.exception("scan %s (%s) failed", scan["id"], job.name)
            scan.update(status="failed", result={"error": f"{type(e).__name__}: {e}", "warnings": []})
        scan["finished_at"] = int(self.clock())
        try:
            self.store.save_scan(scan)
            return self.store.get_scan(scan["id"])  # as stored: JSON-safe (NaN -> null)
        except RcaError as e:
            log.error("scan %s (%s) could not be recorded: %s", scan["id"], job.name, e)
            return {**scan, "status": "failed", "result": {**scan.get("result", {}), "error": str(e)}}

    def _engine_for(self, job: ScanJob) -> tuple[Engine, list[str]]:
        """A view of the engine with only the job's sources and no store of its own (the
        runner stores one incident per fingerprint, not one per scan)."""
        view = copy.copy(self.engine)
        view.store = None
        warnings: list[str] = []
        if job.sources:
            names = {getattr(c, "name", "") for c in self.engine.connectors}
            missing = [s for s in job.sources if s not in names]
            if missing:
                warnings.append(f"unknown source(s) {', '.join(missing)}; configured: {', '.join(sorted(names))}")
            view.connectors = [c for c in self.engine.connectors if getattr(c, "name", "") in job.sources]
            if not view.connectors:
                raise BadInput(f"scan job {job.name}: none of its sources is configured ({warnings[0]})",
                               field=f"scan job {job.name}: sources", fix="name configured sources")
        return view, warnings

    def _scan(self, job: ScanJob, now: int, scan_id: str) -> dict[str, Any]:
        engine, warnings = self._engine_for(job)
        window_s, baseline_s, step = job.window_s, job.baseline_s, job.step_s
        snap = engine.fetch(Window(now - window_s - baseline_s, now, step), job.selector)
        warnings += list(snap.warnings)
        det, result = scan_snapshot(snap, window_s, job.min_level)
        result["warnings"] = warnings
        status = "partial" if warnings else "ok"
        if not job.incidents:
            return {"status": status, "result": result}
        inc_w = Window(now - window_s, now, step)
        entities = tuple(sorted({a.entity for a in det.anomalies}))
        analysis = None
        if entities:
            analysis = engine.analyze(AnalysisRequest(
                window=inc_w, baseline=Window(snap.window.start, inc_w.start - step, step),
                question=f"scan {job.name}", scope=entities, selector=job.selector), snapshot=snap)
            result["analysis"] = {"summary": analysis.summary, "hypotheses": [
                {"root": h.root, "category": h.category, "confidence": round(h.confidence, 4)}
                for h in analysis.hypotheses[:5]]}
        with self._lock:
            changes = reconcile(self.store, job, scan_id, inc_w, det.anomalies, analysis,
                                complete=status == "ok", clock=self.clock, on_change=self.on_change)
        result["incidents"] = changes
        return {"status": status, "result": result}
