# Loki, Tempo and Jaeger connectors against recorded-shape answers served by httpx.MockTransport.
# The bodies in tests/fixtures/apis/ copy the shapes of: Loki HTTP API docs/sources/api/_index.md
# @ v2.4.2 (query_range streams/matrix, labels, label values; plain-text 400 errors; telemetry
# reference §6.2), Tempo api_docs (GET /api/traces/<id> as {"batches"} jsonpb with base64 ids, or
# {"trace": {"resourceSpans"}}; GET /api/search {"traces": [...]}; 404 for an unknown trace) and the
# Jaeger query HTTP API (GET /api/services, GET /api/traces in µs; {"data", "errors": [{code,msg}]}).
# See tests/fixtures/apis/README.md for the exact section of each file.
from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from connectors.http import HttpSource, error_message, redact_url
from connectors.jaeger import JaegerConnector
from connectors.loki import LokiConnector, severity_of, trace_id_of
from connectors.tempo import TempoConnector, id_hex
from rca.errors import SourceError, SourceTimeout
from rca.protocols import Connector
from rca.types import Window

FIX = Path(__file__).parent / "fixtures" / "apis"
W = Window(1704067200, 1704067260, 15)  # 2024-01-01T00:00:00Z + 1 min
NS = 1_000_000_000


def fixture(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def client(handler: Callable[[httpx.Request], httpx.Response], log: list | None = None) -> httpx.Client:
    def wrapped(req: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append(req)
        return handler(req)
    return httpx.Client(transport=httpx.MockTransport(wrapped))


# ------------------------------------------------------------------ fake Loki over the fixture
def _loki_entries(doc: dict) -> list[tuple[int, dict, str]]:
    return [(int(ts), s["stream"], line) for s in doc["data"]["result"] for ts, line in s["values"]]


def fake_loki(entries: list[tuple[int, dict, str]]) -> Callable[[httpx.Request], httpx.Response]:
    """Answers query_range as Loki does with direction=forward: entries with start <= ts < end,
    oldest first, at most `limit` in total across streams, grouped per stream."""
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/ready":
            return httpx.Response(200, text="ready\n")
        assert req.url.path == "/loki/api/v1/query_range"
        p = req.url.params
        start, end, limit = int(p["start"]), int(p["end"]), int(p["limit"])
        hits = sorted((e for e in entries if start <= e[0] < end), key=lambda e: e[0])[:limit]
        streams: dict[str, dict] = {}
        for ts, labels, line in hits:
            s = streams.setdefault(json.dumps(labels, sort_keys=True), {"stream": labels, "values": []})
            s["values"].append([str(ts), line])
        return httpx.Response(200, json={"status": "success", "data": {
            "resultType": "streams", "result": list(streams.values()), "stats": {}}})
    return handler


def test_connectors_fit_the_protocol():
    for c in (LokiConnector("http://l"), TempoConnector("http://t"), JaegerConnector("http://j")):
        assert isinstance(c, Connector)


def test_loki_decodes_entities_severities_trace_ids_and_sends_params():
    doc = fixture("loki_query_range.json")
    log: list[httpx.Request] = []
    loki = LokiConnector("http://loki:3100", client=client(fake_loki(_loki_entries(doc)), log),
                         tenant="team-a", bearer_token="s3cret", limit=1000)
    snap = loki.fetch(W, selector='{namespace="serving"}')
    assert len(log) == 1
    p = log[0].url.params
    assert p["query"] == '{namespace="serving"}' and p["direction"] == "forward" and p["limit"] == "1000"
    assert p["start"] == str(W.start * NS) and p["end"] == str((W.end + 1) * NS)  # ns, end exclusive
    assert log[0].headers["X-Scope-OrgID"] == "team-a"
    assert log[0].headers["Authorization"] == "Bearer s3cret"

    logs = snap.logs
    assert [r.ts_ns for r in logs] == sorted(e[0] for e in _loki_entries(doc))
    by_body = {r.body[:12]: r for r in logs}
    oom = by_body["CUDA out of m"[:12]]
    assert oom.entity == "pod:vllm-llama-0" and oom.severity == "ERROR"
    assert oom.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert oom.attributes["namespace"] == "serving"
    slow = next(r for r in logs if "slow upstream" in r.body)
    assert slow.entity == "service:checkout" and slow.severity == "WARN"
    assert slow.trace_id == "0000000000000000b7ad6b7169203331"  # 64-bit id padded
    reset = next(r for r in logs if "reset before headers" in r.body)
    assert reset.severity == "ERROR" and reset.trace_id is None
    routed = next(r for r in logs if "routed" in r.body)
    assert routed.entity == "service:llm-router" and routed.severity == "INFO"
    assert routed.trace_id == "00000000000000000000000000c0ffee"
    xid = next(r for r in logs if "Xid" in r.body)
    assert xid.entity == "service:unknown" and xid.severity == ""
    assert len(snap.metrics) == 0 and snap.spans == ()


def test_loki_pages_from_the_last_timestamp_without_duplicates():
    doc = fixture("loki_query_range.json")
    entries = _loki_entries(doc)
    log: list[httpx.Request] = []
    loki = LokiConnector("http://loki", client=client(fake_loki(entries), log), limit=3)
    snap = loki.fetch(W)
    assert len(log) == 3  # 6 lines, pages of 3: [t1 t2 t3a] [t3a t3b t4] [t4 t5]
    first_page_last = sorted(e[0] for e in entries)[2]
    assert int(log[1].url.params["start"]) == first_page_last  # the next page starts at the last ts seen
    assert all(r.url.params["limit"] == "3" for r in log)
    got = [(r.ts_ns, r.body) for r in snap.logs]
    assert len(got) == len(set(got)) == len(entries)
    assert sorted(got) == sorted((ts, line) for ts, _, line in entries)
    one = LokiConnector("http://loki", client=client(fake_loki(entries)), limit=5000).fetch(W)
    assert [(r.ts_ns, r.entity, r.body) for r in one.logs] == [(r.ts_ns, r.entity, r.body) for r in snap.logs]
    assert snap.warnings == ()


def test_loki_more_lines_in_one_ns_than_a_page_ends_with_a_warning():
    ts = W.start * NS + 5
    entries = [(ts, {"job": "a"}, f"line {i}") for i in range(3)] + [(ts + 10, {"job": "a"}, "after")]
    log: list[httpx.Request] = []
    snap = LokiConnector("http://loki", client=client(fake_loki(entries), log), limit=2).fetch(W)
    bodies = [r.body for r in snap.logs]
    assert len(bodies) == len(set(bodies))
    assert "after" in bodies and len(log) < 10
    assert any("share ns" in w for w in snap.warnings)


def test_loki_stops_after_max_pages_with_a_warning():
    entries = [(W.start * NS + i, {"job": "a"}, f"l{i}") for i in range(20)]
    snap = LokiConnector("http://loki", client=client(fake_loki(entries)), limit=2, max_pages=3).fetch(W)
    assert 0 < len(snap.logs) < 20
    assert any("stopped after 3 pages" in w for w in snap.warnings)


def test_loki_matrix_result_becomes_series():
    doc = fixture("loki_query_range_matrix.json")
    loki = LokiConnector("http://loki", client=client(lambda r: httpx.Response(200, json=doc)))
    snap = loki.fetch(W, selector='sum by (pod) (count_over_time({job="vllm"} |= "error" [1m]))')
    f = snap.metrics
    assert [k.label("pod") for k in f.keys] == ["vllm-llama-0", "vllm-llama-1"]
    assert f.timestamps.tolist() == [1704067200, 1704067260]
    assert f.values[0].tolist() == [2.0, 5.0]
    assert f.values[1, 1] == 1.0 and f.values[1, 0] != f.values[1, 0]  # NaN where absent


def test_loki_parse_error_text_becomes_source_error_without_retry():
    body = (FIX / "loki_parse_error.txt").read_text()
    log: list[httpx.Request] = []
    loki = LokiConnector("http://loki", client=client(lambda r: httpx.Response(400, text=body), log),
                         bearer_token="tok-123", backoff_s=0)
    with pytest.raises(SourceError) as ei:
        loki.fetch(W, selector="nonsense")
    assert "parse error at line 1, col 1: syntax error" in str(ei.value)
    assert "HTTP 400" in str(ei.value) and ei.value.source == "loki"
    assert "tok-123" not in str(ei.value)
    assert len(log) == 1  # a 4xx is not retried


def test_503_then_200_is_retried():
    doc = fixture("loki_query_range.json")
    answers = [httpx.Response(503, text="Ingester not ready"), httpx.Response(200, json=doc)]
    log: list[httpx.Request] = []
    loki = LokiConnector("http://loki", client=client(lambda r: answers.pop(0), log), backoff_s=0)
    snap = loki.fetch(W)
    assert len(log) == 2 and len(snap.logs) == len(_loki_entries(doc))


def test_429_with_retry_after_is_retried_then_gives_up_with_the_message():
    log: list[httpx.Request] = []
    c = client(lambda r: httpx.Response(429, text="too many outstanding requests", headers={"Retry-After": "0"}),
               log)
    with pytest.raises(SourceError) as ei:
        LokiConnector("http://loki", client=c, retries=2, backoff_s=0).fetch(W)
    assert len(log) == 3 and "too many outstanding requests" in str(ei.value)
    assert not isinstance(ei.value, SourceTimeout)


def test_garbage_json_is_source_error():
    c = client(lambda r: httpx.Response(200, text="<html>502 Bad Gateway</html>"))
    with pytest.raises(SourceError, match="invalid JSON"):
        LokiConnector("http://loki", client=c).fetch(W)
    c = client(lambda r: httpx.Response(200, json={"status": "success", "data": {"resultType": "streams",
                                                                                 "result": [{"values": 7}]}}))
    with pytest.raises(SourceError, match="malformed stream"):
        LokiConnector("http://loki", client=c).fetch(W)
    c = client(lambda r: httpx.Response(200, json=[1, 2]))
    with pytest.raises(SourceError, match="'data'"):
        LokiConnector("http://loki", client=c).fetch(W)


def test_read_timeout_is_source_timeout_and_not_retried():
    log: list[httpx.Request] = []

    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)
    with pytest.raises(SourceTimeout, match="timed out after 2 s"):
        LokiConnector("http://loki", client=client(slow, log), timeout_s=2, backoff_s=0).fetch(W)
    assert len(log) == 1


def test_connect_error_is_retried_then_source_error():
    log: list[httpx.Request] = []

    def refused(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=req)
    with pytest.raises(SourceError, match="cannot connect"):
        TempoConnector("http://tempo:3200", client=client(refused, log), retries=2, backoff_s=0).fetch(W)
    assert len(log) == 3


def test_real_connection_refused_on_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = JaegerConnector(f"http://127.0.0.1:{port}", retries=1, backoff_s=0, timeout_s=2)
    with pytest.raises(SourceError) as ei:
        j.services()
    assert "cannot connect" in str(ei.value) or "timed out" in str(ei.value)
    h = j.check()
    assert h.status == "down"
    j.http.close()


def test_size_limit():
    c = client(lambda r: httpx.Response(200, content=b"x" * 5000))
    with pytest.raises(SourceError, match="limit"):
        HttpSource("s", "http://s", client=c, max_bytes=1000).get("/x")


def test_empty_results_are_empty_snapshots():
    empty_loki = {"status": "success", "data": {"resultType": "streams", "result": [], "stats": {}}}
    snap = LokiConnector("http://l", client=client(lambda r: httpx.Response(200, json=empty_loki))).fetch(W)
    assert snap.logs == () and len(snap.metrics) == 0 and snap.window == W
    snap = TempoConnector("http://t", client=client(lambda r: httpx.Response(200, json={"traces": []}))).fetch(W)
    assert snap.spans == ()
    snap = JaegerConnector("http://j", client=client(
        lambda r: httpx.Response(200, json={"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None}))).fetch(W)
    assert snap.spans == ()


def test_loki_labels_values_and_check():
    log: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/loki/api/v1/labels":
            return httpx.Response(200, json=fixture("loki_labels.json"))
        if req.url.path == "/loki/api/v1/label/job/values":
            return httpx.Response(200, json=fixture("loki_label_values.json"))
        if req.url.path == "/ready":
            return httpx.Response(200, text="ready\n")
        return httpx.Response(404, text="404 page not found")
    loki = LokiConnector("http://loki", client=client(handler, log), basic_auth=("u", "p"))
    assert loki.labels(W) == ["app", "job", "level", "namespace", "pod"]
    assert log[0].url.params["start"] == str(W.start * NS)
    assert log[0].headers["Authorization"] == "Basic dTpw"
    assert loki.label_values("job") == ["serving/checkout", "serving/vllm"]
    assert "start" not in log[1].url.params
    h = loki.check()
    assert h.status == "ok" and h.latency_s >= 0
    down = LokiConnector("http://loki", client=client(lambda r: httpx.Response(503, text="Ingester not ready")),
                         retries=0).check()
    assert down.status == "down" and "Ingester not ready" in down.detail


@pytest.mark.parametrize(("labels", "line", "want"), [
    ({"level": "warning"}, "x", "WARN"),
    ({}, '{"level":"error","msg":"x"}', "ERROR"),
    ({}, "[CRITICAL] disk", "FATAL"),
    ({}, "lvl=dbug something", "DEBUG"),
    ({}, "all good", ""),
])
def test_severity_rules(labels, line, want):
    assert severity_of(labels, line) == want


def test_trace_id_rules():
    assert trace_id_of({}, "trace_id=ABCDEF0123456789ABCDEF0123456789 x") == "abcdef0123456789abcdef0123456789"
    assert trace_id_of({"traceID": "1234567890abcdef"}, "no id") == "00000000000000001234567890abcdef"
    assert trace_id_of({}, "traceID=xyz") is None


# ------------------------------------------------------------------ Tempo
def tempo_handler(missing: set[str] = frozenset()) -> Callable[[httpx.Request], httpx.Response]:
    traces = {"0af7651916cd43dd8448eb211c80319c": fixture("tempo_trace_batches.json"),
              "0000000000000000e0c4ea3b9a2c5d11": fixture("tempo_trace_v2.json")}

    def handler(req: httpx.Request) -> httpx.Response:
        path = req.url.path
        if path == "/api/search":
            return httpx.Response(200, json=fixture("tempo_search.json"))
        if path.startswith("/api/traces/"):
            tid = path.rsplit("/", 1)[1]
            if tid in traces and tid not in missing:
                return httpx.Response(200, json=traces[tid])
            return httpx.Response(404, text="trace not found")
        if path == "/ready":
            return httpx.Response(200, text="ready")
        return httpx.Response(404, text="404 page not found")
    return handler


def test_tempo_decodes_base64_batches():
    t = TempoConnector("http://tempo", client=client(tempo_handler()))
    spans = {s.span_id: s for s in t.trace("0af7651916cd43dd8448eb211c80319c")}
    assert set(spans) == {"b7ad6b7169203331", "00f067aa0ba902b7"}
    root, child = spans["b7ad6b7169203331"], spans["00f067aa0ba902b7"]
    assert root.trace_id == child.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is None and child.parent == "b7ad6b7169203331"
    assert root.kind == "server" and child.kind == "client"
    assert root.status == "error" and root.status_message == "upstream failed" and child.status == "unset"
    assert root.service == "checkout" and child.service == "payments"
    assert root.resource["k8s.pod.name"] == "checkout-6d9f7-abcde"
    assert root.attributes["http.status_code"] == 500
    assert root.start_ns == 1704067201000000000 and root.end_ns == 1704067201250000000


def test_tempo_decodes_v2_trace_with_hex_ids():
    t = TempoConnector("http://tempo", client=client(tempo_handler()))
    (s,) = t.trace("e0c4ea3b9a2c5d11")  # trimmed id as search returns it
    assert s.trace_id == "0000000000000000e0c4ea3b9a2c5d11" and s.span_id == "1f2e3d4c5b6a7988"
    assert s.kind == "client" and s.status == "ok" and s.attributes["gen_ai.usage.input_tokens"] == 812


def test_tempo_search_params_and_ids():
    log: list[httpx.Request] = []
    t = TempoConnector("http://tempo", client=client(tempo_handler(), log), tenant="t1")
    ids = t.search(W, {"service.name": "checkout", "http.route": "/a b"}, limit=7)
    assert ids == ["0af7651916cd43dd8448eb211c80319c", "0000000000000000e0c4ea3b9a2c5d11"]
    p = log[0].url.params
    assert p["start"] == str(W.start) and p["end"] == str(W.end + 1) and p["limit"] == "7"  # seconds
    assert p["tags"] == 'service.name=checkout http.route="/a b"'
    assert log[0].headers["X-Scope-OrgID"] == "t1"
    t.search(W, '{ resource.service.name = "checkout" && status = error }')
    assert log[1].url.params["q"].startswith("{ resource.service.name") and "tags" not in log[1].url.params


def test_tempo_fetch_searches_then_loads_traces():
    log: list[httpx.Request] = []
    t = TempoConnector("http://tempo", client=client(tempo_handler(), log), concurrency=2)
    snap = t.fetch(W, selector="service.name=checkout")
    assert {s.span_id for s in snap.spans} == {"b7ad6b7169203331", "00f067aa0ba902b7", "1f2e3d4c5b6a7988"}
    assert sorted(r.url.path for r in log if r.url.path.startswith("/api/traces/")) == [
        "/api/traces/0000000000000000e0c4ea3b9a2c5d11", "/api/traces/0af7651916cd43dd8448eb211c80319c"]
    assert snap.warnings == ()
    assert [s.start_ns for s in snap.spans] == sorted(s.start_ns for s in snap.spans)


def test_tempo_404_is_source_error_and_a_warning_inside_fetch():
    t = TempoConnector("http://tempo", client=client(tempo_handler({"0af7651916cd43dd8448eb211c80319c"})))
    with pytest.raises(SourceError, match="HTTP 404: trace not found"):
        t.trace("0af7651916cd43dd8448eb211c80319c")
    snap = t.fetch(W)
    assert {s.span_id for s in snap.spans} == {"1f2e3d4c5b6a7988"}
    assert len(snap.warnings) == 1 and "trace not found" in snap.warnings[0]
    everything_missing = TempoConnector("http://tempo", client=client(tempo_handler(
        {"0af7651916cd43dd8448eb211c80319c", "0000000000000000e0c4ea3b9a2c5d11"})))
    with pytest.raises(SourceError, match="404"):
        everything_missing.fetch(W)


def test_tempo_garbage_trace_body():
    t = TempoConnector("http://tempo", client=client(lambda r: httpx.Response(200, json={"batches": 3})))
    with pytest.raises(SourceError, match="unexpected body"):
        t.trace("0af7651916cd43dd8448eb211c80319c")
    bad_id = {"batches": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "t61rcWkgMzE="}]}]}]}
    t = TempoConnector("http://tempo", client=client(lambda r: httpx.Response(200, json=bad_id)))
    with pytest.raises(SourceError, match="neither hex nor base64"):
        t.trace("0af7651916cd43dd8448eb211c80319c")


def test_id_hex():
    assert id_hex("CvdlGRbNQ92ESOshHIAxnA==", 16) == "0af7651916cd43dd8448eb211c80319c"
    assert id_hex("0AF7651916CD43DD8448EB211C80319C", 16) == "0af7651916cd43dd8448eb211c80319c"
    assert id_hex("t61rcWkgMzE=", 8) == "b7ad6b7169203331"
    with pytest.raises(ValueError):
        id_hex("not an id!", 8)


def test_tempo_check():
    assert TempoConnector("http://tempo", client=client(tempo_handler())).check().status == "ok"


# ------------------------------------------------------------------ Jaeger
def jaeger_handler(req: httpx.Request) -> httpx.Response:
    if req.url.path == "/api/services":
        return httpx.Response(200, json=fixture("jaeger_services.json"))
    if req.url.path == "/api/traces":
        svc = req.url.params.get("service")
        if not svc:
            return httpx.Response(400, json=fixture("jaeger_error.json"))
        return httpx.Response(200, json=fixture(f"jaeger_traces_{svc}.json"))
    return httpx.Response(404, text="404 page not found")


def test_jaeger_decodes_one_service():
    log: list[httpx.Request] = []
    j = JaegerConnector("http://jaeger:16686", client=client(jaeger_handler, log), limit=20)
    snap = j.fetch(W, selector="checkout")
    p = log[0].url.params
    assert log[0].url.path == "/api/traces" and p["service"] == "checkout" and p["limit"] == "20"
    assert p["start"] == str(W.start * 1_000_000) and int(p["end"]) // 1_000_000 == W.end  # microseconds
    spans = {s.span_id: s for s in snap.spans}
    root, child = spans["b7ad6b7169203331"], spans["00f067aa0ba902b7"]
    assert child.parent == "b7ad6b7169203331" and root.parent is None
    assert root.start_ns == 1704067201000000 * 1000 and root.end_ns == root.start_ns + 250_000_000
    assert root.kind == "server" and child.kind == "client"
    assert root.status == "error" and child.status == "error" and child.status_message == "card declined"
    assert root.service == "checkout" and child.service == "payments"
    assert root.resource == {"hostname": "node-1", "k8s.pod.name": "checkout-6d9f7-abcde", "service.name": "checkout"}
    assert child.attributes == {"retry.count": 2, "amount": 12.5}
    assert root.attributes["http.status_code"] == 500 and "span.kind" not in root.attributes


def test_jaeger_all_services_dedupes_spans():
    log: list[httpx.Request] = []
    snap = JaegerConnector("http://jaeger", client=client(jaeger_handler, log)).fetch(W)
    assert sorted(r.url.params.get("service", "") for r in log if r.url.path == "/api/traces") == [
        "checkout", "payments"]
    ids = [(s.trace_id, s.span_id) for s in snap.spans]
    assert len(ids) == len(set(ids)) == 3
    refund = next(s for s in snap.spans if s.name == "refund")
    assert refund.trace_id == "0000000000000000e0c4ea3b9a2c5d11" and refund.status == "ok"


def test_jaeger_errors_array_is_source_error():
    j = JaegerConnector("http://jaeger", client=client(
        lambda r: httpx.Response(400, json=fixture("jaeger_error.json"))), retries=0)
    with pytest.raises(SourceError, match="parameter 'service' is required"):
        j.fetch(W, selector="checkout")
    j = JaegerConnector("http://jaeger", client=client(
        lambda r: httpx.Response(200, json=fixture("jaeger_error.json"))))
    with pytest.raises(SourceError, match="400 parameter 'service' is required"):
        j.services()


def test_jaeger_services_and_check():
    j = JaegerConnector("http://jaeger", client=client(jaeger_handler))
    assert j.services() == ["checkout", "payments"]
    h = j.check()
    assert h.status == "ok" and "2 services" in h.detail
    bad = JaegerConnector("http://jaeger", client=client(lambda r: httpx.Response(200, text="nope")))
    assert bad.check().status == "degraded"


def test_jaeger_malformed_trace_is_source_error():
    body = {"data": [{"traceID": "x", "spans": [{"traceID": "not-hex", "spanID": "1"}]}], "errors": None}
    j = JaegerConnector("http://jaeger", client=client(lambda r: httpx.Response(200, json=body)))
    with pytest.raises(SourceError, match="malformed"):
        j.fetch(W, selector="checkout")


def test_error_message_and_redaction():
    assert error_message(500, b'{"status":"error","errorType":"bad_data","error":"boom"}') == "HTTP 500: boom"
    assert error_message(502, b"") == "HTTP 502: Bad Gateway"
    assert redact_url("https://user:pw@host:8080/x?q=1") == "https://host:8080/x"
