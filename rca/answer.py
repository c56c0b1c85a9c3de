"""The answer object of DESIGN §7, shaped from an ``Incident`` (CLI ``--json`` and the API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rca.engine import AnalysisRequest
from rca.serialize import rfc3339, to_jsonable
from rca.types import Incident, Window

if TYPE_CHECKING:
    from rca.ask import Question


def request_of(q: Question) -> AnalysisRequest:
    """The analysis a parsed question asks for: its range when it names one, else its instant."""
    window = Window(q.start, q.end, 15) if q.start is not None and q.end is not None else None
    return AnalysisRequest(at=q.at, window=window, question=q.text, signal=q.signal, statistic=q.statistic,
                           scope=tuple(q.scope), metric=q.metric, tz=q.tz)


def interpreted_of(q: Question) -> dict[str, Any]:
    """What the parser understood beyond the analysis parameters (shown under ``interpreted``)."""
    return {"tz": q.tz, "intent": q.intent, "metric": q.metric, "notes": list(q.notes)}

__all__ = ["answer_json", "interpreted_of", "request_of"]


def answer_json(incident: Incident, interpreted: dict[str, Any] | None = None) -> dict[str, Any]:
    """``question``, ``interpreted``, ``symptom``, ``hypotheses``, ``checked``, ``no_data``,
    ``summary`` (+ ``incident_id``). Entities are ``"kind:name"``; times RFC 3339 UTC."""
    interp = {
        "window": {"start": rfc3339(incident.window.start), "end": rfc3339(incident.window.end)},
        "at": rfc3339(incident.params["at"]) if incident.params.get("at") else None,
        "signal": incident.params.get("signal"),
        "statistic": incident.params.get("statistic"),
        "scope": list(incident.params.get("scope", [])),
        "tz": incident.params.get("tz", "UTC"),
    }
    interp.update(interpreted or {})
    hyps = []
    for i, h in enumerate(incident.hypotheses, 1):
        d = to_jsonable(h)
        d["rank"] = i
        hyps.append(d)
    return {
        "incident_id": incident.id,
        "question": incident.question,
        "interpreted": interp,
        "symptom": to_jsonable(incident.symptom),
        "hypotheses": hyps,
        "checked": list(incident.checked),
        "no_data": list(incident.no_data),
        "summary": incident.summary,
    }
