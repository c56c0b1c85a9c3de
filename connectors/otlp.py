"""OTLP/HTTP export requests (traces and logs) decoded into ``Span`` and ``LogRecord``.

Telemetry reference §4. Two wire formats, one result:

* ``application/x-protobuf`` — ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest``
  parsed with the generated classes of ``opentelemetry-proto``;
* ``application/json`` — OTLP/JSON (§4.3): hex ids (any case), integer enums (enum names are
  accepted too), int64 as decimal strings or numbers, lowerCamelCase keys, unknown fields
  ignored. Read with a dict walker, never ``json_format`` (which mangles hex ids). This reads
  everything ``rca.emit.otlp_json`` writes.

A request that cannot be parsed at all raises ``BadInput`` (HTTP 400). Inside a parsable request
every span / log record is checked on its own; a bad one is counted in ``rejected`` with a reason
and the rest are kept (OTLP partial success).

A span is rejected when its trace id is not 16 bytes (32 hex chars) or all zero, its span id not
8 bytes or all zero, its parent span id neither empty nor 8 bytes, its start time is 0, or it
ends before it starts or after 2^63 - 1 ns (the stores keep signed 64-bit times). Events, links and ``traceState`` are not kept (``Span`` has no place for
them). ``Span.service`` is the resource's ``service.name`` (``"unknown"`` when absent), ``kind``
and ``status`` the lowercase enum names (unknown numbers read as ``unspecified`` / ``unset``).

A log record is rejected when its trace id is neither empty nor 16 bytes, or its span id neither
empty nor 8 bytes (all-zero ids read as absent), or its time is past 2^63 - 1 ns (as spans are). Its time is ``timeUnixNano``, else
``observedTimeUnixNano``, else the time the request was received (``now_ns``). ``severity`` is
``severityText`` upper-cased, else the level of ``severityNumber`` (1-4 TRACE, 5-8 DEBUG,
9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL), else ``""``. A non-string body is JSON-encoded.
The entity comes from the resource, first match wins: ``rca.entity``; ``k8s.pod.name`` ->
``pod:<p>``; ``service.name`` (unless it is ``unknown_service…`` or equals ``host.name``) ->
``service:<s>``; ``host.name`` -> ``node:<h>``; else ``service:unknown``. Spans map the same way
through ``rca.entities.entity_of_span`` (pod, else service), so a trace's logs and spans land on
the same entity.

Attribute values: string, bool, int, float (``"NaN"``/``"Infinity"`` strings in JSON), bytes,
lists (``arrayValue``) and dicts (``kvlistValue``); an empty ``AnyValue`` is ``None``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from rca.errors import BadInput
from rca.types import EntityId, LogRecord, Span

__all__ = [
    "JSON",
    "MEDIA_TYPES",
    "PROTOBUF",
    "BodyTooLarge",
    "Decoded",
    "UnsupportedMediaType",
    "decode_logs",
    "decode_traces",
    "decompress",
    "encode_logs_response",
    "encode_status",
    "encode_traces_response",
    "entity_of_resource",
    "wire_format",
]

PROTOBUF = "protobuf"
JSON = "json"
MEDIA_TYPES = {PROTOBUF: "application/x-protobuf", JSON: "application/json"}
_ACCEPTED = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}

_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUSES = ("unset", "ok", "error")
_SEVERITY_BY_RANGE = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_REASONS = 3
_MAX_NS = 2**63 - 1  # times are stored in signed 64-bit columns
_PB_SCALARS = frozenset(("bool_value", "int_value", "double_value", "bytes_value"))

T = TypeVar("T")


class BodyTooLarge(BadInput):
    """The request body (sent or decompressed) is over the receiver's limit (HTTP 413)."""

    status = 413


class UnsupportedMediaType(BadInput):
    """A ``Content-Type`` or ``Content-Encoding`` the receiver does not speak (HTTP 415)."""

    status = 415


@dataclass(frozen=True)
class Decoded(Generic[T]):
    """What one export request held: the accepted ``records``, how many were ``rejected``, and
    up to three distinct reasons (``error_message`` joins them for ``partial_success``)."""

    records: list[T]
    rejected: int = 0
    reasons: tuple[str, ...] = ()

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        return f"{self.rejected} rejected: " + "; ".join(self.reasons)


class _Reject(Exception):
    """One record is bad; the message says why."""


class _Tally:
    def __init__(self) -> None:
        self.rejected = 0
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.rejected += 1
        if reason not in self.reasons and len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)

    def result(self, records: list[T]) -> Decoded[T]:
        return Decoded(records, self.rejected, tuple(self.reasons))


# ---------------------------------------------------------------- transport helpers
def wire_format(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` for a ``Content-Type`` header; ``UnsupportedMediaType`` else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _ACCEPTED.get(media)
    if fmt is None:
        raise UnsupportedMediaType(f"content type {content_type or '(none)'!r} is not supported",
                                   field="Content-Type", fix="send application/x-protobuf or application/json")
    return fmt


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (``gzip``, ``deflate``, ``identity``), never
    inflating past ``max_bytes`` (a gzip bomb raises ``BodyTooLarge`` after at most
    ``max_bytes + 1`` bytes of output). Corrupt data raises ``BadInput``."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body is {len(body)} bytes, over the limit of {max_bytes}",
                               field="body", fix="send smaller batches")
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(f"content encoding {encoding!r} is not supported", field="Content-Encoding",
                                   fix="use gzip, deflate or no compression")
    if not body:
        return body
    try:
        if enc != "deflate":
            return _inflate(body, 16 + zlib.MAX_WBITS, max_bytes, enc, members=True)
        try:
            return _inflate(body, zlib.MAX_WBITS, max_bytes, enc, members=False)  # RFC 9110: zlib format
        except zlib.error:
            return _inflate(body, -zlib.MAX_WBITS, max_bytes, enc, members=False)  # raw deflate, as some send
    except zlib.error as e:
        raise BadInput(f"body is not valid {enc}: {e}", field="body", fix=f"compress the body with {enc}") from None


def _inflate(data: bytes, wbits: int, max_bytes: int, enc: str, members: bool) -> bytes:
    out = bytearray()
    while True:  # one pass per gzip member
        d = zlib.decompressobj(wbits)
        out += d.decompress(data, max_bytes + 1 - len(out))  # max_length >= 1 here: 0 would mean "no limit"
        if len(out) > max_bytes or d.unconsumed_tail:
            raise BodyTooLarge(f"body inflates past the limit of {max_bytes} bytes", field="body",
                               fix="send smaller batches")
        if not d.eof:
            raise BadInput(f"{enc} body is truncated", field="body", fix="send the whole compressed body")
        data = d.unused_data
        if not members or not data:
            return bytes(out)


def encode_status(code: int, message: str, fmt: str) -> bytes:
    """A ``google.rpc.Status`` (``code`` a gRPC code, e.g. 3 INVALID_ARGUMENT) — the error body
    OTLP/HTTP prescribes — in protobuf or JSON. Hand-encoded: it is two fields."""
    if fmt == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    msg = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _encode_response(result: Decoded[Any], fmt: str, message: Any, json_field: str, pb_field: str) -> bytes:
    """An ``Export*ServiceResponse``; ``partial_success`` only when something was rejected.
    ``json_field``/``pb_field`` name the rejected count (``rejectedSpans``/``rejected_spans`` ...)."""
    if fmt == JSON:
        if not result.rejected:
            return b"{}"
        return json.dumps({"partialSuccess": {json_field: str(result.rejected),
                                              "errorMessage": result.error_message}}).encode()
    resp = message()
    if result.rejected:
        setattr(resp.partial_success, pb_field, result.rejected)
        resp.partial_success.error_message = result.error_message
    return resp.SerializeToString()


def encode_traces_response(result: Decoded[Any], fmt: str) -> bytes:
    """``ExportTraceServiceResponse`` for ``result``."""
    return _encode_response(result, fmt, trace_service_pb2.ExportTraceServiceResponse, "rejectedSpans",
                            "rejected_spans")


def encode_logs_response(result: Decoded[Any], fmt: str) -> bytes:
    """``ExportLogsServiceResponse`` for ``result``."""
    return _encode_response(result, fmt, logs_service_pb2.ExportLogsServiceResponse, "rejectedLogRecords",
                            "rejected_log_records")


# ---------------------------------------------------------------- shared rules
def entity_of_resource(res: Mapping[str, Any]) -> EntityId:
    """The entity of a log record from its resource attributes (module docstring)."""
    if res.get("rca.entity"):
        return str(res["rca.entity"])
    if res.get("k8s.pod.name"):
        return f"pod:{res['k8s.pod.name']}"
    svc, host = res.get("service.name"), res.get("host.name")
    if svc and not str(svc).startswith("unknown_service") and svc != host:
        return f"service:{svc}"
    if host:
        return f"node:{host}"
    return f"service:{svc or 'unknown'}"


def _severity(text: str, number: int) -> str:
    if text:
        return text.upper()
    return next((name for lo, name in _SEVERITY_BY_RANGE if number >= lo), "")


def _check_span(trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int) -> None:
    if len(trace_id) != 16:
        raise _Reject(f"trace id is {len(trace_id)} bytes, not 16")
    if trace_id == _ZERO_TRACE:
        raise _Reject("trace id is all zero")
    if len(span_id) != 8:
        raise _Reject(f"span id is {len(span_id)} bytes, not 8")
    if span_id == _ZERO_SPAN:
        raise _Reject("span id is all zero")
    if parent and len(parent) != 8:
        raise _Reject(f"parent span id is {len(parent)} bytes, not 8 or empty")
    if start <= 0:
        raise _Reject("start time is missing")
    if end > _MAX_NS:
        raise _Reject("end time is past the year 2262")
    if end < start:
        raise _Reject("end time is before start time")


def _log_ids(trace_id: bytes, span_id: bytes) -> tuple[str | None, str | None]:
    if trace_id and len(trace_id) != 16:
        raise _Reject(f"log trace id is {len(trace_id)} bytes, not 16 or empty")
    if span_id and len(span_id) != 8:
        raise _Reject(f"log span id is {len(span_id)} bytes, not 8 or empty")
    return (trace_id.hex() if trace_id and trace_id != _ZERO_TRACE else None,
            span_id.hex() if span_id and span_id != _ZERO_SPAN else None)


def _body_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, default=_json_default)


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


def _service(res: Mapping[str, Any]) -> str:
    svc = res.get("service.name")
    return str(svc) if svc not in (None, "") else "unknown"


# ---------------------------------------------------------------- protobuf
def _pb_any(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_any(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_any(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def _pb_attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:  # the hot loop of ingest: scalars inline, nested values through _pb_any
        v = kv.value
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which in _PB_SCALARS:
            out[kv.key] = getattr(v, which)
        else:
            out[kv.key] = _pb_any(v)
    return out


def _parse_pb(msg: Any, body: bytes, what: str) -> Any:
    try:
        msg.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise BadInput(f"body is not a valid protobuf {what}: {e}", field="body",
                       fix=f"send a serialized opentelemetry.proto {what}") from None
    return msg


def _pb_traces(body: bytes) -> Decoded[Span]:
    req = _parse_pb(trace_service_pb2.ExportTraceServiceRequest(), body, "ExportTraceServiceRequest")
    out: list[Span] = []
    tally = _Tally()
    kinds, statuses = _KINDS, _STATUSES
    for rs in req.resource_spans:
        res = _pb_attrs(rs.resource.attributes)
        service = _service(res)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                try:
                    _check_span(tid, sid, pid, start, end)
                except _Reject as e:
                    tally.add(str(e))
                    continue
                kind, code = sp.kind, sp.status.code
                out.append(Span(
                    tid.hex(), sid.hex(), pid.hex() if pid and pid != _ZERO_SPAN else None, service, sp.name,
                    start, end, statuses[code] if 0 <= code < 3 else "unset",  # type: ignore[arg-type]
                    kinds[kind] if 0 <= kind < 6 else "unspecified", _pb_attrs(sp.attributes), res,
                    sp.status.message))
    return tally.result(out)


def _pb_logs(body: bytes, now_ns: int) -> Decoded[LogRecord]:
    req = _parse_pb(logs_service_pb2.ExportLogsServiceRequest(), body, "ExportLogsServiceRequest")
    out: list[LogRecord] = []
    tally = _Tally()
    for rl in req.resource_logs:
        ent = entity_of_resource(_pb_attrs(rl.resource.attributes))
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                try:
                    tid, sid = _log_ids(rec.trace_id, rec.span_id)
                except _Reject as e:
                    tally.add(str(e))
                    continue
                ts = rec.time_unix_nano or rec.observed_time_unix_nano or now_ns
                if ts > _MAX_NS:
                    tally.add("log time is past the year 2262")
                    continue
                body_v = _pb_any(rec.body) if rec.HasField("body") else None
                out.append(LogRecord(ts, ent, _severity(rec.severity_text, rec.severity_number),
                                     _body_text(body_v), tid, sid, _pb_attrs(rec.attributes)))
    return tally.result(out)


# ---------------------------------------------------------------- JSON
def _json_root(body: bytes, key: str, what: str) -> list[Any]:
    if not body.strip():
        return []
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"body is not valid JSON: {e}", field="body", fix=f"send an OTLP/JSON {what}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"body is a JSON {type(doc).__name__}, not an object", field="body",
                       fix=f"send an OTLP/JSON {what}")
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadInput(f"{key} is not a list", field=key, fix=f"send an OTLP/JSON {what}")
    return items


def _list(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise BadInput(f"{where} is not a list", field=where, fix="follow the OTLP/JSON structure")
    return v


def _obj(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BadInput(f"{where} is not an object", field=where, fix="follow the OTLP/JSON structure")
    return v


def _j_int(v: Any, what: str) -> int:
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise _Reject(f"{what} is not an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            pass
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise _Reject(f"{what} {v!r} is not an integer")


def _j_enum(v: Any, names: tuple[str, ...], prefix: str, what: str) -> int:
    if isinstance(v, str) and v.upper().startswith(prefix):
        name = v.upper().removeprefix(prefix).lower()
        return names.index(name) if name in names else 0
    return _j_int(v, what)


def _j_id(v: Any, what: str) -> bytes:
    if v is None or v == "":
        return b""
    if not isinstance(v, str) or not _HEX.issuperset(v) or len(v) % 2:
        raise _Reject(f"{what} {str(v)[:40]!r} is not hex")
    return binascii.unhexlify(v)


def _j_any(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return _j_int(v["intValue"], "intValue")
    if "doubleValue" in v:
        d = v["doubleValue"]
        try:
            return float(d)
        except (TypeError, ValueError):
            raise _Reject(f"doubleValue {d!r} is not a number") from None
    if "arrayValue" in v:
        vals = (v["arrayValue"] or {}).get("values") if isinstance(v["arrayValue"], dict) else None
        return [_j_any(x) for x in vals or ()]
    if "kvlistValue" in v:
        vals = (v["kvlistValue"] or {}).get("values") if isinstance(v["kvlistValue"], dict) else None
        return _j_attrs(vals)
    if "bytesValue" in v:
        try:
            return base64.b64decode(v["bytesValue"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise _Reject("bytesValue is not base64") from None
    return None


def _j_attrs(kvs: Any) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise _Reject("attributes are not a list of KeyValue")
    out: dict[str, Any] = {}
    for kv in kvs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Reject("an attribute has no string key")
        out[kv["key"]] = _j_any(kv.get("value"))
    return out


def _j_resource(block: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return _j_attrs(_obj(block.get("resource"), f"{where}.resource").get("attributes"))
    except _Reject as e:
        raise BadInput(f"{where}.resource: {e}", field=f"{where}.resource",
                       fix="give resource attributes as a list of KeyValue") from None


def _j_span(sp: Any, service: str, res: dict[str, Any]) -> Span:
    if not isinstance(sp, dict):
        raise _Reject("a span is not an object")
    tid, sid = _j_id(sp.get("traceId"), "trace id"), _j_id(sp.get("spanId"), "span id")
    pid = _j_id(sp.get("parentSpanId"), "parent span id")
    start, end = _j_int(sp.get("startTimeUnixNano"), "startTimeUnixNano"), _j_int(sp.get("endTimeUnixNano"),
                                                                                 "endTimeUnixNano")
    _check_span(tid, sid, pid, start, end)
    st = sp.get("status") or {}
    if not isinstance(st, dict):
        raise _Reject("status is not an object")
    kind = _j_enum(sp.get("kind"), _KINDS, "SPAN_KIND_", "kind")
    code = _j_enum(st.get("code"), _STATUSES, "STATUS_CODE_", "status code")
    name = sp.get("name") or ""
    return Span(tid.hex(), sid.hex(), pid.hex() if pid and pid != _ZERO_SPAN else None, service,
                name if isinstance(name, str) else str(name), start, end,
                _STATUSES[code] if 0 <= code < 3 else "unset",  # type: ignore[arg-type]
                _KINDS[kind] if 0 <= kind < 6 else "unspecified", _j_attrs(sp.get("attributes")), res,
                str(st.get("message") or ""))


def _j_traces(body: bytes) -> Decoded[Span]:
    out: list[Span] = []
    tally = _Tally()
    for i, rs in enumerate(_json_root(body, "resourceSpans", "ExportTraceServiceRequest")):
        where = f"resourceSpans[{i}]"
        rs = _obj(rs, where)
        res = _j_resource(rs, where)
        service = _service(res)
        for j, ss in enumerate(_list(rs.get("scopeSpans"), f"{where}.scopeSpans")):
            for sp in _list(_obj(ss, f"{where}.scopeSpans[{j}]").get("spans"), f"{where}.scopeSpans[{j}].spans"):
                try:
                    out.append(_j_span(sp, service, res))
                except _Reject as e:
                    tally.add(str(e))
    return tally.result(out)


def _j_log(rec: Any, ent: EntityId, now_ns: int) -> LogRecord:
    if not isinstance(rec, dict):
        raise _Reject("a log record is not an object")
    tid, sid = _log_ids(_j_id(rec.get("traceId"), "log trace id"), _j_id(rec.get("spanId"), "log span id"))
    ts = (_j_int(rec.get("timeUnixNano"), "timeUnixNano")
          or _j_int(rec.get("observedTimeUnixNano"), "observedTimeUnixNano") or now_ns)
    if not 0 < ts <= _MAX_NS:
        raise _Reject("log time is out of range")
    num = rec.get("severityNumber")
    if isinstance(num, str) and num.upper().startswith("SEVERITY_NUMBER_"):
        name = num.upper().removeprefix("SEVERITY_NUMBER_").rstrip("0123456789")
        number = next((lo for lo, n in _SEVERITY_BY_RANGE if n == name), 0)
    else:
        number = _j_int(num, "severityNumber")
    text = rec.get("severityText") or ""
    return LogRecord(ts, ent, _severity(str(text), number), _body_text(_j_any(rec.get("body"))), tid, sid,
                     _j_attrs(rec.get("attributes")))


def _j_logs(body: bytes, now_ns: int) -> Decoded[LogRecord]:
    out: list[LogRecord] = []
    tally = _Tally()
    for i, rl in enumerate(_json_root(body, "resourceLogs", "ExportLogsServiceRequest")):
        where = f"resourceLogs[{i}]"
        rl = _obj(rl, where)
        ent = entity_of_resource(_j_resource(rl, where))
        for j, sl in enumerate(_list(rl.get("scopeLogs"), f"{where}.scopeLogs")):
            for rec in _list(_obj(sl, f"{where}.scopeLogs[{j}]").get("logRecords"),
                             f"{where}.scopeLogs[{j}].logRecords"):
                try:
                    out.append(_j_log(rec, ent, now_ns))
                except _Reject as e:
                    tally.add(str(e))
    return tally.result(out)


# ---------------------------------------------------------------- entry points
def decode_traces(body: bytes, fmt: str) -> Decoded[Span]:
    """Spans of one ``ExportTraceServiceRequest`` body (already decompressed); ``fmt`` is
    ``PROTOBUF`` or ``JSON`` (see :func:`wire_format`). An empty body is an empty request."""
    return _dispatch(fmt, _pb_traces, _j_traces)(body)


def decode_logs(body: bytes, fmt: str, now_ns: int | None = None) -> Decoded[LogRecord]:
    """Log records of one ``ExportLogsServiceRequest`` body; ``now_ns`` (default: the current
    time) stamps records that carry neither time nor observed time."""
    now = time.time_ns() if now_ns is None else int(now_ns)
    return _dispatch(fmt, _pb_logs, _j_logs)(body, now)


def _dispatch(fmt: str, pb: Callable[..., Any], js: Callable[..., Any]) -> Callable[..., Any]:
    if fmt == PROTOBUF:
        return pb
    if fmt == JSON:
        return js
    raise UnsupportedMediaType(f"wire format {fmt!r} is unknown", field="format", fix="use 'protobuf' or 'json'")
