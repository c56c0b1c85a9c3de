"""Alertmanager webhooks (payload version "4", reference §7.2): validation, keys, the analysis.

* :func:`parse_payload` checks the JSON body and raises ``BadInput`` naming the field at fault.
* :func:`dedup_key` is what makes Alertmanager's at-least-once delivery idempotent: sha256 over
  the ``groupKey`` and the sorted ``(fingerprint, status, startsAt)`` of its alerts. A re-send of
  the same group state is the same key; a resolve, a new alert in the group, or the same alert
  firing again later (a new ``startsAt``) is new work.
* :func:`group_fingerprint` names the incident an alert group opens (``sha256(groupKey)[:32]``).
* :func:`request_of_alerts` turns the firing alerts into an ``AnalysisRequest``: the time is the
  earliest ``startsAt`` (the engine puts its incident window around it), the scope comes from the
  labels ``service``, ``pod``, ``model_name``, ``instance`` and ``namespace`` (kept only when the
  sources know the entity), the signal from the alert name when it is obvious.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rca.engine import AnalysisRequest
from rca.errors import BadInput

__all__ = ["dedup_key", "firing_alerts", "group_fingerprint", "parse_payload", "parse_time",
           "request_of_alerts", "scope_of_labels", "signal_of_alerts"]

_STATUSES = ("firing", "resolved")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_FIX = "send Alertmanager's webhook payload (version 4) as JSON"


def parse_time(value: Any, field: str) -> int:
    """RFC 3339 (second to nanosecond precision) -> unix seconds."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"{field} is not an RFC 3339 time", field=field, fix=_FIX)
    text = _FRACTION.sub(r"\1", value.strip()).replace("z", "Z")
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{field} is not an RFC 3339 time: {value[:40]!r}", field=field, fix=_FIX) from None
    if d.tzinfo is None:
        raise BadInput(f"{field} has no time zone", field=field, fix="use UTC, e.g. 2026-11-21T16:38:39Z")
    return int(d.timestamp())


def _labels(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadInput(f"{field} is not a map of strings", field=field, fix=_FIX)
    return dict(value)


def parse_payload(body: bytes) -> dict[str, Any]:
    """The validated payload (a dict, as sent); ``BadInput`` naming the field otherwise."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("the body is not JSON", field="body", fix=_FIX) from None
    if not isinstance(doc, dict):
        raise BadInput("the body is not a JSON object", field="body", fix=_FIX)
    if doc.get("version") != "4":
        raise BadInput(f"payload version {doc.get('version')!r} is not supported; only \"4\" is",
                       field="version", fix="use Alertmanager 0.25 or later (webhook payload version 4)")
    if not isinstance(doc.get("groupKey"), str) or not doc["groupKey"]:
        raise BadInput("groupKey is missing or empty", field="groupKey", fix=_FIX)
    if doc.get("status") not in _STATUSES:
        raise BadInput(f"status {doc.get('status')!r} is not firing or resolved", field="status", fix=_FIX)
    alerts = doc.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise BadInput("alerts is missing or empty", field="alerts", fix=_FIX)
    for i, a in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(a, dict):
            raise BadInput(f"{where} is not an object", field=where, fix=_FIX)
        if a.get("status") not in _STATUSES:
            raise BadInput(f"{where}.status is not firing or resolved", field=f"{where}.status", fix=_FIX)
        if not isinstance(a.get("fingerprint"), str) or not a["fingerprint"]:
            raise BadInput(f"{where}.fingerprint is missing", field=f"{where}.fingerprint", fix=_FIX)
        if not _labels(a.get("labels"), f"{where}.labels"):
            raise BadInput(f"{where}.labels is empty", field=f"{where}.labels", fix=_FIX)
        _labels(a.get("annotations"), f"{where}.annotations")
        parse_time(a.get("startsAt"), f"{where}.startsAt")
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _labels(doc.get(name), name)
    return doc


def dedup_key(doc: Mapping[str, Any]) -> str:
    alerts = sorted((str(a["fingerprint"]), str(a["status"]), str(a.get("startsAt", ""))) for a in doc["alerts"])
    raw = json.dumps([doc["groupKey"], alerts], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def group_fingerprint(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()[:32]


def firing_alerts(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc["alerts"] if a.get("status") == "firing"]


def scope_of_labels(label_sets: Iterable[Mapping[str, str]], catalog: Sequence[str]) -> tuple[str, ...]:
    """Entity ids named by the alerts' labels that the sources know (sorted, no duplicates)."""
    known = set(catalog)
    out: set[str] = set()
    for labels in label_sets:
        cands: list[str] = []
        if labels.get("service"):
            cands.append(f"service:{labels['service']}")
        if labels.get("pod"):
            cands.append(f"pod:{labels['pod']}")
        if labels.get("model_name"):
            cands.append(f"model:{labels['model_name']}")
        if labels.get("namespace"):
            cands.append(f"namespace:{labels['namespace']}")
        inst = labels.get("instance")
        if inst:
            host = inst.rsplit(":", 1)[0] if re.search(r":\d+$", inst) else inst
            cands += [f"node:{host}", f"pod:{host}", f"instance:{inst}"]
        out.update(c for c in cands if c in known)
    return tuple(sorted(out))


def _words(alerts: Sequence[Mapping[str, Any]]) -> str:
    names = " ".join(str(a.get("labels", {}).get("alertname", "")) for a in alerts)
    names += " " + " ".join(str(a.get("labels", {}).get("signal", "")) for a in alerts)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", names).replace("_", " ").lower()


def signal_of_alerts(alerts: Sequence[Mapping[str, Any]]) -> tuple[str, str, str | None]:
    """(signal, statistic, metric) from the alert names: TTFT, errors, latency; else p99 latency."""
    words = _words(alerts)
    quant = re.search(r"\bp(50|90|95|99)\b", words)
    stat = f"p{quant.group(1)}" if quant else "p99"
    if re.search(r"\bttft\b|time to first token", words):
        return "latency", stat, "time_to_first_token"
    if re.search(r"\berrors?\b|\b5xx\b|error rate|\bfail", words):
        return "errors", "error_ratio", None
    return "latency", stat, None


def request_of_alerts(doc: Mapping[str, Any], catalog: Sequence[str], tz: str = "UTC") -> AnalysisRequest | None:
    """The analysis for a payload's firing alerts (None when none fires)."""
    firing = firing_alerts(doc)
    if not firing:
        return None
    at = min(parse_time(a["startsAt"], "startsAt") for a in firing)
    signal, stat, metric = signal_of_alerts(firing)
    scope = scope_of_labels([a.get("labels") or {} for a in firing], catalog)
    names = sorted({str((a.get("labels") or {}).get("alertname", "alert")) for a in firing})
    # the group's own labels make the question (and so the incident id) the group's: two groups
    # of one alert name firing at the same time are two incidents, not one shared
    group = ", ".join(f"{k}={v}" for k, v in sorted((doc.get("groupLabels") or {}).items()) if k != "alertname")
    return AnalysisRequest(at=at, question=f"Alertmanager: {', '.join(names)} firing" + (f" ({group})" if group else ""),
                           signal=signal, statistic=stat, metric=metric, scope=scope, tz=tz)
