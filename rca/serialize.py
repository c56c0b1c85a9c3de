"""JSON shapes of the core types, both directions.

The rules every JSON output of the engine follows (CLI ``--json``, REST, store):

* an ``EntityId`` stays its ``"kind:name"`` string;
* every unix-seconds time (``Window.start/end``, ``Anomaly.onset/peak``,
  ``Incident.created_at``, ``Feedback.at``) is an RFC 3339 UTC string, ``2026-11-20T19:52:00Z``;
* a ``SeriesKey`` is ``{"name": .., "labels": {..}, "text": 'name{k="v"}'}``;
* NaN (and ±inf, which JSON cannot carry) become ``null``; ``null`` reads back as NaN;
* tuples become lists; free-form mappings (``params``, ``Evidence.ref``) are copied with the
  same rules and come back as plain dicts and lists.

``incident_from_jsonable(to_jsonable(inc)) == inc`` and the same for ``Feedback`` whenever the
free-form mappings hold only JSON values (str, int, finite float, bool, None, dict, list).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import numpy as np

from rca.errors import BadInput
from rca.types import (
    Anomaly,
    Candidate,
    Evidence,
    Feedback,
    Health,
    Hypothesis,
    Incident,
    SeriesKey,
    Symptom,
    Window,
)

__all__ = [
    "candidate_from_jsonable",
    "feedback_from_jsonable",
    "incident_from_jsonable",
    "parse_rfc3339",
    "rfc3339",
    "series_key_from_jsonable",
    "symptom_from_jsonable",
    "to_jsonable",
    "window_from_jsonable",
]

# Fields holding unix seconds, per type: written as RFC 3339 strings.
_TIME_FIELDS: dict[type, frozenset[str]] = {
    Window: frozenset({"start", "end"}),
    Anomaly: frozenset({"onset", "peak"}),
    Incident: frozenset({"created_at"}),
    Feedback: frozenset({"at"}),
}
_TYPES = (Window, Anomaly, Evidence, Hypothesis, Candidate, Symptom, Incident, Feedback, Health)


def rfc3339(ts: int) -> str:
    """Unix seconds -> ``"2026-11-20T19:52:00Z"`` (UTC, whole seconds)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str | int, *, field: str = "time") -> int:
    """RFC 3339 / ISO 8601 text -> unix seconds (fractions are dropped; no offset = UTC).

    Ints pass through, so callers can accept either shape. Anything else raises ``BadInput``.
    """
    if isinstance(s, bool):
        raise BadInput(f"expected a time, got {s!r}", field=field, fix="use e.g. 2026-11-20T19:52:00Z")
    if isinstance(s, int):
        return s
    if isinstance(s, float) and math.isfinite(s):
        return int(s)
    if not isinstance(s, str) or not s.strip():
        raise BadInput(f"expected an RFC 3339 time, got {s!r}", field=field,
                       fix="use e.g. 2026-11-20T19:52:00Z")
    text = s.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"not an RFC 3339 time: {s!r}", field=field,
                       fix="use e.g. 2026-11-20T19:52:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return math.floor(dt.timestamp())


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _plain(obj: Any) -> Any:
    """Generic values: containers, numbers, numpy, paths."""
    if obj is None or isinstance(obj, str | bool | int):
        return obj
    if isinstance(obj, float):
        return _num(obj)
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"cannot turn {type(obj).__name__} into JSON")


def to_jsonable(obj: Any) -> Any:
    """A JSON-ready value (dicts, lists, str, int, float, bool, None) for ``obj``."""
    if isinstance(obj, SeriesKey):
        return {"name": obj.name, "labels": dict(obj.labels), "text": str(obj)}
    if isinstance(obj, _TYPES):
        times = _TIME_FIELDS.get(type(obj), frozenset())
        out: dict[str, Any] = {}
        for f in fields(obj):
            v = getattr(obj, f.name)
            out[f.name] = rfc3339(v) if f.name in times else to_jsonable(v)
        return out
    return _plain(obj)


# ---- reading back ---------------------------------------------------------------------------

def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise BadInput(f"{where} must be an object, got {type(d).__name__}", field=where,
                       fix="send a JSON object")
    if key not in d:
        raise BadInput(f"{where}.{key} is missing", field=f"{where}.{key}", fix=f"add {key!r}")
    return d[key]


def _float(v: Any, field: str) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadInput(f"expected a number, got {v!r}", field=field, fix="use a number or null")
    return float(v)


def _obj(v: Any, field: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise BadInput(f"expected an object, got {type(v).__name__}", field=field, fix="use {...} or null")
    return dict(v)


def _int(v: Any, field: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v != int(v):
        raise BadInput(f"expected an integer, got {v!r}", field=field, fix="use a whole number")
    return int(v)


def _strs(v: Any, field: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise BadInput(f"expected a list of strings, got {v!r}", field=field, fix="use [\"...\"]")
    return tuple(v)


def window_from_jsonable(d: Mapping[str, Any]) -> Window:
    return Window(parse_rfc3339(_req(d, "start", "window"), field="window.start"),
                  parse_rfc3339(_req(d, "end", "window"), field="window.end"),
                  _int(d.get("step", 15), "window.step"))


def series_key_from_jsonable(d: Mapping[str, Any] | str) -> SeriesKey:
    if isinstance(d, str):
        return SeriesKey(d)
    labels = d.get("labels") or {}
    return SeriesKey.of(str(_req(d, "name", "series")), {str(k): str(v) for k, v in labels.items()})


def symptom_from_jsonable(d: Mapping[str, Any] | None) -> Symptom | None:
    if d is None:
        return None
    _req(d, "entity", "symptom")
    series = d.get("series")
    # null -> the field's own NaN default, so an unset baseline compares equal after a round trip
    nums = {k: _float(d[k], f"symptom.{k}") for k in ("baseline", "observed") if d.get(k) is not None}
    return Symptom(entity=_req(d, "entity", "symptom"), signal=_req(d, "signal", "symptom"),
                   series=series_key_from_jsonable(series) if series is not None else None,
                   unit=d.get("unit", ""), **nums)


def _evidence(d: Mapping[str, Any]) -> Evidence:
    return Evidence(kind=_req(d, "kind", "evidence"), entity=_req(d, "entity", "evidence"),
                    summary=d.get("summary", ""), ref=_obj(d.get("ref"), "evidence.ref"),
                    status=d.get("status", "anomalous"),
                    score=_float(d.get("score", 0.0), "evidence.score"))


def _hypothesis(d: Mapping[str, Any]) -> Hypothesis:
    return Hypothesis(root=_req(d, "root", "hypothesis"), category=d.get("category", ""),
                      score=_float(_req(d, "score", "hypothesis"), "hypothesis.score"),
                      confidence=_float(d.get("confidence"), "hypothesis.confidence"),
                      path=_strs(d.get("path"), "hypothesis.path"),
                      evidence=tuple(_evidence(e) for e in d.get("evidence") or ()),
                      checked=_strs(d.get("checked"), "hypothesis.checked"),
                      no_data=_strs(d.get("no_data"), "hypothesis.no_data"),
                      unknown=_strs(d.get("unknown"), "hypothesis.unknown"))


def candidate_from_jsonable(d: Mapping[str, Any]) -> Candidate:
    feats = _obj(d.get("features"), "candidate.features")
    return Candidate(entity=_req(d, "entity", "candidate"), category=d.get("category") or "",
                     score=_float(d.get("score", 0.0), "candidate.score"),
                     features={str(k): _float(v, f"candidate.features.{k}") for k, v in feats.items()})


def incident_from_jsonable(d: Mapping[str, Any]) -> Incident:
    """The inverse of ``to_jsonable(incident)``. Raises ``BadInput`` naming a missing field."""
    _req(d, "id", "incident")
    created = d.get("created_at")
    return Incident(id=str(_req(d, "id", "incident")), question=d.get("question"),
                    window=window_from_jsonable(_req(d, "window", "incident")),
                    symptom=symptom_from_jsonable(d.get("symptom")),
                    hypotheses=tuple(_hypothesis(h) for h in d.get("hypotheses") or ()),
                    params=_obj(d.get("params"), "incident.params"),
                    checked=_strs(d.get("checked"), "incident.checked"),
                    no_data=_strs(d.get("no_data"), "incident.no_data"),
                    summary=d.get("summary") or "",
                    created_at=parse_rfc3339(created, field="created_at") if created is not None else 0,
                    candidates=tuple(candidate_from_jsonable(c) for c in d.get("candidates") or ()))


def feedback_from_jsonable(d: Mapping[str, Any]) -> Feedback:
    """The inverse of ``to_jsonable(feedback)``."""
    verdict = _req(d, "verdict", "feedback")
    if verdict not in ("confirm", "reject", "correct"):
        raise BadInput(f"unknown verdict {verdict!r}", field="verdict", fix="use confirm, reject or correct")
    rank = d.get("hypothesis_rank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
        raise BadInput(f"hypothesis_rank must be an integer, got {rank!r}", field="hypothesis_rank",
                       fix="give the 1-based rank of the hypothesis")
    at = d.get("at")
    return Feedback(incident_id=str(_req(d, "incident_id", "feedback")), verdict=verdict,
                    hypothesis_rank=rank, correct_root=d.get("correct_root"),
                    correct_category=d.get("correct_category"), note=d.get("note") or "",
                    author=d.get("author") or "", at=parse_rfc3339(at, field="at") if at is not None else 0)
