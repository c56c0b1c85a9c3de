"""Spans and log records as OTLP/JSON (``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest``)
and back (telemetry reference §4.2-4.3).

OTLP/JSON is not plain proto3 JSON: ids are **hex** (not base64), enums are integers, keys
lowerCamelCase, 64-bit integers decimal strings. The writers build the dicts themselves; the
readers accept what any OTLP/JSON exporter sends (int64 as strings or numbers, enum names,
upper-case hex) and ignore unknown fields.

Resources:

* a span's resource is ``Span.resource``, with ``service.name`` set to ``Span.service`` when the
  mapping lacks it; spans are grouped per distinct resource. Read back, ``Span.service`` is the
  resource's ``service.name``.
* a log record's resource comes from its entity (unless ``resources`` names one for it):
  ``pod:<p>`` -> ``{service.name, k8s.pod.name: p}`` where ``service.name`` is the record's
  ``service.name`` attribute or the pod name without its replica suffix
  (``vllm-llama-3-70b-1`` -> ``vllm-llama-3-70b``, ``api-gateway-7c9f4-x2b6q`` -> ``api-gateway``);
  ``service:<s>`` -> ``{service.name: s}``; ``node:<n>`` -> ``{service.name, host.name: n}``; any
  other kind (``db:``, ``gpu:`` …) -> ``{service.name: <name>, rca.entity: <entity id>}``.
  The reader inverts this: ``rca.entity``, else ``k8s.pod.name``, else ``host.name``, else
  ``service.name`` names the entity.

Attribute values: ``bool`` -> ``boolValue``, ``int`` -> ``intValue`` (string), ``float`` ->
``doubleValue`` (non-finite as ``"NaN"``/``"Infinity"``/``"-Infinity"``), ``str`` ->
``stringValue``, ``bytes`` -> ``bytesValue`` (base64), list/tuple -> ``arrayValue``, mapping ->
``kvlistValue``, ``None`` -> empty ``AnyValue``. Arrays read back as lists, kvlists as dicts.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from rca.errors import BadInput
from rca.types import EntityId, LogRecord, Span, entity_kind, entity_name

__all__ = ["SEVERITY_NUMBER", "SPAN_KIND", "STATUS_CODE", "any_value", "from_any_value",
           "log_resource", "logs_to_otlp", "read_otlp_logs", "read_otlp_traces", "service_of_pod",
           "spans_to_otlp", "write_otlp_logs", "write_otlp_traces"]

SPAN_KIND = {"unspecified": 0, "internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
STATUS_CODE = {"unset": 0, "ok": 1, "error": 2}
SEVERITY_NUMBER = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17,
                   "FATAL": 21, "CRITICAL": 21}
_SEVERITY_BY_RANGE = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))
_KIND_NAMES = {v: k for k, v in SPAN_KIND.items()}
_STATUS_NAMES = {v: k for k, v in STATUS_CODE.items()}
_K8S_HASH = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOY_POD = re.compile(rf"(.+)-{_K8S_HASH}{{1,10}}-{_K8S_HASH}{{5}}\Z")
_STATEFUL_POD = re.compile(r"(.+)-\d+\Z")
_BARE_POD = re.compile(rf"(.+)-{_K8S_HASH}{{5}}\Z")
DEFAULT_SCOPE = "rca"


# ---------------------------------------------------------------- AnyValue
def any_value(v: Any) -> dict[str, Any]:
    """A Python value as an OTLP/JSON ``AnyValue``."""
    if v is None:
        return {}
    if isinstance(v, bool | np.bool_):
        return {"boolValue": bool(v)}
    if isinstance(v, int | np.integer):
        return {"intValue": str(int(v))}
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return {"doubleValue": "NaN"}
        if math.isinf(f):
            return {"doubleValue": "Infinity" if f > 0 else "-Infinity"}
        return {"doubleValue": f}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bytes | bytearray):
        return {"bytesValue": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, Mapping):
        return {"kvlistValue": {"values": _kvs(v)}}
    if isinstance(v, list | tuple | np.ndarray):
        return {"arrayValue": {"values": [any_value(x) for x in v]}}
    return {"stringValue": str(v)}


def from_any_value(d: Mapping[str, Any]) -> Any:
    """An OTLP/JSON ``AnyValue`` as a Python value (inverse of :func:`any_value`)."""
    if not d:
        return None
    if "stringValue" in d:
        return d["stringValue"]
    if "boolValue" in d:
        return bool(d["boolValue"])
    if "intValue" in d:
        return int(d["intValue"])
    if "doubleValue" in d:
        return float(d["doubleValue"])
    if "arrayValue" in d:
        return [from_any_value(x) for x in (d["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in d:
        return _attrs((d["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in d:
        return base64.b64decode(d["bytesValue"])
    return None


def _kvs(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in m.items()]


def _attrs(kvs: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: from_any_value(kv.get("value") or {}) for kv in kvs or ()}


# ---------------------------------------------------------------- traces
def _hex(v: str | None, n: int, what: str) -> str:
    s = (v or "").lower()
    if len(s) != n or any(c not in "0123456789abcdef" for c in s):
        raise BadInput(f"{what} {v!r} is not {n} hex characters", field=what,
                       fix=f"use lowercase hex, {n // 2} bytes")
    return s


def _span_resource(s: Span) -> dict[str, Any]:
    res = dict(s.resource)
    res.setdefault("service.name", s.service)
    return res


def _freeze(m: Mapping[str, Any]) -> str:
    return json.dumps(_kvs(m), sort_keys=True)


def _span_json(s: Span) -> dict[str, Any]:
    kind = SPAN_KIND.get(s.kind.lower())
    if kind is None:
        raise BadInput(f"span kind {s.kind!r} is unknown", field="kind", fix=f"use one of {', '.join(SPAN_KIND)}")
    code = STATUS_CODE.get(s.status)
    if code is None:
        raise BadInput(f"span status {s.status!r} is unknown", field="status", fix="use unset, ok or error")
    out: dict[str, Any] = {"traceId": _hex(s.trace_id, 32, "traceId"), "spanId": _hex(s.span_id, 16, "spanId")}
    if s.parent:
        out["parentSpanId"] = _hex(s.parent, 16, "parentSpanId")
    out.update(name=s.name, kind=kind, startTimeUnixNano=str(int(s.start_ns)),
               endTimeUnixNano=str(int(s.end_ns)), attributes=_kvs(s.attributes))
    status: dict[str, Any] = {"code": code}
    if s.status_message:
        status["message"] = s.status_message
    out["status"] = status
    return out


def spans_to_otlp(spans: Iterable[Span], scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` dict (OTLP/JSON), one ``resourceSpans`` per resource."""
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for s in spans:
        res = _span_resource(s)
        groups.setdefault(_freeze(res), (res, []))[1].append(_span_json(s))
    return {"resourceSpans": [
        {"resource": {"attributes": _kvs(res)}, "scopeSpans": [{"scope": {"name": scope}, "spans": sj}]}
        for res, sj in groups.values()]}


def write_otlp_traces(spans: Iterable[Span], path: str | PathLike[str], scope: str = DEFAULT_SCOPE) -> int:
    """Write spans as one OTLP/JSON ``ExportTraceServiceRequest`` file; returns the span count."""
    req = spans_to_otlp(spans, scope)
    _dump(req, path)
    return sum(len(ss["spans"]) for rs in req["resourceSpans"] for ss in rs["scopeSpans"])


def _enum(v: Any, names: Mapping[int, str], prefix: str) -> int:
    if isinstance(v, str) and not v.lstrip("-").isdigit():
        name = v.upper().removeprefix(prefix).lower()
        for num, n in names.items():
            if n == name:
                return num
        return 0
    return int(v or 0)


def _load(src: str | PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(src, Mapping):
        return src
    p = Path(src)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BadInput(f"{p} is not valid JSON: {e}", field=p.name, fix="give an OTLP/JSON export request") from None


def read_otlp_traces(src: str | PathLike[str] | Mapping[str, Any]) -> list[Span]:
    """Spans of an OTLP/JSON ``ExportTraceServiceRequest`` (a file path or the decoded dict)."""
    out: list[Span] = []
    for rs in _load(src).get("resourceSpans") or ():
        res = _attrs((rs.get("resource") or {}).get("attributes"))
        service = str(res.get("service.name", "unknown"))
        for ss in rs.get("scopeSpans") or ():
            for sp in ss.get("spans") or ():
                st = sp.get("status") or {}
                kind = _enum(sp.get("kind", 0), _KIND_NAMES, "SPAN_KIND_")
                code = _enum(st.get("code", 0), _STATUS_NAMES, "STATUS_CODE_")
                out.append(Span(
                    trace_id=str(sp.get("traceId", "")).lower(), span_id=str(sp.get("spanId", "")).lower(),
                    parent=str(sp.get("parentSpanId") or "").lower() or None, service=service,
                    name=sp.get("name", ""), start_ns=int(sp.get("startTimeUnixNano") or 0),
                    end_ns=int(sp.get("endTimeUnixNano") or 0),
                    status=_STATUS_NAMES.get(code, "unset"),  # type: ignore[arg-type]
                    kind=_KIND_NAMES.get(kind, "unspecified"), attributes=_attrs(sp.get("attributes")),
                    resource=dict(res), status_message=st.get("message", "")))
    return out


# ---------------------------------------------------------------- logs
def service_of_pod(pod: str) -> str:
    """The workload name of a pod: Deployment ``<name>-<rs hash>-<pod hash>``, StatefulSet
    ``<name>-<ordinal>`` or ``<name>-<hash>`` -> ``<name>``; anything else unchanged."""
    for rx in (_DEPLOY_POD, _STATEFUL_POD, _BARE_POD):
        m = rx.match(pod)
        if m:
            return m.group(1)
    return pod


def log_resource(rec: LogRecord) -> dict[str, Any]:
    """The default resource of a log record (see the module docstring)."""
    kind, name = entity_kind(rec.entity), entity_name(rec.entity)
    svc = rec.attributes.get("service.name")
    if kind == "pod":
        return {"service.name": str(svc or service_of_pod(name)), "k8s.pod.name": name}
    if kind == "service":
        return {"service.name": name}
    if kind == "node":
        return {"service.name": str(svc or name), "host.name": name}
    return {"service.name": str(svc or name), "rca.entity": rec.entity}


def _entity_of_resource(res: Mapping[str, Any]) -> EntityId:
    if res.get("rca.entity"):
        return str(res["rca.entity"])
    if res.get("k8s.pod.name"):
        return f"pod:{res['k8s.pod.name']}"
    if res.get("host.name"):
        return f"node:{res['host.name']}"
    return f"service:{res.get('service.name') or 'unknown'}"


def _log_json(r: LogRecord) -> dict[str, Any]:
    ts = str(int(r.ts_ns))
    out: dict[str, Any] = {"timeUnixNano": ts, "observedTimeUnixNano": ts,
                           "severityNumber": SEVERITY_NUMBER.get(r.severity.upper(), 0),
                           "severityText": r.severity, "body": {"stringValue": r.body},
                           "attributes": _kvs(r.attributes)}
    if r.trace_id:
        out["traceId"] = _hex(r.trace_id, 32, "traceId")
    if r.span_id:
        out["spanId"] = _hex(r.span_id, 16, "spanId")
    return out


def logs_to_otlp(logs: Iterable[LogRecord], resources: Mapping[EntityId, Mapping[str, Any]] | None = None,
                 scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
    """An ``ExportLogsServiceRequest`` dict. ``resources`` overrides the resource per entity."""
    resources = resources or {}
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for r in logs:
        res = dict(resources[r.entity]) if r.entity in resources else log_resource(r)
        groups.setdefault(_freeze(res), (res, []))[1].append(_log_json(r))
    return {"resourceLogs": [
        {"resource": {"attributes": _kvs(res)}, "scopeLogs": [{"scope": {"name": scope}, "logRecords": lj}]}
        for res, lj in groups.values()]}


def write_otlp_logs(logs: Iterable[LogRecord], path: str | PathLike[str],
                    resources: Mapping[EntityId, Mapping[str, Any]] | None = None,
                    scope: str = DEFAULT_SCOPE) -> int:
    """Write log records as one OTLP/JSON ``ExportLogsServiceRequest`` file; returns the count."""
    req = logs_to_otlp(logs, resources, scope)
    _dump(req, path)
    return sum(len(sl["logRecords"]) for rl in req["resourceLogs"] for sl in rl["scopeLogs"])


def _severity(rec: Mapping[str, Any]) -> str:
    text = rec.get("severityText")
    if text:
        return str(text).upper()
    num = rec.get("severityNumber") or 0
    if isinstance(num, str) and not num.isdigit():  # an enum name such as SEVERITY_NUMBER_WARN2
        name = re.sub(r"\d+\Z", "", num.upper().removeprefix("SEVERITY_NUMBER_"))
        return "" if name == "UNSPECIFIED" else name
    return next((name for lo, name in _SEVERITY_BY_RANGE if int(num) >= lo), "")


def read_otlp_logs(src: str | PathLike[str] | Mapping[str, Any]) -> list[LogRecord]:
    """Log records of an OTLP/JSON ``ExportLogsServiceRequest`` (a file path or the decoded dict).

    The entity comes from the resource (module docstring); ``ts_ns`` is ``timeUnixNano`` or,
    when that is 0/absent, ``observedTimeUnixNano``; a non-string body is JSON-encoded.
    """
    out: list[LogRecord] = []
    for rl in _load(src).get("resourceLogs") or ():
        res = _attrs((rl.get("resource") or {}).get("attributes"))
        ent = _entity_of_resource(res)
        for sl in rl.get("scopeLogs") or ():
            for rec in sl.get("logRecords") or ():
                body = from_any_value(rec.get("body") or {})
                ts = int(rec.get("timeUnixNano") or 0) or int(rec.get("observedTimeUnixNano") or 0)
                out.append(LogRecord(ts, ent, _severity(rec),
                                     body if isinstance(body, str) else json.dumps(body, default=str),
                                     str(rec.get("traceId") or "").lower() or None,
                                     str(rec.get("spanId") or "").lower() or None,
                                     _attrs(rec.get("attributes"))))
    return out


def _dump(obj: Any, path: str | PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, separators=(",", ":"), allow_nan=False))
        fh.write("\n")
