"""Incidents from scans: group what a scan flagged into incidents with a stable fingerprint.

The scan's one ``Engine.analyze`` ranks root causes of the flagged entities. Each top
hypothesis (confidence >= the job's ``min_confidence``) whose root is flagged, or whose path or
anomalous evidence reaches a flagged entity, is an incident keyed by
``fingerprint = sha256(root + "\\n" + category)[:32]``. Its row in ``incident_states`` says
whether it is open:

- open, and this scan's window overlaps or follows within one scan interval -> **updated**
  (same incident id; the incident is re-saved with the new window end and hypotheses);
- otherwise -> **opened** (a new incident id; a stale open row is resolved first);
- open rows of the same job whose fingerprint this scan did not see -> **resolved**, but only
  after a complete scan: a scan with a failing source proves nothing cleared (no data is not
  healthy).

State lives in the SQL store only, so a restarted scheduler updates what was open before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from rca.errors import RcaError, StoreError
from rca.store_schema import incident_states
from rca.types import Anomaly, Hypothesis, Incident, Window

if TYPE_CHECKING:
    from rca.scan_jobs import ScanJob

__all__ = ["Change", "OnChange", "explains", "fingerprint", "open_states", "reconcile"]

log = logging.getLogger(__name__)

Change = Literal["opened", "updated", "resolved"]
OnChange = Callable[[dict[str, Any], "Incident | None", Change], None]


def fingerprint(root: str, category: str) -> str:
    """Stable id of "this root cause of this kind": the same across scans, restarts and hosts."""
    return hashlib.sha256(f"{root}\n{category}".encode()).hexdigest()[:32]


def explains(h: Hypothesis, flagged: set[str]) -> bool:
    """Does ``h`` account for some flagged entity (its root, its path, or its anomalous evidence)?"""
    return (h.root in flagged or bool(set(h.path) & flagged)
            or any(e.status == "anomalous" and e.entity in flagged for e in h.evidence))


def open_states(store: Any, source: str | None = "scan") -> list[dict[str, Any]]:
    """Open ``incident_states`` rows (of ``source``; ``None``: any)."""
    q = sa.select(incident_states).where(incident_states.c.status == "open")
    if source is not None:
        q = q.where(incident_states.c.source == source)
    try:
        with store.engine.begin() as conn:
            return [dict(r) for r in conn.execute(q.order_by(incident_states.c.opened_at)).mappings()]
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(f"store failed: {e}") from e


def _get(conn: sa.Connection, fp: str) -> dict[str, Any] | None:
    r = conn.execute(sa.select(incident_states).where(incident_states.c.fingerprint == fp)).mappings().first()
    return dict(r) if r else None


def _read(store: Any, fp: str) -> dict[str, Any] | None:
    try:
        with store.engine.begin() as conn:
            return _get(conn, fp)
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(f"store failed: {e}") from e


def _put(store: Any, row: dict[str, Any]) -> None:
    try:
        with store.engine.begin() as conn:
            if _get(conn, row["fingerprint"]) is None:
                conn.execute(sa.insert(incident_states).values(**row))
            else:
                conn.execute(sa.update(incident_states)
                             .where(incident_states.c.fingerprint == row["fingerprint"]).values(**row))
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(f"store failed: {e}") from e


def _selected(analysis: Incident | None, flagged: set[str], job: ScanJob) -> list[Hypothesis]:
    if analysis is None:
        return []
    out: list[Hypothesis] = []
    for h in analysis.hypotheses:
        if len(out) >= job.max_incidents:
            break
        if h.confidence >= job.min_confidence and explains(h, flagged):
            out.append(h)
    return out


def _incident_for(analysis: Incident, h: Hypothesis, iid: str, window: Window, opened_at: int,
                  job: ScanJob, scan_id: str, fp: str, scans: int) -> Incident:
    others = tuple(x for x in analysis.hypotheses if x is not h)
    summary = analysis.summary if analysis.hypotheses and analysis.hypotheses[0] is h else (
        f"Scan {job.name}: {h.root} ({h.category}, confidence {h.confidence:.2f}) explains anomalies "
        f"flagged by the scan. {analysis.summary}")
    return dataclasses.replace(
        analysis, id=iid, window=window, hypotheses=(h, *others), summary=summary, created_at=opened_at,
        question=f"scan {job.name}: {h.category} at {h.root}",
        params={**analysis.params, "source": "scan", "scan_job": job.name, "scan_id": scan_id,
                "fingerprint": fp, "scans": scans, "last_scan_window": [analysis.window.start, analysis.window.end]})


def _notify(on_change: OnChange, row: dict[str, Any], incident: Incident | None, change: Change) -> None:
    try:
        on_change(row, incident, change)
    except Exception:  # a notifier's failure is its own; the scan's state is already stored
        log.exception("on_change hook failed for %s %s", change, row.get("fingerprint"))


def reconcile(store: Any, job: ScanJob, scan_id: str, window: Window, anomalies: Sequence[Anomaly],
              analysis: Incident | None, complete: bool, clock: Callable[[], float],
              on_change: OnChange) -> dict[str, list[dict[str, Any]]]:
    """Open / update / resolve incident states after one scan of ``job`` over ``window``;
    returns ``{"opened": [...], "updated": [...], "resolved": [...]}`` (fingerprint, incident
    id, root, category)."""
    flagged = {a.entity for a in anomalies}
    gap = max(job.interval_s(), job.window_s)
    changes: dict[str, list[dict[str, Any]]] = {"opened": [], "updated": [], "resolved": []}
    seen: set[str] = set()
    for h in _selected(analysis, flagged, job):
        fp = fingerprint(h.root, h.category)
        seen.add(fp)
        now = int(clock())
        row = _read(store, fp)
        if row and row["status"] == "open" and window.start <= row["window_end"] + gap:
            change: Change = "updated"
            iid, opened_at, start = row["incident_id"], row["opened_at"], min(row["window_start"], window.start)
            scans = int(row["detail"].get("scans", 1)) + 1
        else:
            if row and row["status"] == "open":  # open, but too long ago to be the same episode
                _resolve(store, row, now, "stale: no scan saw it for longer than one interval", changes, on_change)
            change = "opened"
            opened_at, start, scans = now, window.start, 1
            iid = "inc-" + hashlib.sha256(f"{fp}:{window.start}".encode()).hexdigest()[:12]
        incident = _incident_for(analysis, h, iid, Window(start, window.end, window.step), opened_at,
                                 job, scan_id, fp, scans)
        store.save_incident(incident)
        new = {"fingerprint": fp, "incident_id": iid, "source": "scan", "status": "open",
               "opened_at": opened_at, "updated_at": now, "resolved_at": None,
               "window_start": start, "window_end": window.end,
               "detail": {"root": h.root, "category": h.category, "confidence": h.confidence, "job": job.name,
                          "scans": scans, "last_scan": scan_id,
                          "flagged": sorted(flagged)[:50]}}
        _put(store, new)
        changes[change].append({"fingerprint": fp, "incident_id": iid, "root": h.root, "category": h.category})
        _notify(on_change, new, incident, change)
    if complete:
        now = int(clock())
        for row in open_states(store):
            if row["fingerprint"] not in seen and row["detail"].get("job") == job.name:
                _resolve(store, row, now, "anomalies cleared", changes, on_change)
    return changes


def _resolve(store: Any, row: dict[str, Any], now: int, why: str,
             changes: dict[str, list[dict[str, Any]]], on_change: OnChange) -> None:
    new = {**row, "status": "resolved", "resolved_at": now, "updated_at": now,
           "detail": {**row["detail"], "resolution": why}}
    _put(store, new)
    try:
        incident = store.get_incident(row["incident_id"])
    except RcaError:
        incident = None
    changes["resolved"].append({"fingerprint": row["fingerprint"], "incident_id": row["incident_id"],
                                "root": row["detail"].get("root"), "category": row["detail"].get("category")})
    _notify(on_change, new, incident, "resolved")
