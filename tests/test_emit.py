"""Emitters: OpenMetrics text, OTLP/JSON (checked against the real protobuf schema), JSONL logs,
case folders (read back by ``connectors.files.read_case``) and the simulate bundle."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import rca.emit
from connectors.files import read_case
from rca.emit import (
    Exemplar,
    entity_token,
    read_otlp_logs,
    read_otlp_traces,
    write_bundle,
    write_case,
    write_jsonl_logs,
    write_openmetrics,
    write_otlp_logs,
    write_otlp_traces,
)
from rca.emit.otlp_json import service_of_pod
from rca.entities import aliases_from_inventory
from rca.errors import BadInput, NotFound
from rca.signals import derive
from rca.types import Inventory, LogRecord, MetricFrame, Relation, SeriesKey, Snapshot, Span, Window

T0 = 1795190400  # 2026-11-20T16:00:00Z
STEP = 15
N = 40
TS = np.arange(T0, T0 + STEP * N, STEP)
K = SeriesKey.of
POD70 = "vllm-llama-3-70b-1"
GW = "api-gateway-bcdfg-hjklm"
WEIRD = 'm"x\\y\nz'  # quote, backslash, newline


def _frame() -> MetricFrame:
    rng = np.random.default_rng(7)
    keys, rows = [], []

    def add(key: SeriesKey, row) -> None:
        keys.append(key)
        rows.append(np.asarray(row, dtype=float))

    kv = rng.uniform(0.2, 0.6, N)
    kv[5] = np.nan
    add(K("vllm:kv_cache_usage_perc", pod=POD70, model_name="llama-3-70b", namespace="serving"), kv)
    for code, rate in (("200", 40.0), ("500", 0.5)):
        add(K("http_requests_total", pod=GW, service="api-gateway", code=code),
            np.cumsum(rng.poisson(rate * STEP, N)).astype(float))
    for reason, share in (("stop", 0.9), ("length", 0.1)):
        add(K("vllm:request_success_total", pod=POD70, model_name="llama-3-70b", finished_reason=reason),
            np.cumsum(rng.poisson(share * 100, N)).astype(float))
    bounds = ("0.1", "0.5", "1.0", "+Inf")
    obs = rng.poisson(30, (N, 4)).astype(float)  # per-step counts per bucket (non cumulative)
    cum = np.cumsum(np.cumsum(obs, axis=1), axis=0)  # cumulative over le, then over time
    for j, le in enumerate(bounds):
        add(K("vllm:time_to_first_token_seconds_bucket", pod=POD70, model_name="llama-3-70b", le=le), cum[:, j])
    add(K("vllm:time_to_first_token_seconds_count", pod=POD70, model_name="llama-3-70b"), cum[:, -1])
    add(K("vllm:time_to_first_token_seconds_sum", pod=POD70, model_name="llama-3-70b"),
        np.cumsum(rng.uniform(5, 20, N)))
    add(K("DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-2", gpu="3", UUID="GPU-abc", modelName="NVIDIA H100"),
        rng.uniform(60, 99, N).round())
    add(K("db_query_duration_seconds", service="vector-db", quantile="0.99"), rng.uniform(0.01, 0.02, N))
    add(K("vllm:cache_config_info", pod=POD70, block_size="16"), np.ones(N))
    odd = rng.normal(0, 1e-7, N)
    odd[[1, 2, 3]] = [np.inf, -np.inf, np.nan]
    odd[4] = 1.5e300
    add(K("odd_values", app="x", note=WEIRD), odd)
    return MetricFrame(tuple(keys), TS, np.vstack(rows))


def _inventory() -> Inventory:
    ents = {"service:api-gateway": {"service": "api-gateway"}, "db:vector-db": {"service": "vector-db"},
            "model:llama-3-70b": {"model_name": "llama-3-70b"}, f"pod:{POD70}": {"node": "gpu-node-2"},
            f"pod:{GW}": {"node": "cpu-node-1"}, "node:gpu-node-2": {}, "gpu:gpu-node-2/3": {}}
    rels = (Relation("service:api-gateway", "calls", "model:llama-3-70b"),
            Relation("service:api-gateway", "calls", "db:vector-db"),
            Relation(f"pod:{POD70}", "member_of", "model:llama-3-70b"),
            Relation(f"pod:{GW}", "member_of", "service:api-gateway"),
            Relation(f"pod:{POD70}", "runs_on", "node:gpu-node-2"),
            Relation(f"pod:{POD70}", "uses", "gpu:gpu-node-2/3"))
    return Inventory(ents, rels)


TID = "5b8efff798038103d269b633813fc60c"


def _spans() -> tuple[Span, ...]:
    gw_res = {"service.name": "api-gateway", "k8s.pod.name": GW, "service.version": "2.3.1"}
    vllm_res = {"service.name": "vllm", "k8s.pod.name": POD70}
    ns = T0 * 10**9 + 123
    return (
        Span(TID, "eee19b7ec3c1b174", None, "api-gateway", "POST /v1/chat", ns, ns + 1_200_000_000,
             "error", "server", {"http.response.status_code": 503, "http.route": "/v1/chat", "retry": True,
                                 "weights": [0.5, 1.5], "tags": ["a", "b"], "ratio": 0.25,
                                 "big": 2**62, "nothing": None},
             gw_res, "upstream 503"),
        Span(TID, "00f067aa0ba902b7", "eee19b7ec3c1b174", "vllm", "llm_request", ns + 1000, ns + 1_100_000_000,
             "ok", "server", {"gen_ai.usage.prompt_tokens": 812, "gen_ai.latency.time_to_first_token": 0.31,
                              "nested": {"k": "v", "n": 1}},
             vllm_res),
        Span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, "api-gateway", "GET /health",
             ns + 5 * 10**9, ns + 5 * 10**9 + 2000, "unset", "internal", {}, gw_res),
        Span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203332", "b7ad6b7169203331", "vector-db", "query",
             ns + 5 * 10**9 + 10, ns + 5 * 10**9 + 900, "unset", "client", {"db.system": "qdrant"},
             {"service.name": "vector-db"}),
    )


def _logs() -> tuple[LogRecord, ...]:
    ns = T0 * 10**9
    return (
        LogRecord(ns + 1, f"pod:{POD70}", "WARN", "KV cache usage 98%", None, None, {"logger": "vllm.core"}),
        LogRecord(ns + 2, f"pod:{GW}", "ERROR", 'upstream "503", retrying\nline 2', TID, "eee19b7ec3c1b174",
                  {"http.status": 503, "latency": 1.25, "ok": False}),
        LogRecord(ns + 3, "node:gpu-node-2", "ERROR", "NVRM: Xid (PCI:0000:5d:00): 79, pid=1234", None, None, {}),
        LogRecord(ns + 4, "db:vector-db", "INFO", "compaction done", None, None, {"service.name": "vector-db"}),
        LogRecord(ns + 5, "gpu:gpu-node-2/3", "DEBUG", "clocks throttled", None, None, {"ts": "clash"}),
        LogRecord(ns + 6, "service:orchestrator", "FATAL", "panic", None, None, {}),
    )


def _snapshot() -> Snapshot:
    return Snapshot(Window(int(TS[0]), int(TS[-1]), STEP), _frame(), _spans(), _logs(), _inventory())


# ---------------------------------------------------------------- OpenMetrics helpers
_PREFIX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(v: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def _samples(text: str) -> dict[SeriesKey, dict[int, float]]:
    """A strict little reader of what write_openmetrics writes (every sample line; labels are
    parsed once per series, so it keeps up with simulator-sized files)."""
    by_prefix: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if " # {" in line:  # exemplar
            line = line[: line.index(" # {")]
        prefix, value, ts = line.rsplit(" ", 2)
        by_prefix.setdefault(prefix, []).append((value, ts))
    out: dict[SeriesKey, dict[int, float]] = {}
    for prefix, points in by_prefix.items():
        m = _PREFIX.match(prefix)
        assert m, prefix
        key = K(m.group(1), {k: _unescape(v) for k, v in _LABEL.findall(m.group(3) or "")})
        assert key not in out
        out[key] = {int(t): float(v) for v, t in points}
        assert len(out[key]) == len(points)  # no duplicate timestamps
    return out


def _om(frame: MetricFrame, **kw) -> str:
    buf = io.StringIO()
    write_openmetrics(frame, buf, **kw)
    return buf.getvalue()


def _is_hist(k: SeriesKey) -> bool:
    return "time_to_first_token" in k.name


# ---------------------------------------------------------------- OpenMetrics
def test_openmetrics_file_structure(tmp_path):
    f = _frame()
    n = write_openmetrics(f, tmp_path / "m.om")
    text = (tmp_path / "m.om").read_text()
    assert n == int(np.count_nonzero(~np.isnan(f.values)))
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    assert "NaN" not in text
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M)
    assert len(types) == len({t for t, _ in types})  # one TYPE per family
    assert dict(types) == {
        "DCGM_FI_DEV_GPU_UTIL": "gauge", "db_query_duration_seconds": "gauge", "http_requests": "counter",
        "odd_values": "gauge", "vllm:cache_config_info": "gauge", "vllm:kv_cache_usage_perc": "gauge",
        "vllm:request_success": "counter", "vllm:time_to_first_token_seconds": "histogram"}
    # families contiguous: each sample line belongs to the family of the last TYPE line
    fam = None
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE"):
            fam = line.split()[2]
        else:
            assert line.split("{")[0].split(" ")[0].startswith(fam), line
    assert '+Inf 1795190415' in text and '-Inf 1795190430' in text and "1.5e+300" in text


def test_openmetrics_values_roundtrip_exactly():
    f = _frame()
    got = _samples(_om(f))
    assert set(got) == set(f.keys)
    for key, row in zip(f.keys, f.values, strict=True):
        ok = ~np.isnan(row)
        assert sorted(got[key]) == TS[ok].tolist()  # NaN samples absent, timestamps in seconds
        assert [got[key][t] for t in TS[ok].tolist()] == row[ok].tolist()


def test_openmetrics_parses_with_prometheus_client():
    f = _frame()
    plain = f.select(lambda k: not _is_hist(k))
    fams = {m.name: m for m in text_string_to_metric_families(_om(plain))}
    assert fams["http_requests"].type == "counter"
    assert fams["vllm:kv_cache_usage_perc"].type == "gauge"
    odd = fams["odd_values"].samples
    assert {s.labels["note"] for s in odd} == {WEIRD}  # escaping round-trips
    assert [s.value for s in odd[1:3]] == [math.inf, -math.inf]
    for key, row in zip(plain.keys, plain.values, strict=True):
        fam = key.name.removesuffix("_total")
        got = [(s.timestamp.sec, s.value) for s in fams[fam].samples if s.name == key.name and s.labels == key.as_dict()]
        ok = ~np.isnan(row)
        assert got == list(zip(TS[ok].tolist(), row[ok].tolist(), strict=True))


def test_openmetrics_histogram_points_are_valid_openmetrics():
    """prometheus_client 0.26 drops repeated samples of a group once timestamps repeat within it
    (its truncation dedup), so a multi-point histogram is checked point by point here; the
    whole file goes through promtool in test_emit_promtool.py."""
    f = _frame().select(_is_hist)
    for t in TS[::7].tolist():
        one = f.between(t, t)
        (fam,) = text_string_to_metric_families(_om(one))  # validates +Inf, count == +Inf, order
        assert fam.type == "histogram" and fam.name == "vllm:time_to_first_token_seconds"
        assert [s.labels.get("le") for s in fam.samples] == ["0.1", "0.5", "1.0", "+Inf", None, None]
        assert [s.value for s in fam.samples] == one.values[:, 0].tolist()
    # point layout: all samples of one timestamp together, timestamps ascending
    stamps = [int(line.rsplit(" ", 1)[1]) for line in _om(f).splitlines() if not line.startswith("#")]
    assert stamps == sorted(stamps) and stamps[:6] == [T0] * 6


def test_openmetrics_exemplars(tmp_path):
    f = _frame().select(_is_hist)
    bucket = next(k for k in f.keys if k.label("le") == "0.5")
    ex = Exemplar({"trace_id": TID}, 0.31, T0 + 14.5)
    text = _om(f, exemplars={bucket: {T0 + 15: ex, T0 + 10**6: ex}})
    assert text.count(" # {") == 1
    (fam,) = text_string_to_metric_families(_om(f.between(T0 + 15, T0 + 15), exemplars={bucket: {T0 + 15: ex}}))
    (s,) = [s for s in fam.samples if s.exemplar]
    assert s.exemplar.labels == {"trace_id": TID} and s.exemplar.value == 0.31
    gauge = _frame().select(lambda k: k.name == "vllm:kv_cache_usage_perc")
    with pytest.raises(BadInput, match="exemplar"):
        write_openmetrics(gauge, tmp_path / "bad.om", exemplars={gauge.keys[0]: {T0: ex}})
    assert not (tmp_path / "bad.om").exists()  # checked before anything is written
    with pytest.raises(BadInput, match="128"):
        _om(f, exemplars={bucket: {T0: Exemplar({"trace_id": "x" * 200}, 1.0)}})


def test_openmetrics_rejects_bad_names_and_handles_clashes():
    bad = MetricFrame((K("9lives"),), TS[:2], np.ones((1, 2)))
    with pytest.raises(BadInput, match="metric name"):
        _om(bad)
    with pytest.raises(BadInput, match="label name"):
        _om(MetricFrame((K("ok", **{"bad-label": "x"}),), TS[:2], np.ones((1, 2))))
    # a gauge "foo" and a counter "foo_total" cannot both be family "foo": the counter becomes a gauge
    clash = MetricFrame((K("foo"), K("foo_total"), K("h_bucket", le="1")), TS[:2], np.ones((3, 2)))
    text = _om(clash)
    assert re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M) == [
        ("foo", "gauge"), ("foo_total", "gauge"), ("h_bucket", "gauge")]  # no +Inf bucket: not a histogram
    assert {m.name for m in text_string_to_metric_families(text)} == {"foo", "foo_total", "h_bucket"}
    empty = _om(MetricFrame.empty())
    assert empty == "# EOF\n"


# ---------------------------------------------------------------- OTLP/JSON
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_to_b64(d):
    if isinstance(d, dict):
        return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in _ID_FIELDS else _hex_to_b64(v)
                for k, v in d.items()}
    if isinstance(d, list):
        return [_hex_to_b64(x) for x in d]
    return d


def _sid(s: Span) -> str:
    return s.span_id


def _py(v):
    """protobuf AnyValue -> Python."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_py(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _py(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def _attrs(kvs):
    return {kv.key: _py(kv.value) for kv in kvs}


def test_otlp_traces_follow_the_json_rules(tmp_path):
    write_otlp_traces(_spans(), tmp_path / "t.json")
    raw = json.loads((tmp_path / "t.json").read_text())
    sp = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert sp["traceId"] == TID and sp["kind"] == 2 and sp["status"] == {"code": 2, "message": "upstream 503"}
    assert isinstance(sp["startTimeUnixNano"], str) and "parentSpanId" not in sp
    attrs = {a["key"]: a["value"] for a in sp["attributes"]}
    assert attrs["http.response.status_code"] == {"intValue": "503"}
    assert attrs["retry"] == {"boolValue": True} and attrs["ratio"] == {"doubleValue": 0.25}
    assert attrs["weights"] == {"arrayValue": {"values": [{"doubleValue": 0.5}, {"doubleValue": 1.5}]}}
    assert not re.search(r'"[a-z]+_[a-z_]+":', (tmp_path / "t.json").read_text().replace('"key":', ""))


def test_otlp_traces_decode_with_opentelemetry_proto_without_loss(tmp_path):
    spans = _spans()
    write_otlp_traces(spans, tmp_path / "t.json")
    req = ParseDict(_hex_to_b64(json.loads((tmp_path / "t.json").read_text())), ExportTraceServiceRequest())
    got = [(rs, s) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(got) == len(spans) and len(req.resource_spans) == 3  # one per distinct resource
    by_id = {s.span_id.hex(): (rs, s) for rs, s in got}
    kinds = {"internal": 1, "server": 2, "client": 3}
    for src in spans:
        rs, s = by_id[src.span_id]
        assert s.trace_id == bytes.fromhex(src.trace_id) and s.span_id == bytes.fromhex(src.span_id)
        assert s.parent_span_id == (bytes.fromhex(src.parent) if src.parent else b"")
        assert s.name == src.name and s.kind == kinds[src.kind]
        assert (s.start_time_unix_nano, s.end_time_unix_nano) == (src.start_ns, src.end_ns)
        assert s.status.code == {"unset": 0, "ok": 1, "error": 2}[src.status]
        assert s.status.message == src.status_message
        assert _attrs(s.attributes) == dict(src.attributes)
        assert _attrs(rs.resource.attributes) == {"service.name": src.service, **src.resource}


def test_otlp_traces_reader_roundtrips(tmp_path):
    spans = _spans()
    write_otlp_traces(spans, tmp_path / "t.json")
    back = read_otlp_traces(tmp_path / "t.json")  # grouped per resource, in order within a group
    assert sorted(back, key=_sid) == sorted(spans, key=_sid)
    # int64 as numbers, enum names, upper-case hex are accepted too
    d = json.loads((tmp_path / "t.json").read_text())
    sp = d["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    sp.update(startTimeUnixNano=int(sp["startTimeUnixNano"]), kind="SPAN_KIND_SERVER", traceId=TID.upper(),
              status={"code": "STATUS_CODE_ERROR", "message": "upstream 503"}, unknownField=1)
    assert read_otlp_traces(d)[0] == spans[0]  # the first group is the first span's resource
    with pytest.raises(BadInput, match="traceId"):
        write_otlp_traces([Span("xyz", "eee19b7ec3c1b174", None, "a", "n", 0, 1)], tmp_path / "bad.json")


def test_otlp_logs_decode_with_opentelemetry_proto_without_loss(tmp_path):
    logs = _logs()
    write_otlp_logs(logs, tmp_path / "l.json")
    raw = json.loads((tmp_path / "l.json").read_text())
    req = ParseDict(_hex_to_b64(raw), ExportLogsServiceRequest())
    got = [(rl, r) for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert len(got) == len(logs)
    sev = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
    resources = {}
    for src, (rl, r) in zip(logs, got, strict=True):  # one resource per entity, in first-seen order
        assert r.time_unix_nano == src.ts_ns == r.observed_time_unix_nano
        assert r.severity_number == sev[src.severity] and r.severity_text == src.severity
        assert r.body.string_value == src.body
        assert r.trace_id == (bytes.fromhex(src.trace_id) if src.trace_id else b"")
        assert r.span_id == (bytes.fromhex(src.span_id) if src.span_id else b"")
        assert _attrs(r.attributes) == dict(src.attributes)
        resources[src.entity] = _attrs(rl.resource.attributes)
    assert resources[f"pod:{POD70}"] == {"service.name": "vllm-llama-3-70b", "k8s.pod.name": POD70}
    assert resources[f"pod:{GW}"] == {"service.name": "api-gateway", "k8s.pod.name": GW}
    assert resources["node:gpu-node-2"] == {"service.name": "gpu-node-2", "host.name": "gpu-node-2"}
    assert resources["db:vector-db"] == {"service.name": "vector-db", "rca.entity": "db:vector-db"}
    assert resources["service:orchestrator"] == {"service.name": "orchestrator"}


def test_otlp_logs_reader_roundtrips(tmp_path):
    logs = _logs()
    write_otlp_logs(logs, tmp_path / "l.json")
    assert read_otlp_logs(tmp_path / "l.json") == list(logs)
    # explicit resources override the default and still map back to the pod
    write_otlp_logs(logs[:1], tmp_path / "l2.json",
                    resources={f"pod:{POD70}": {"service.name": "vllm", "k8s.pod.name": POD70}})
    assert read_otlp_logs(tmp_path / "l2.json") == list(logs[:1])
    d = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [
        {"observedTimeUnixNano": 5, "severityNumber": 18, "body": {"kvlistValue": {"values": []}}}]}]}]}
    (r,) = read_otlp_logs(d)
    assert (r.ts_ns, r.severity, r.body, r.entity) == (5, "ERROR", "{}", "service:unknown")


@pytest.mark.parametrize(("pod", "svc"), [
    ("vllm-llama-3-70b-1", "vllm-llama-3-70b"), ("api-gateway-bcdfg-hjklm", "api-gateway"),
    ("batch-embed-x2b6q", "batch-embed"), ("vector-db-0", "vector-db"), ("standalone", "standalone")])
def test_service_of_pod(pod, svc):
    assert service_of_pod(pod) == svc


# ---------------------------------------------------------------- JSONL
def test_jsonl_logs(tmp_path):
    logs = _logs()
    assert write_jsonl_logs(logs, tmp_path / "l.jsonl") == len(logs)
    lines = (tmp_path / "l.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    assert list(rows[1])[:7] == ["ts", "ts_ns", "entity", "severity", "body", "trace_id", "span_id"]
    assert rows[0]["ts"] == "2026-11-20T16:00:00.000000001Z" and rows[0]["ts_ns"] == logs[0].ts_ns
    assert rows[1]["body"] == logs[1].body and rows[1]["http.status"] == 503 and rows[1]["trace_id"] == TID
    assert rows[0]["trace_id"] is None and rows[0]["logger"] == "vllm.core"
    assert rows[4]["ts"].startswith("2026") and rows[4]["attr.ts"] == "clash"


# ---------------------------------------------------------------- case folders
def test_entity_tokens():
    assert entity_token("pod:vllm-llama-3-70b-1") == "vllm-llama-3-70b-1"
    assert entity_token("gpu:gpu-node-2/3") == "gpu-node-2-gpu3"
    assert entity_token("db:vector-db") == "vector-db"
    assert entity_token("service:my_svc") == "my-svc"


def _label():
    return {"root_cause_service": f"pod:{POD70}", "fault": "kv_cache_exhaustion", "scenario": "s", "seed": 3}


def test_case_roundtrips_through_read_case(tmp_path):
    snap = _snapshot()
    deps = [("service:api-gateway", "model:llama-3-70b"), ("model:llama-3-70b", f"pod:{POD70}")]
    files = write_case(tmp_path / "c", snap, T0 + 300, _label(), deps)
    assert set(files) == {"metrics", "inject_time", "label", "logs", "traces", "dependency"}
    sig = derive(snap.metrics, aliases_from_inventory(snap.inventory))
    case = read_case(tmp_path / "c")
    m = case.snapshot.metrics
    assert len(m) == len(sig.frame) and m.timestamps.tolist() == TS.tolist()
    cols = [f"{k.label('service')}_{k.name}" for k in m.keys]
    assert len(set(cols)) == len(cols)
    for c in cols:
        svc, metric = c.split("_", 1)
        assert "_" not in svc and re.fullmatch(r"[A-Za-z0-9_]+", metric), c
    for col in (f"{POD70}_vllm_time_to_first_token_seconds_p99", f"{GW}_http_requests_error_ratio",
                f"{POD70}_vllm_request_success_ratio_finished_reason_length", "gpu-node-2-gpu3_DCGM_FI_DEV_GPU_UTIL",
                f"{POD70}_vllm_kv_cache_usage_perc", "vector-db_db_query_duration_seconds", "x_odd_values"):
        assert col in cols, col
    # values within 6 significant digits, gaps where the derived signal has NaN
    a, b = sig.frame.values, m.values
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(a)
    assert np.array_equal(a[~fin & ~np.isnan(a)], b[~fin & ~np.isnan(b)])
    assert np.allclose(b[fin], a[fin], rtol=5e-6, atol=0)
    assert case.inject_time == T0 + 300
    assert case.label == {"root_cause_service": POD70, "root_cause_entity": f"pod:{POD70}",
                          "fault": "kv_cache_exhaustion", "root_cause_metric": None, "source": "rca-sim",
                          "scenario": "s", "seed": 3}
    assert case.dependency == [("api-gateway", "llama-3-70b"), ("llama-3-70b", POD70)]


def test_case_logs_and_traces(tmp_path):
    snap = _snapshot()
    write_case(tmp_path / "c", snap, T0, _label())
    case = read_case(tmp_path / "c")
    logs = case.snapshot.logs
    assert [(r.severity, r.body, r.trace_id, r.span_id) for r in logs] == [
        (r.severity, r.body, r.trace_id, r.span_id) for r in snap.logs]
    # read_case parses integer columns through float64, so ns timestamps come back to ~256 ns
    assert [abs(a.ts_ns - b.ts_ns) <= 512 for a, b in zip(logs, snap.logs, strict=True)] == [True] * len(logs)
    text = (tmp_path / "c" / "logs.csv").read_text()
    assert all(str(r.ts_ns) in text for r in snap.logs)  # written exactly
    assert [r.entity for r in logs] == ["service:" + t for t in (
        POD70, GW, "gpu-node-2", "vector-db", "gpu-node-2-gpu3", "orchestrator")]
    spans = case.snapshot.spans
    assert [(s.trace_id, s.span_id, s.parent, s.name, s.status) for s in spans] == [
        (s.trace_id, s.span_id, s.parent, s.name, s.status) for s in snap.spans]
    assert [s.service for s in spans] == ["api-gateway", "vllm", "api-gateway", "vector-db"]
    assert [s.start_ns for s in spans] == [s.start_ns // 1000 * 1000 for s in snap.spans]
    assert [s.end_ns - s.start_ns for s in spans] == [(s.end_ns - s.start_ns) // 1000 * 1000 for s in snap.spans]
    assert spans[0].resource == {"service.name": "api-gateway", "k8s.pod.name": GW}
    assert case.dependency is None


def test_case_token_collisions_and_bad_label(tmp_path):
    f = MetricFrame((K("up", service="x"), K("up", service="y")), TS[:3], np.ones((2, 3)))
    inv = Inventory({"db:x": {"service": "x"}, "service:x": {}}, ())
    snap = Snapshot(Window(T0, T0 + 30, STEP), f, logs=(LogRecord(T0 * 10**9, "service:x", "INFO", "hi"),),
                    inventory=inv)
    write_case(tmp_path / "c", snap, T0, {"root_cause_service": "db:x", "fault": "f"})
    case = read_case(tmp_path / "c")
    assert {k.label("service") for k in case.snapshot.metrics.keys} == {"db-x", "y"}
    assert case.label["root_cause_service"] == "db-x" and case.snapshot.logs[0].entity == "service:service-x"
    with pytest.raises(BadInput, match="label"):
        write_case(tmp_path / "d", snap, T0, {"root_cause_service": None, "fault": "f", "x": object()})


def test_case_label_with_several_roots(tmp_path):
    snap = _snapshot()
    write_case(tmp_path / "c", snap, T0, {"root_cause_service": f"pod:{POD70}", "fault": "multi",
                                          "root_cause_services": [f"pod:{POD70}", "gpu:gpu-node-2/3"],
                                          "root_cause_metric": f"{POD70}_vllm_kv_cache_usage_perc"})
    case = read_case(tmp_path / "c")
    assert list(case.label)[:4] == ["root_cause_service", "fault", "root_cause_metric", "source"]
    assert case.root_causes == [POD70, "gpu-node-2-gpu3"]
    assert case.label["root_cause_entities"] == [f"pod:{POD70}", "gpu:gpu-node-2/3"]
    assert case.label["root_cause_metric"] in {f"{k.label('service')}_{k.name}" for k in case.snapshot.metrics.keys}


# ---------------------------------------------------------------- bundle
def _result(root=f"pod:{POD70}", onset=T0 + 300):
    return SimpleNamespace(snapshot=_snapshot(), seed=3, question="why is TTFT high?", question_time=T0 + 480,
                           scenario=SimpleNamespace(name="kv_cache_exhaustion"),
                           truth=SimpleNamespace(root=root, category="saturation", onset=onset))


def test_bundle_writes_everything(tmp_path):
    paths = write_bundle(_result(), tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "metrics.om", "traces.otlp.json", "logs.otlp.json", "logs.jsonl", "case", "README.txt"}
    assert all(p.exists() for p in paths.values())
    readme = paths["readme"].read_text()
    assert "promtool tsdb create-blocks-from openmetrics metrics.om" in readme and "kv_cache_exhaustion" in readme
    case = read_case(paths["case"])
    assert case.inject_time == T0 + 300
    assert case.label == {"root_cause_service": POD70, "root_cause_entity": f"pod:{POD70}", "fault": "saturation",
                          "root_cause_metric": None, "source": "rca-sim", "scenario": "kv_cache_exhaustion",
                          "seed": 3, "question": "why is TTFT high?", "question_time": T0 + 480}
    assert ("api-gateway", "llama-3-70b") in case.dependency and ("llama-3-70b", POD70) in case.dependency
    assert (POD70, "gpu-node-2-gpu3") in case.dependency and (POD70, "gpu-node-2") in case.dependency
    # a pod's logs share the resource of its spans
    logs = json.loads(paths["logs_otlp"].read_text())
    res = [{a["key"]: a["value"]["stringValue"] for a in rl["resource"]["attributes"]} for rl in logs["resourceLogs"]]
    assert {"service.name": "vllm", "k8s.pod.name": POD70} in res
    assert sorted(read_otlp_traces(paths["traces"]), key=_sid) == sorted(_spans(), key=_sid)
    assert len(paths["logs_jsonl"].read_text().splitlines()) == len(_logs())


def test_bundle_without_fault_uses_the_question_time(tmp_path):
    paths = write_bundle(_result(root=None, onset=None), tmp_path / "out")
    case = read_case(paths["case"])
    assert case.inject_time == T0 + 480 and case.label["root_cause_service"] is None
    assert case.root_causes == []


def test_public_api():
    assert sorted(rca.emit.__all__) == sorted([
        "Exemplar", "entity_token", "logs_to_otlp", "read_otlp_logs", "read_otlp_traces", "spans_to_otlp",
        "write_bundle", "write_case", "write_jsonl_logs", "write_openmetrics", "write_otlp_logs",
        "write_otlp_traces"])


# ---------------------------------------------------------------- real simulator output
@pytest.fixture(scope="module")
def sim_result():
    sim = pytest.importorskip("rca.sim", reason="the simulator package rca.sim is not importable")
    if not hasattr(sim, "simulate"):
        pytest.skip("rca.sim does not export simulate() yet (simulator still being written)")
    try:
        return sim.simulate("kv_cache_exhaustion", seed=0)
    except NotFound as e:
        pytest.skip(f"simulator scenario missing: {e}")


def test_sim_openmetrics_exact(sim_result, tmp_path):
    f = sim_result.snapshot.metrics
    write_openmetrics(f, tmp_path / "m.om")
    text = (tmp_path / "m.om").read_text()
    assert text.endswith("# EOF\n") and "NaN" not in text
    got = _samples(text)
    assert len(got) == len(f)
    for key, row in zip(f.keys, f.values, strict=True):
        ok = ~np.isnan(row)
        assert list(got[key]) == f.timestamps[ok].tolist()
        assert list(got[key].values()) == row[ok].tolist()


def test_sim_otlp_roundtrips(sim_result, tmp_path):
    snap = sim_result.snapshot
    assert snap.spans and snap.logs
    write_otlp_traces(snap.spans, tmp_path / "t.json")
    write_otlp_logs(snap.logs, tmp_path / "l.json")
    ParseDict(_hex_to_b64(json.loads((tmp_path / "t.json").read_text())), ExportTraceServiceRequest())
    ParseDict(_hex_to_b64(json.loads((tmp_path / "l.json").read_text())), ExportLogsServiceRequest())
    back = read_otlp_traces(tmp_path / "t.json")
    assert sorted(back, key=lambda s: s.span_id) == sorted(
        (Span(**{**s.__dict__, "resource": {"service.name": s.service, **s.resource},
                 "attributes": json.loads(json.dumps(dict(s.attributes)))}) for s in snap.spans),
        key=lambda s: s.span_id)
    logs = read_otlp_logs(tmp_path / "l.json")
    key = lambda r: (r.ts_ns, r.entity, r.body)  # noqa: E731
    assert sorted(logs, key=key) == sorted(snap.logs, key=key)


def test_sim_bundle_case_roundtrip(sim_result, tmp_path):
    paths = write_bundle(sim_result, tmp_path / "out")
    snap = sim_result.snapshot
    case = read_case(paths["case"])
    sig = derive(snap.metrics, aliases_from_inventory(snap.inventory))
    assert len(case.snapshot.metrics) == len(sig.frame)
    a, b = sig.frame.values, case.snapshot.metrics.values
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(a)
    assert np.allclose(b[fin], a[fin], rtol=5e-6, atol=0)
    truth = sim_result.truth
    assert case.inject_time == (truth.onset if truth.root else sim_result.question_time)
    assert case.label["root_cause_entity"] == truth.root and case.label["fault"] == truth.category
    assert case.label["root_cause_service"] in {k.label("service") for k in case.snapshot.metrics.keys} | {
        t for ab in case.dependency for t in ab}
    assert len(case.snapshot.spans) == len(snap.spans) and len(case.snapshot.logs) == len(snap.logs)
