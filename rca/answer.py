"""The answer object of DESIGN §7, shaped from an ``Incident`` (CLI ``--json`` and the API)."""

from __future__ import annotations

from typing import Any

from rca.serialize import rfc3339, to_jsonable
from rca.types import Incident

__all__ = ["answer_json"]


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
