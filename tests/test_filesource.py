"""FileConnector: what rca.emit writes reads back equal, through every format; layouts agree;
malformed files give BadInput naming the file, line/field and fix."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from connectors.files import read_case, read_metrics
from connectors.filesource import FileConnector, read_path, select
from rca.emit import write_bundle, write_jsonl_logs, write_openmetrics, write_otlp_logs, write_otlp_traces
from rca.emit.otlp_json import spans_to_otlp
from rca.errors import BadInput, NotFound
from rca.protocols import Connector
from rca.sim import simulate
from rca.types import LogRecord, MetricFrame, SeriesKey, Snapshot, Window


@pytest.fixture(scope="module")
def sim():
    """A small slice of one simulated incident: a few pods' series (histograms, counters,
    gauges, ``vllm:`` names, DCGM), 40 steps around the onset, the first spans and logs there."""
    r = simulate("kv_cache_exhaustion", 0)
    s = r.snapshot
    pods = sorted({k.label("pod") for k in s.metrics.keys if k.label("pod")})
    keep = {next(p for p in pods if p.startswith("vllm")), next(p for p in pods if p.startswith("api-gateway"))}
    f = s.metrics.select(lambda k: k.label("pod") in keep)
    j = int(np.searchsorted(f.timestamps, r.truth.onset))  # 40 steps around the onset (spans start late)
    f = MetricFrame(f.keys, f.timestamps[j - 20:j + 20], f.values[:, j - 20:j + 20])
    w = Window(int(f.timestamps[0]), int(f.timestamps[-1]), s.window.step)
    lo, hi = w.start * 10**9, (w.end + 1) * 10**9
    spans = tuple(sorted((x for x in s.spans if lo <= x.start_ns < hi), key=lambda x: x.start_ns)[:300])
    logs = tuple(sorted((x for x in s.logs if lo <= x.ts_ns < hi), key=lambda x: x.ts_ns)[:300])
    small = Snapshot(w, f, spans, logs, s.inventory)
    return SimpleNamespace(snapshot=small, truth=r.truth, scenario=r.scenario, seed=0, question=r.question,
                           question_time=r.question_time)


def aligned(f: MetricFrame, ts: np.ndarray) -> dict[SeriesKey, np.ndarray]:
    m = np.full((len(f), len(ts)), np.nan)
    m[:, np.searchsorted(ts, f.timestamps)] = f.values
    return dict(zip(f.keys, m, strict=True))


def assert_same_frame(a: MetricFrame, b: MetricFrame) -> None:
    assert len(a) == len(b) and set(a.keys) == set(b.keys)
    ts = np.union1d(a.timestamps, b.timestamps)
    da, db = aligned(a, ts), aligned(b, ts)
    for k, row in da.items():
        np.testing.assert_array_equal(row, db[k], err_msg=str(k))


def by_id(spans):
    return sorted(spans, key=lambda s: (s.trace_id, s.span_id))


def by_line(logs):
    return sorted(logs, key=lambda r: (r.ts_ns, r.entity, r.body))


def test_file_connector_fits_the_protocol(tmp_path):
    assert isinstance(FileConnector(tmp_path), Connector)


def test_openmetrics_round_trip(sim, tmp_path):
    f = sim.snapshot.metrics
    assert any(":" in k.name for k in f.keys) and any(k.label("le") for k in f.keys)
    assert any(k.name.endswith("_total") for k in f.keys) and any(k.name.startswith("DCGM") for k in f.keys)
    path = tmp_path / "metrics.om"
    write_openmetrics(f, path)
    snap = FileConnector(path).fetch(sim.snapshot.window)
    assert_same_frame(snap.metrics, f)
    assert snap.spans == () and snap.logs == ()


def test_prometheus_text_004_timestamps_are_ms(sim, tmp_path):
    f = sim.snapshot.metrics
    om = tmp_path / "m.om"
    write_openmetrics(f, om)
    lines = [ln for ln in om.read_text().splitlines() if ln != "# EOF"]
    text = [ln if ln.startswith("#") else f"{ln.rsplit(' ', 1)[0]} {int(ln.rsplit(' ', 1)[1]) * 1000}"
            for ln in lines]
    prom = tmp_path / "m.prom"
    prom.write_text("\n".join(text) + "\n")
    assert_same_frame(read_path(prom).metrics, f)


def test_exposition_label_escapes_and_spaces(tmp_path):
    p = tmp_path / "x.prom"
    p.write_text('# HELP up whether up\n# TYPE up gauge\n'
                 'up{job="a b",path="/x}y",msg="say \\"hi\\"\\n"} 1 1704067200000\n'
                 'up{job="a b",path="/x}y",msg="say \\"hi\\"\\n"} 0 1704067215000\n'
                 'plain 3.5 1704067215000\n')
    f = read_path(p).metrics
    k = SeriesKey.of("up", job="a b", path="/x}y", msg='say "hi"\n')
    assert f.timestamps.tolist() == [1704067200, 1704067215]
    assert f.row(k).tolist() == [1.0, 0.0]
    assert np.isnan(f.row(SeriesKey("plain"))[0]) and f.row(SeriesKey("plain"))[1] == 3.5


def test_otlp_json_spans_and_logs_round_trip(sim, tmp_path):
    snap = sim.snapshot
    write_otlp_traces(snap.spans, tmp_path / "t.json")
    write_otlp_logs(snap.logs, tmp_path / "l.json")
    spans = FileConnector(tmp_path / "t.json").fetch(snap.window).spans
    assert by_id(spans) == by_id(snap.spans) and len(spans) == len(snap.spans) > 0
    assert any(s.parent for s in spans) and any(s.status == "error" for s in snap.spans) == any(
        s.status == "error" for s in spans)
    logs = read_path(tmp_path / "l.json").logs
    assert by_line(logs) == by_line(snap.logs)


def test_otlp_export_requests_one_per_line(sim, tmp_path):
    spans = list(sim.snapshot.spans)
    p = tmp_path / "traces.jsonl"
    p.write_text(json.dumps(spans_to_otlp(spans[:10])) + "\n" + json.dumps(spans_to_otlp(spans[10:30])) + "\n")
    assert by_id(read_path(p).spans) == by_id(spans[:30])


def test_jsonl_logs_round_trip(sim, tmp_path):
    extra = LogRecord(sim.snapshot.window.start * 10**9 + 7, "node:gpu-node-1", "ERROR", "Xid 79",
                      "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
                      {"body": "shadowed", "severity": "x", "source": "kernel"})
    logs = [*sim.snapshot.logs, extra]
    write_jsonl_logs(logs, tmp_path / "logs.jsonl")
    got = FileConnector(tmp_path / "logs.jsonl").fetch(sim.snapshot.window).logs
    assert by_line(got) == by_line(logs)
    back = next(r for r in got if r.body == "Xid 79")
    assert back.attributes == {"body": "shadowed", "severity": "x", "source": "kernel"}


def test_simulate_bundle_folder_reads_as_one_source(sim, tmp_path):
    paths = write_bundle(sim, tmp_path / "out")
    assert (paths["readme"]).is_file()
    fc = FileConnector(tmp_path / "out")
    snap = fc.fetch(sim.snapshot.window)
    assert_same_frame(snap.metrics, sim.snapshot.metrics)
    assert by_id(snap.spans) == by_id(sim.snapshot.spans)
    assert by_line(snap.logs) == by_line(sim.snapshot.logs)  # logs.otlp.json + logs.jsonl: each once
    assert any(r.relation == "member_of" for r in snap.inventory.relations)
    h = fc.check()
    assert h.status == "ok" and f"{len(sim.snapshot.spans)} spans" in h.detail
    case = FileConnector(paths["case"]).fetch(sim.snapshot.window)
    assert_same_frame(case.metrics, read_case(paths["case"]).snapshot.metrics)
    assert len(case.spans) == len(sim.snapshot.spans)


def test_fetch_slices_the_window_and_filters_by_selector(sim, tmp_path):
    write_bundle(sim, tmp_path)
    w = sim.snapshot.window
    part = Window(w.start + 150, w.start + 300, w.step)
    snap = FileConnector(tmp_path).fetch(part)
    assert snap.metrics.timestamps.min() >= part.start and snap.metrics.timestamps.max() <= part.end
    lo, hi = part.start * 10**9, (part.end + 1) * 10**9
    assert all(lo <= s.start_ns < hi for s in snap.spans)
    assert len(snap.logs) == sum(lo <= r.ts_ns < hi for r in sim.snapshot.logs)
    hist = FileConnector(tmp_path).fetch(w, 'vllm:e2e_request_latency_seconds_bucket{le=~"1\\\\.0|\\\\+Inf"}')
    assert len(hist.metrics) > 0 and {k.label("le") for k in hist.metrics.keys} == {"1.0", "+Inf"}
    not_gw = FileConnector(tmp_path).fetch(w, '{pod!~"api-gateway.*"}')
    assert not_gw.metrics.keys and all(not (k.label("pod") or "").startswith("api-gateway")
                                       for k in not_gw.metrics.keys)
    with pytest.raises(BadInput) as ei:
        select(snap.metrics, "up{job=}")
    assert ei.value.field == "selector"


@pytest.fixture
def wide_csv(sim, tmp_path):
    paths = write_bundle(sim, tmp_path / "b")
    return paths["case"] / "metrics.csv"


def _long(frame: MetricFrame, labels_column: bool) -> pd.DataFrame:
    rows = []
    for k, row in zip(frame.keys, frame.values, strict=True):
        for t, v in zip(frame.timestamps, row, strict=True):
            if not np.isnan(v):
                d = {"timestamp": int(t), "metric": k.name, "value": repr(float(v))}
                if labels_column:
                    d["labels"] = "{" + ",".join(f'{a}="{b}"' for a, b in k.labels) + "}"
                else:
                    d.update(k.as_dict())
                rows.append(d)
    return pd.DataFrame(rows)


def test_long_and_wide_csv_are_equal(wide_csv, tmp_path):
    wide = read_metrics(wide_csv)
    assert any(k.label("peer") for k in wide.keys) or len(wide) > 5
    _long(wide, labels_column=False).to_csv(tmp_path / "long.csv", index=False)
    assert_same_frame(read_path(tmp_path / "long.csv").metrics, wide)
    with_labels = _long(wide, labels_column=True)
    with_labels["timestamp"] = pd.to_datetime(with_labels["timestamp"], unit="s", utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")  # RFC 3339 times read the same
    with_labels.to_csv(tmp_path / "long_labels.csv", index=False)
    assert_same_frame(read_path(tmp_path / "long_labels.csv").metrics, wide)
    assert_same_frame(read_path(wide_csv).metrics, wide)


def test_parquet_equals_csv(wide_csv, tmp_path):
    wide = read_metrics(wide_csv)
    pd.read_csv(wide_csv).to_parquet(tmp_path / "wide.parquet")
    assert_same_frame(read_path(tmp_path / "wide.parquet").metrics, wide)
    long = _long(wide, labels_column=False)
    long["value"] = long["value"].astype(float)
    long["timestamp"] = pd.to_datetime(long["timestamp"], unit="s", utc=True)  # a timestamp type
    long.to_parquet(tmp_path / "long.parquet")
    assert_same_frame(read_path(tmp_path / "long.parquet").metrics, wide)


# ------------------------------------------------------------------ malformed input
def bad(path: Path, text: str) -> BadInput:
    path.write_text(text)
    with pytest.raises(BadInput) as ei:
        read_path(path)
    assert path.name in str(ei.value)
    assert ei.value.fix
    return ei.value


def test_malformed_long_csv(tmp_path):
    e = bad(tmp_path / "a.csv", "timestamp,metric,value,pod\n1704067200,up,1,p\n1704067215,up,high,p\n")
    assert e.field == "value" and "line 3" in str(e) and "'high'" in str(e)
    e = bad(tmp_path / "b.csv", "timestamp,metric,value,labels\n1704067200,up,1,{pod=p}\n")
    assert e.field == "labels"
    e = bad(tmp_path / "c.csv", "timestamp,metric,value\n1704067200000,up,1\n")
    assert e.field == "timestamp" and "1000" in e.fix
    e = bad(tmp_path / "d.csv", "timestamp,metric,value\nyesterday,up,1\n")
    assert e.field == "timestamp" and "line 2" in str(e)
    e = bad(tmp_path / "e.csv", "when,what\n1,2\n")
    assert "layout" in str(e) and "timestamp,metric,value" in e.fix
    e = bad(tmp_path / "f.csv", "time,svc_latency\n1704067200,fast\n")
    assert e.field == "svc_latency"
    e = bad(tmp_path / "g.csv", "timestamp,metric,value\n1704067200,,1\n")
    assert e.field == "metric"


def test_malformed_exposition(tmp_path):
    e = bad(tmp_path / "a.om", "# TYPE up gauge\nup{job=\"a\"} 1\n# EOF\n")
    assert e.field == "timestamp" and "line 2" in str(e)
    e = bad(tmp_path / "b.prom", "up 1 1704067200000\n}}} what\n")
    assert "line 2" in str(e)
    e = bad(tmp_path / "c.prom", 'up{job=a} 1 1704067200000\n')
    assert "line 1" in str(e) and "label" in str(e)
    e = bad(tmp_path / "d.om", "up 1 1704067200000\n# EOF\n")
    assert e.field == "timestamp" and "OpenMetrics" in str(e)


def test_malformed_json(tmp_path):
    e = bad(tmp_path / "a.jsonl", '{"ts_ns": 1, "entity": "pod:a", "body": "x"}\n{"ts_ns": 2, "body": \n')
    assert e.field == "line 2"
    e = bad(tmp_path / "b.json", '{"resourceMetrics": []}\n')
    assert "resourceSpans" in str(e)
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x",
            "startTimeUnixNano": "soon", "endTimeUnixNano": "2"}
    e = bad(tmp_path / "c.json", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    assert "malformed" in str(e) and e.field == "line 1"
    e = bad(tmp_path / "d.json", '{"resourceSpans": [}')
    assert "invalid JSON" in str(e)


def test_bad_paths(tmp_path):
    with pytest.raises(NotFound):
        read_path(tmp_path / "missing.om")
    bad(tmp_path / "x.xlsx", "?")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("Simulated telemetry: scenario x\n")
    with pytest.raises(BadInput, match="no telemetry files"):
        read_path(tmp_path / "empty")
    h = FileConnector(tmp_path / "missing.om").check()
    assert h.status == "down" and "missing.om" in h.detail


def test_connector_rereads_a_changed_file(tmp_path):
    p = tmp_path / "m.prom"
    p.write_text("up 1 1704067200000\n")
    fc = FileConnector(p)
    w = Window(1704067200, 1704067300, 15)
    assert fc.fetch(w).metrics.values.tolist() == [[1.0]]
    p.write_text("up 2 1704067200000\nup 3 1704067215000\n")
    assert fc.fetch(w).metrics.values.tolist() == [[2.0, 3.0]]


def test_long_csv_special_values_and_labels_column(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text('time,name,labels,value\n1704067200,up,"{a=""x,y"",b=""2""}",1\n'
                 '1704067215,up,"{a=""x,y"",b=""2""}",+Inf\n1704067215,up,{},NaN\n1704067230,up,,\n')
    f = read_path(p).metrics
    assert f.timestamps.tolist() == [1704067200, 1704067215, 1704067230]
    assert f.row(SeriesKey.of("up", a="x,y", b="2")).tolist()[:2] == [1.0, float("inf")]
    assert np.isnan(f.row(SeriesKey("up"))).all()
