"""OTLP/HTTP receiver: decoding (protobuf and OTLP/JSON), the span/log store, the routes'
HTTP semantics, and the real OpenTelemetry SDK exporters against a real uvicorn server."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from api.otlp import LOGS_PATH, TRACES_PATH, otlp_router
from connectors.otlp import (
    JSON,
    BodyTooLarge,
    decode_logs,
    decode_traces,
    decompress,
    entity_of_resource,
)
from connectors.otlp_store import OtlpStore, OtlpStoreConnector
from rca.emit.otlp_json import logs_to_otlp, spans_to_otlp
from rca.errors import BadInput, SourceError
from rca.graph.builders import SpanGraphBuilder
from rca.protocols import Connector
from rca.sim import simulate
from rca.types import LogRecord, Span, Window

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
T0_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z


# ---------------------------------------------------------------- helpers
def _span_pb(tid: bytes, sid: bytes, start: int = T0_NS, end: int = T0_NS + 5_000_000, parent: bytes = b"",
             name: str = "op", **attrs: str) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "checkout"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.parent_span_id, sp.name = tid, sid, parent, name
    sp.start_time_unix_nano, sp.end_time_unix_nano, sp.kind = start, end, 2
    for k, v in attrs.items():
        a = sp.attributes.add()
        a.key, a.value.string_value = k, v
    return req


def _merge(*reqs: trace_service_pb2.ExportTraceServiceRequest) -> bytes:
    out = trace_service_pb2.ExportTraceServiceRequest()
    for r in reqs:
        out.resource_spans.extend(r.resource_spans)
    return out.SerializeToString()


def _tid(i: int) -> bytes:
    return (i + 1).to_bytes(16, "big")


def _sid(i: int) -> bytes:
    return (i + 1).to_bytes(8, "big")


def _mk_span(i: int, start_ns: int, service: str = "checkout") -> Span:
    return Span(f"{i + 1:032x}", f"{i + 1:016x}", None, service, "op", start_ns, start_ns + 1000,
                attributes={"n": i}, resource={"service.name": service})


@pytest.fixture
def store() -> Iterator[OtlpStore]:
    s = OtlpStore.open("sqlite://")
    yield s
    s.close()


def _client(store: OtlpStore, max_body_bytes: int = 8 * 1024 * 1024) -> TestClient:
    app = FastAPI()
    app.include_router(otlp_router(store, max_body_bytes=max_body_bytes))
    return TestClient(app)


def _all(store: OtlpStore) -> Window:
    return Window(0, 2**62 // 10**9, 15)


def _status(resp) -> status_pb2.Status:
    st = status_pb2.Status()
    st.ParseFromString(resp.content)
    return st


# ---------------------------------------------------------------- OTLP/JSON round trip with the emitter
def test_json_round_trip_of_simulated_spans_and_logs(store: OtlpStore) -> None:
    sim = simulate("mcp_tool_timeout", seed=3)
    spans = list(sim.snapshot.spans[::7])
    assert any(s.status == "error" for s in sim.snapshot.spans)
    spans += [s for s in sim.snapshot.spans if s.status == "error" and s not in spans][:5]
    body = json.dumps(spans_to_otlp(spans)).encode()
    decoded = decode_traces(body, JSON)
    assert decoded.rejected == 0
    assert sorted(decoded.records, key=lambda s: s.span_id) == sorted(spans, key=lambda s: s.span_id)

    resp = _client(store).post(TRACES_PATH, content=body, headers=JS)
    assert resp.status_code == 200 and resp.json() == {}
    assert resp.headers["content-type"].startswith("application/json")
    back = store.spans(_all(store))
    assert {s.span_id: s for s in back} == {s.span_id: s for s in spans}  # ids, times, status, kind, attrs
    assert {s.kind for s in back} >= {"server", "client"} and any(s.status == "error" for s in back)

    logs = list(sim.snapshot.logs[::5])
    got = decode_logs(json.dumps(logs_to_otlp(logs)).encode(), JSON).records
    key = lambda r: (r.ts_ns, r.entity, r.body)  # noqa: E731
    assert sorted(got, key=key) == sorted(logs, key=key)


def test_json_reader_accepts_what_any_exporter_sends() -> None:
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "vllm"}}]}, "unknownField": 1,
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "name": "chat llama-3-8b", "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": 1700000000000000000,
            "endTimeUnixNano": "1700000001200000000", "status": {"code": 2, "message": "upstream 503"},
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
                           {"key": "ratio", "value": {"doubleValue": "NaN"}},
                           {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                           {"key": "raw", "value": {"bytesValue": "AAE="}},
                           {"key": "empty", "value": {}}]}]}]}]}
    (s,) = decode_traces(json.dumps(doc).encode(), JSON).records
    assert (s.trace_id, s.span_id, s.parent) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", None)
    assert (s.kind, s.status, s.status_message, s.service) == ("client", "error", "upstream 503", "vllm")
    assert s.duration_s == pytest.approx(1.2)
    assert s.attributes["gen_ai.usage.input_tokens"] == 812 and s.attributes["ratio"] != s.attributes["ratio"]
    assert s.attributes["tags"] == ["a"] and s.attributes["raw"] == b"\x00\x01" and s.attributes["empty"] is None


def test_log_severity_entity_and_time_rules() -> None:
    def res(**kv: str) -> dict:
        return {"attributes": [{"key": k.replace("_", "."), "value": {"stringValue": v}} for k, v in kv.items()]}

    doc = {"resourceLogs": [
        {"resource": res(service_name="api", k8s_pod_name="api-7c9f4-x2b6q"), "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "5", "severityText": "warning", "body": {"stringValue": "a"}},
            {"observedTimeUnixNano": "6", "severityNumber": 18, "body": {"kvlistValue": {"values": [
                {"key": "k", "value": {"intValue": "1"}}]}}},
            {"severityNumber": "SEVERITY_NUMBER_FATAL2", "traceId": "00000000000000000000000000000000"},
            {"timeUnixNano": "7", "traceId": "abcd"}]}]},
        {"resource": res(service_name="gpu-node-1", host_name="gpu-node-1"), "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "8", "severityNumber": 10}]}]},
        {"resource": res(service_name="unknown_service:python"), "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "9"}]}]}]}
    d = decode_logs(json.dumps(doc).encode(), JSON, now_ns=1234)
    assert d.rejected == 1 and "trace id" in d.error_message
    a, b, c, node, unknown = d.records
    assert (a.entity, a.severity, a.ts_ns, a.body) == ("pod:api-7c9f4-x2b6q", "WARNING", 5, "a")
    assert (b.severity, b.ts_ns, json.loads(b.body)) == ("ERROR", 6, {"k": 1})
    assert (c.severity, c.ts_ns, c.trace_id) == ("FATAL", 1234, None)
    assert (node.entity, node.severity) == ("node:gpu-node-1", "INFO")
    assert unknown.entity == "service:unknown_service:python" and unknown.severity == ""
    assert entity_of_resource({"service.name": "api", "host.name": "n1"}) == "service:api"
    assert entity_of_resource({"rca.entity": "db:vector-db", "service.name": "x"}) == "db:vector-db"


# ---------------------------------------------------------------- route semantics
def test_partial_success_protobuf_keeps_the_good_spans(store: OtlpStore) -> None:
    good = [_span_pb(_tid(i), _sid(i)) for i in range(3)]
    bad = _span_pb(b"\x01" * 8, _sid(9))  # trace id of 8 bytes
    resp = _client(store).post(TRACES_PATH, content=_merge(*good, bad), headers=PB)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    out = trace_service_pb2.ExportTraceServiceResponse()
    out.ParseFromString(resp.content)
    assert out.HasField("partial_success")
    assert out.partial_success.rejected_spans == 1 and "trace id is 8 bytes" in out.partial_success.error_message
    assert sorted(s.span_id for s in store.spans(_all(store))) == [_sid(i).hex() for i in range(3)]


@pytest.mark.parametrize("bad, reason", [
    ({"spanId": "0102030405060708"}, "trace id is 0 bytes"),
    ({"endTimeUnixNano": "1"}, "end time is before start time"),
    ({"spanId": "zz02030405060708"}, "not hex"),
    ({"spanId": "0000000000000000"}, "span id is all zero"),
    ({"parentSpanId": "0102"}, "parent span id is 2 bytes"),
    ({"startTimeUnixNano": "soon"}, "not an integer"),
])
def test_partial_success_json_names_the_reason(store: OtlpStore, bad: dict, reason: str) -> None:
    ok = {"traceId": "0a" * 16, "spanId": "0b" * 8, "name": "ok", "startTimeUnixNano": "100",
          "endTimeUnixNano": "200"}
    wrong = {**ok, "traceId": "0c" * 16, **bad}
    if "spanId" not in bad and "traceId" not in bad:
        wrong["spanId"] = "0d" * 8
    if bad == {"spanId": "0102030405060708"}:
        del wrong["traceId"]
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [ok, wrong]}]}]}
    resp = _client(store).post(TRACES_PATH, content=json.dumps(doc), headers=JS)
    assert resp.status_code == 200
    ps = resp.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "1" and reason in ps["errorMessage"]
    assert [s.span_id for s in store.spans(_all(store))] == ["0b" * 8]
    assert store.spans(_all(store))[0].service == "unknown"


def test_partial_success_for_logs(store: OtlpStore) -> None:
    req = logs_service_pb2.ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i, tid in enumerate([_tid(1), b"\x01\x02", b""]):
        rec = sl.log_records.add()
        rec.time_unix_nano, rec.trace_id, rec.severity_number = T0_NS + i, tid, 17
        rec.body.string_value = f"line {i}"
    resp = _client(store).post(LOGS_PATH, content=req.SerializeToString(), headers=PB)
    assert resp.status_code == 200
    out = logs_service_pb2.ExportLogsServiceResponse()
    out.ParseFromString(resp.content)
    assert out.partial_success.rejected_log_records == 1
    logs = store.logs(_all(store))
    assert [(r.body, r.trace_id, r.severity) for r in logs] == [("line 0", _tid(1).hex(), "ERROR"),
                                                                 ("line 2", None, "ERROR")]
    assert store.logs(_all(store), trace_id=_tid(1).hex().upper())[0].body == "line 0"


@pytest.mark.parametrize("path", [TRACES_PATH, LOGS_PATH])
def test_malformed_bodies_are_400_with_a_status(store: OtlpStore, path: str) -> None:
    c = _client(store)
    resp = c.post(path, content=b"\xff\xff\xff\xff garbage", headers=PB)
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/x-protobuf"
    st = _status(resp)
    assert st.code == 3 and "not a valid protobuf" in st.message
    for body in (b"{not json", b"[1, 2]", json.dumps({"resourceSpans": 5, "resourceLogs": 5}).encode()):
        resp = c.post(path, content=body, headers={"Content-Type": "application/json; charset=utf-8"})
        assert resp.status_code == 400, body
        assert resp.json()["code"] == 3 and resp.json()["message"]
    assert store.counts() == {"spans": 0, "logs": 0}


def test_wrong_content_type_or_encoding_is_415(store: OtlpStore) -> None:
    c = _client(store)
    body = _merge(_span_pb(_tid(0), _sid(0)))
    resp = c.post(TRACES_PATH, content=body, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and "Content-Type" in resp.json()["message"]
    resp = c.post(TRACES_PATH, content=body, headers={**PB, "Content-Encoding": "br"})
    assert resp.status_code == 415 and _status(resp).message.startswith("Content-Encoding")
    assert store.counts()["spans"] == 0


def test_too_large_by_content_length_by_stream_and_by_inflation(store: OtlpStore) -> None:
    c = _client(store, max_body_bytes=4096)
    big = _merge(*[_span_pb(_tid(i), _sid(i), name="x" * 200) for i in range(40)])
    assert len(big) > 4096
    resp = c.post(TRACES_PATH, content=big, headers=PB)
    assert resp.status_code == 413 and "over the limit" in _status(resp).message

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]
    resp = c.post(TRACES_PATH, content=chunks(), headers=PB)
    assert resp.status_code == 413 and "content-length" not in {k.lower() for k in resp.request.headers}

    c = _client(store, max_body_bytes=64 * 1024)
    bomb = gzip.compress(b"\x0a" * 50_000_000, compresslevel=9)  # 50 MB inflated, ~50 kB sent
    assert len(bomb) < 64 * 1024
    resp = c.post(TRACES_PATH, content=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert resp.status_code == 413 and "inflates past" in _status(resp).message
    assert store.counts()["spans"] == 0


def test_decompress_stops_at_the_limit() -> None:
    bomb = zlib.compress(b"a" * 20_000_000, 9)
    with pytest.raises(BodyTooLarge):
        decompress(bomb, "deflate", 1_000_000)
    two = gzip.compress(b"ab") + gzip.compress(b"cd")  # multi-member gzip
    assert decompress(two, "gzip", 10) == b"abcd"
    raw = zlib.compressobj(wbits=-15)
    assert decompress(raw.compress(b"hello") + raw.flush(), "deflate", 10) == b"hello"
    with pytest.raises(BadInput, match="truncated"):
        decompress(gzip.compress(b"hello" * 100)[:-12], "gzip", 10_000)
    with pytest.raises(BodyTooLarge):
        decompress(b"x" * 11, None, 10)


def test_gzip_and_deflate_bodies_are_stored(store: OtlpStore) -> None:
    c = _client(store)
    r1 = c.post(TRACES_PATH, content=gzip.compress(_merge(_span_pb(_tid(1), _sid(1)))),
                headers={**PB, "Content-Encoding": "gzip"})
    r2 = c.post(TRACES_PATH, content=zlib.compress(_merge(_span_pb(_tid(2), _sid(2)))),
                headers={**PB, "Content-Encoding": "deflate"})
    assert (r1.status_code, r1.content, r2.status_code) == (200, b"", 200)
    assert store.counts()["spans"] == 2
    bad = c.post(TRACES_PATH, content=b"not gzip at all", headers={**PB, "Content-Encoding": "gzip"})
    assert bad.status_code == 400 and "gzip" in _status(bad).message


def test_empty_requests_store_nothing(store: OtlpStore) -> None:
    c = _client(store)
    resp = c.post(TRACES_PATH, content=b"", headers=PB)
    assert (resp.status_code, resp.content) == (200, b"")
    for path in (TRACES_PATH, LOGS_PATH):
        resp = c.post(path, content=b"{}", headers=JS)
        assert (resp.status_code, resp.json()) == (200, {})
    resp = c.post(LOGS_PATH, content=json.dumps({"resourceLogs": [{"scopeLogs": []}]}), headers=JS)
    assert resp.status_code == 200
    assert store.counts() == {"spans": 0, "logs": 0}


def test_duplicate_spans_are_ignored_not_an_error(store: OtlpStore) -> None:
    c = _client(store)
    body = _merge(_span_pb(_tid(1), _sid(1), name="first"), _span_pb(_tid(1), _sid(2)))
    assert c.post(TRACES_PATH, content=body, headers=PB).status_code == 200
    again = _merge(_span_pb(_tid(1), _sid(1), name="retry"), _span_pb(_tid(1), _sid(3)))
    assert c.post(TRACES_PATH, content=again, headers=PB).status_code == 200
    tr = store.trace(_tid(1).hex())
    assert [s.span_id for s in tr] == [_sid(i).hex() for i in (1, 2, 3)]
    assert tr[0].name == "first"  # the first copy wins
    spans = [_mk_span(i, T0_NS) for i in range(100, 103)]
    assert store.add_spans(spans) == 3 and store.add_spans(spans + [_mk_span(105, T0_NS)]) == 1


def test_store_failure_is_503_retryable(tmp_path) -> None:
    (tmp_path / "a-file").write_text("x")
    broken = OtlpStore(f"sqlite:///{tmp_path / 'a-file' / 'otlp.db'}")
    resp = _client(broken).post(TRACES_PATH, content=_merge(_span_pb(_tid(0), _sid(0))), headers=PB)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
    assert _status(resp).code == 14
    conn = OtlpStoreConnector(broken)
    assert conn.check().status == "down"
    with pytest.raises(SourceError, match="otlp"):
        conn.fetch(Window(0, 60))


# ---------------------------------------------------------------- store and connector
def test_store_queries_retention_and_connector(tmp_path) -> None:
    st = OtlpStore(f"sqlite:///{tmp_path / 'sub' / 'rca.db'}")
    spans = [_mk_span(i, T0_NS + i * 10**9, "a" if i % 2 else "b") for i in range(10)]
    assert st.add_spans(spans) == 10
    logs = [LogRecord(T0_NS + i * 10**9, "pod:a-0", "INFO" if i % 3 else "ERROR", f"l{i}",
                      spans[i].trace_id, None, {"i": i, "blob": b"\x00"}) for i in range(10)]
    assert st.add_logs(logs) == 10
    t0 = T0_NS // 10**9
    w = Window(t0 + 2, t0 + 5)
    assert [s.span_id for s in st.spans(w)] == [spans[i].span_id for i in range(2, 6)]
    assert [s.span_id for s in st.spans(w, service="a")] == [spans[3].span_id, spans[5].span_id]
    assert st.spans(w, trace_id=spans[4].trace_id) == [spans[4]]
    assert [r.body for r in st.logs(w, severity="error")] == ["l3"]
    assert st.logs(w, entity="pod:nope") == [] and st.logs(w)[0].attributes == {"i": 2, "blob": "AA=="}
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL

    conn = OtlpStoreConnector(st, max_spans=3)
    assert isinstance(conn, Connector) and conn.name == "otlp"
    snap = conn.fetch(w, selector='{service="a"}')
    assert len(snap.metrics) == 0 and [s.span_id for s in snap.spans] == [spans[i].span_id for i in (2, 3, 4)]
    assert len(snap.logs) == 4 and any("more than 3 spans" in x for x in snap.warnings)
    h = conn.check()
    assert h.status == "ok" and "10 spans" in h.detail

    assert st.purge(older_than_s=5.5, now=t0 + 10) == {"spans": 5, "logs": 5}
    assert sorted(s.span_id for s in st.spans(Window(t0, t0 + 20))) == [s.span_id for s in spans[5:]]
    assert st.purge(older_than_s=0, now=t0 + 100) == {"spans": 5, "logs": 5}
    assert st.counts() == {"spans": 0, "logs": 0}
    with pytest.raises(BadInput):
        st.purge(older_than_s=-1)
    st.close()
    assert OtlpStore.open(f"sqlite:///{tmp_path / 'sub' / 'rca.db'}").counts() == {"spans": 0, "logs": 0}


def test_store_survives_reopen_and_shares_the_main_database(tmp_path) -> None:
    from rca.store import SqlStore

    url = f"sqlite:///{tmp_path / 'rca.db'}"
    SqlStore.open(url).close()
    st = OtlpStore.open(url)
    st.add_spans([_mk_span(1, T0_NS)])
    st.close()
    assert OtlpStore(url).trace(f"{2:032x}")[0].attributes == {"n": 1}
    assert SqlStore.open(url).list_incidents() == []


# ---------------------------------------------------------------- the real SDK over a real server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _uvicorn(app: FastAPI) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert th.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(10)
        assert not th.is_alive()


@pytest.mark.integration
def test_sdk_exporters_to_a_real_server(tmp_path) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    store = OtlpStore(f"sqlite:///{tmp_path / 'otlp.db'}")
    app = FastAPI()
    app.include_router(otlp_router(store))
    seen: list[tuple[str, str, str]] = []

    @app.middleware("http")
    async def record(request, call_next):  # what the SDK really sent
        seen.append((request.url.path, request.headers.get("content-type", ""),
                     request.headers.get("content-encoding", "")))
        return await call_next(request)

    t_begin = int(time.time()) - 1
    with _uvicorn(app) as base:
        front = TracerProvider(resource=Resource.create({"service.name": "frontend"}))
        front.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base + TRACES_PATH, timeout=10)))
        back = TracerProvider(resource=Resource.create({"service.name": "backend", "service.version": "1.2"}))
        back.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=base + TRACES_PATH, timeout=10, compression=Compression.Gzip)))
        logs_provider = LoggerProvider(resource=Resource.create({"service.name": "backend",
                                                                 "k8s.pod.name": "backend-0"}))
        logs_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(
            endpoint=base + LOGS_PATH, timeout=10, compression=Compression.Gzip)))
        otel_log = logs_provider.get_logger("test")
        try:
            ft, bt = front.get_tracer("test"), back.get_tracer("test")
            with ft.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root, \
                    ft.start_as_current_span("POST backend", kind=SpanKind.CLIENT,
                                             attributes={"server.address": "backend"}) as client, \
                    bt.start_as_current_span("POST /charge", context=set_span_in_context(client),
                                             kind=SpanKind.SERVER,
                                             attributes={"http.response.status_code": 503, "retry": True,
                                                         "ratio": 0.25, "tags": ["a", "b"]}) as srv:
                srv.set_status(Status(StatusCode.ERROR, "upstream 503"))
                otel_log.emit(severity_number=SeverityNumber.ERROR, severity_text="error",
                              body="charge failed: upstream 503", attributes={"attempt": 1})
                otel_log.emit(severity_number=SeverityNumber.INFO2, body={"msg": "retrying", "in_s": 0.5})
            trace_id = format(root.get_span_context().trace_id, "032x")
        finally:
            for p in (front, back, logs_provider):
                p.shutdown()

    assert (TRACES_PATH, "application/x-protobuf", "") in seen
    assert (TRACES_PATH, "application/x-protobuf", "gzip") in seen
    assert (LOGS_PATH, "application/x-protobuf", "gzip") in seen
    window = Window(t_begin, int(time.time()) + 1)
    spans = {s.name: s for s in store.trace(trace_id)}
    assert set(spans) == {"GET /checkout", "POST backend", "POST /charge"}
    charge = spans["POST /charge"]
    assert (charge.service, charge.kind, charge.status, charge.status_message) == (
        "backend", "server", "error", "upstream 503")
    assert charge.parent == spans["POST backend"].span_id and spans["GET /checkout"].parent is None
    assert charge.attributes == {"http.response.status_code": 503, "retry": True, "ratio": 0.25, "tags": ["a", "b"]}
    assert charge.resource["service.version"] == "1.2" and charge.end_ns > charge.start_ns

    logs = store.logs(window, trace_id=trace_id)
    assert [(r.severity, r.body, r.entity) for r in logs] == [
        ("ERROR", "charge failed: upstream 503", "pod:backend-0"),
        ("INFO", '{"msg": "retrying", "in_s": 0.5}', "pod:backend-0")]
    assert logs[0].span_id == charge.span_id and logs[0].attributes == {"attempt": 1}

    snap = OtlpStoreConnector(store).fetch(window)
    assert len(snap.spans) == 3 and len(snap.logs) == 2
    edges = SpanGraphBuilder().build(snap).edges()
    assert ("service:frontend", "service:backend", "calls") in edges
    store.close()


def test_text_the_store_cannot_hold_is_400_not_500(store: OtlpStore) -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0a" * 16, "spanId": "0b" * 8,
                                                         "name": "\ud800", "startTimeUnixNano": "1",
                                                         "endTimeUnixNano": "2"}]}]}]}
    resp = _client(store).post(TRACES_PATH, content=json.dumps(doc), headers=JS)
    assert resp.status_code == 400 and "cannot keep" in resp.json()["message"]
    huge = _span_pb(_tid(0), _sid(0), start=1, end=2**64 - 1)
    resp = _client(store).post(TRACES_PATH, content=huge.SerializeToString(), headers=PB)
    out = trace_service_pb2.ExportTraceServiceResponse.FromString(resp.content)
    assert resp.status_code == 200 and out.partial_success.rejected_spans == 1
    assert store.counts()["spans"] == 0


@pytest.mark.integration
def test_ingest_bench_runs_through_both_transports() -> None:
    from rca.bench.otlp_bench import bench_ingest

    out = bench_ingest(n_spans=1500, batch=400)
    assert out["requests"] == 4 and [r["transport"] for r in out["runs"]] == ["testclient", "uvicorn"]
    for run in out["runs"]:
        assert run["non_200"] == 0 and run["stored_spans"] == 1500 and run["spans_per_s"] > 0


@pytest.mark.parametrize("url", ["file", "sqlite://"])
def test_concurrent_writers_and_readers(tmp_path, url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    st = OtlpStore.open(f"sqlite:///{tmp_path / 'c.db'}" if url == "file" else url)

    def write(w: int) -> int:
        return sum(st.add_spans([_mk_span(w * 10_000 + b * 50 + i, T0_NS + i) for i in range(50)])
                   + st.add_logs([LogRecord(T0_NS, "service:x", "INFO", f"{w}-{b}")]) for b in range(10))

    def read(_: int) -> int:
        return sum(len(st.spans(Window(T0_NS // 10**9, T0_NS // 10**9 + 1))) for _ in range(10))

    with ThreadPoolExecutor(6) as ex:
        writes = [ex.submit(write, w) for w in range(4)]
        reads = [ex.submit(read, r) for r in range(2)]
        assert [f.result(timeout=60) for f in writes] == [510] * 4
        assert all(f.result(timeout=60) >= 0 for f in reads)
    assert st.counts() == {"spans": 2000, "logs": 40}
    st.close()
