"""Incidents, feedback and scans as the API shows them (``rca.answer`` plus numbering and links)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from rca.answer import answer_json
from rca.errors import BadInput, NotFound
from rca.serialize import rfc3339
from rca.types import Feedback, Incident

__all__ = ["PLOTTABLE", "answer_public", "evidence_at", "feedback_public", "incident_summary", "page",
           "plot_urls", "scan_public"]

PLOTTABLE = frozenset({"metric", "log", "trace"})


def plot_urls(incident: Incident, base_url: str = "") -> list[list[str | None]]:
    """Per hypothesis, per evidence item: its plot URL (``None`` when there is no series behind
    it). Evidence is numbered across the incident, 1-based, hypothesis by hypothesis — the ``n``
    of ``/v1/incidents/{id}/evidence/{n}/plot.png``."""
    base = f"{base_url.rstrip('/')}/v1/incidents/{incident.id}"
    out, n = [], 0
    for h in incident.hypotheses:
        row = []
        for e in h.evidence:
            n += 1
            row.append(f"{base}/evidence/{n}/plot.png" if e.kind in PLOTTABLE else None)
        out.append(row)
    return out


def answer_public(incident: Incident, interpreted: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer JSON with evidence numbered across the incident and a plot URL for evidence
    that has a series behind it (``plot_urls``)."""
    ans = answer_json(incident, interpreted)
    base = f"/v1/incidents/{incident.id}"
    n = 0
    for h, urls in zip(ans["hypotheses"], plot_urls(incident), strict=True):
        for e, url in zip(h["evidence"], urls, strict=True):
            n += 1
            e["n"], e["plot_url"] = n, url
    ans["links"] = {"self": base, "feedback": f"{base}/feedback"}
    return ans


def evidence_at(incident: Incident, n: int) -> tuple[int, int]:
    """Global evidence number ``n`` -> (hypothesis rank, position in it), both 1-based; or (0, 0)."""
    seen = 0
    for rank, h in enumerate(incident.hypotheses, 1):
        if n <= seen + len(h.evidence):
            return rank, n - seen
        seen += len(h.evidence)
    return 0, 0


def incident_summary(incident: Incident) -> dict[str, Any]:
    top = incident.hypotheses[0] if incident.hypotheses else None
    return {"id": incident.id, "question": incident.question, "created_at": rfc3339(incident.created_at),
            "window": {"start": rfc3339(incident.window.start), "end": rfc3339(incident.window.end)},
            "summary": incident.summary, "root": top.root if top else None,
            "category": top.category if top else None,
            "confidence": top.confidence if top and top.confidence == top.confidence else None}


def feedback_public(fb: Feedback, created: bool | None = None) -> dict[str, Any]:
    return {"incident_id": fb.incident_id, "verdict": fb.verdict, "hypothesis_rank": fb.hypothesis_rank,
            "correct_root": fb.correct_root, "correct_category": fb.correct_category, "note": fb.note,
            "author": fb.author, "at": rfc3339(fb.at), "created": created}


def scan_public(scan: dict[str, Any]) -> dict[str, Any]:
    return {**scan, "started_at": rfc3339(scan["started_at"]),
            "finished_at": rfc3339(scan["finished_at"]) if scan.get("finished_at") else None}


async def page(list_fn: Callable[[int, str | None], list], limit: int, cursor: str | None,
               shape: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One page of a newest-first store listing: ``items`` and ``next_cursor`` (the last id
    when more rows follow). An unknown cursor is the caller's mistake, named as such."""
    try:
        rows = await run_in_threadpool(list_fn, limit + 1, cursor)
    except NotFound as e:
        raise BadInput(e.message, field="cursor", fix="pass the next_cursor of the previous page") from None
    items = [shape(r) for r in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}
