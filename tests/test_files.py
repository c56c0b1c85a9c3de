"""Case folders -> Snapshot: metrics, inject time, label, logs, traces, dependency graphs, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from connectors.files import Case, column_name, iter_cases, read_case
from rca.errors import BadInput, NotFound
from rca.types import Relation, SeriesKey

NEZHA = Path("/work/shared/data/rca/nezha-onlineboutique")


def write_case(d: Path, metrics: str, inject: str | None = "1000", label: dict | None = None,
               **files: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.csv").write_text(metrics)
    if inject is not None:
        (d / "inject_time.txt").write_text(inject)
    if label is not None:
        (d / "label.json").write_text(json.dumps(label))
    for name, text in files.items():
        (d / name.replace("_csv", ".csv")).write_text(text)
    return d


METRICS = (
    "time,checkout_cpu_usage_rate_pct,cart_latency_p99_s,X1_value,solo\n"
    "1060,1,2,3,4\n"
    "1000,5,,7,8\n"       # out of order, with a gap
    "1120,9,10,11,12\n"
    "1060,13,14,15,16\n"  # duplicate time: this (last) row wins
)


def test_metrics_become_a_frame(tmp_path):
    case = read_case(write_case(tmp_path / "c", METRICS, label={"root_cause_service": "checkout"}))
    assert isinstance(case, Case)
    f = case.snapshot.metrics
    assert f.keys == (SeriesKey.of("cpu_usage_rate_pct", service="checkout"),
                      SeriesKey.of("latency_p99_s", service="cart"),
                      SeriesKey.of("value", service="X1"),
                      SeriesKey.of("value", service="solo"))
    assert [column_name(k) for k in f.keys[:3]] == ["checkout_cpu_usage_rate_pct", "cart_latency_p99_s", "X1_value"]
    assert f.timestamps.tolist() == [1000, 1060, 1120]
    assert f.values[0].tolist() == [5, 13, 9]
    assert math.isnan(f.values[1, 0]) and f.values[1, 1] == 14
    assert f.values.dtype == np.float64 and f.values.flags["C_CONTIGUOUS"]
    w = case.snapshot.window
    assert (w.start, w.end, w.step) == (1000, 1120, 60)
    assert case.inject_time == 1000
    assert case.label == {"root_cause_service": "checkout"}
    assert case.root_causes == ["checkout"]
    assert case.dependency is None
    assert set(case.snapshot.inventory.entities) == {"service:checkout", "service:cart", "service:X1",
                                                     "service:solo"}
    assert case.services == ["X1", "cart", "checkout", "solo"]


def test_optional_files_absent(tmp_path):
    case = read_case(write_case(tmp_path / "c", "time,a_x\n1,2\n", inject=None))
    assert case.inject_time is None and case.label == {} and case.root_causes == []
    assert case.snapshot.spans == () and case.snapshot.logs == ()
    assert case.snapshot.window.step == 1


def test_dependency_csv_in_an_ancestor(tmp_path):
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "dependency.csv").write_text("caller,callee\nfrontend,cart\nfrontend,checkout\n"
                                                     "checkout,cart\n")
    case = read_case(write_case(tmp_path / "sys" / "cart_cpu" / "1", "time,cart_cpu\n1,1\n2,2\n",
                                label={"root_cause_service": "cart"}))
    assert case.dependency == [("frontend", "cart"), ("frontend", "checkout"), ("checkout", "cart")]
    rels = case.snapshot.inventory.relations
    assert Relation("service:frontend", "calls", "service:cart") in rels
    assert Relation("service:checkout", "calls", "service:cart") in rels
    assert "service:frontend" in case.snapshot.inventory.entities  # from the graph, no metrics


def test_graph_csv_effect_depends_on_cause(tmp_path):
    (tmp_path / "graph.csv").write_text("cause,effect,weight\nX2,X1,0.7\nX3,X2,-1.0\n")
    case = read_case(write_case(tmp_path / "a" / "b" / "c", "time,X1_value,X2_value,X3_value\n1,1,2,3\n"))
    assert case.dependency == [("X1", "X2"), ("X2", "X3")]
    assert Relation("service:X1", "calls", "service:X2") in case.snapshot.inventory.relations


def test_graph_more_than_three_levels_up_is_ignored(tmp_path):
    (tmp_path / "graph.csv").write_text("cause,effect\nX2,X1\n")
    case = read_case(write_case(tmp_path / "a" / "b" / "c" / "d", "time,X1_value\n1,1\n"))
    assert case.dependency is None


def test_logs_and_traces(tmp_path):
    logs = ("timestamp,service,level,message,pod,traceID\n"
            "1000000000000,cart,error,boom,cart-7d-x,ABCDEF\n"
            "1000000000001,cart,,plain line,,\n")
    traces = ("traceID,spanID,parentSpanID,serviceName,operationName,startTime,duration,statusCode,pod\n"
              "00ab,0001,,frontend,GET /,1000000,2500,,fe-1\n"
              "00ab,0002,0001,cart,GetCart,1000100,1000,STATUS_CODE_ERROR,cart-1\n"
              "00ab,0003,0001,cart,GetCart,1000200,1000,503,\n"
              "00ab,0004,0001,cart,GetCart,1000300,1000,200,\n"
              "00ab,0005,0001,cart,GetCart,1000400,1000,2,\n"
              "00ab,0006,0001,cart,GetCart,1000500,1000,STATUS_CODE_OK,\n")
    case = read_case(write_case(tmp_path / "c", "time,cart_cpu\n1,1\n", logs_csv=logs, traces_csv=traces))
    l0, l1 = case.snapshot.logs
    assert (l0.ts_ns, l0.entity, l0.severity, l0.body, l0.trace_id) == (1000000000000, "service:cart", "ERROR",
                                                                        "boom", "abcdef")
    assert l0.attributes == {"pod": "cart-7d-x"}
    assert l1.severity == "" and l1.trace_id is None
    spans = case.snapshot.spans
    s0 = spans[0]
    assert (s0.trace_id, s0.span_id, s0.parent, s0.service, s0.name) == ("00ab", "0001", None, "frontend", "GET /")
    assert (s0.start_ns, s0.end_ns, s0.status) == (1_000_000_000, 1_002_500_000, "unset")
    assert s0.resource == {"service.name": "frontend", "k8s.pod.name": "fe-1"}
    assert spans[1].parent == "0001"
    assert [s.status for s in spans[1:]] == ["error", "error", "ok", "error", "ok"]
    assert spans[2].resource == {"service.name": "cart"}
    inv = case.snapshot.inventory
    assert Relation("pod:fe-1", "member_of", "service:frontend") in inv.relations
    assert "service:frontend" in inv.entities


@pytest.mark.parametrize(("setup", "exc", "field"), [
    (lambda d: None, NotFound, "path"),
    (lambda d: d.mkdir(), NotFound, "metrics.csv"),
    (lambda d: write_case(d, ""), BadInput, "metrics.csv"),
    (lambda d: write_case(d, "t,a_b\n1,2\n"), BadInput, "time"),
    (lambda d: write_case(d, "time,a_b\nnoon,2\n"), BadInput, "time"),
    (lambda d: write_case(d, "time,a_b\n1,high\n"), BadInput, "a_b"),
    (lambda d: write_case(d, "time,a_b\n"), BadInput, "metrics.csv"),
    (lambda d: write_case(d, "time,a_b\n1,2\n", inject="soon"), BadInput, "inject_time"),
    (lambda d: write_case(d, "time,a_b\n1,2\n", inject=""), BadInput, "inject_time"),
    (lambda d: (write_case(d, "time,a_b\n1,2\n"), (d / "label.json").write_text("{oops")), BadInput, "label.json"),
    (lambda d: write_case(d, "time,a_b\n1,2\n", logs_csv="timestamp,msg\n1,x\n"), BadInput, "logs.csv"),
    (lambda d: write_case(d, "time,a_b\n1,2\n", traces_csv="traceID,spanID,parentSpanID,serviceName,operationName,"
                          "startTime,duration,statusCode\na,b,,s,o,later,1,\n"), BadInput, "startTime"),
])
def test_bad_input_names_the_field(tmp_path, setup, exc, field):
    d = tmp_path / "case"
    setup(d)
    with pytest.raises(exc) as e:
        read_case(d)
    assert e.value.field == field and e.value.fix


def test_a_file_is_not_a_case(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput):
        read_case(tmp_path / "f")


def test_iter_cases(tmp_path):
    for p in ("s/b_fault/1", "s/a_fault/2", "s/a_fault/1"):
        write_case(tmp_path / p, "time,a_b\n1,2\n", label={"root_cause_service": "a"})
    write_case(tmp_path / "s" / "normal" / "day", "time,a_b\n1,2\n")  # no label: not a case
    assert [str(p.relative_to(tmp_path)) for p in iter_cases(tmp_path)] == ["s/a_fault/1", "s/a_fault/2",
                                                                            "s/b_fault/1"]
    assert iter_cases(tmp_path / "s" / "a_fault" / "1") == [tmp_path / "s" / "a_fault" / "1"]
    assert iter_cases(tmp_path / "s" / "normal") == []
    with pytest.raises(NotFound):
        iter_cases(tmp_path / "missing")


@pytest.mark.skipif(not NEZHA.is_dir(), reason="shared Nezha data not present at /work/shared/data/rca")
def test_reads_nezha_onlineboutique():
    cases = iter_cases(NEZHA)
    assert len(cases) == 24 and all("normal" not in p.parts for p in cases)
    case = read_case(NEZHA / "frontend_cpu_contention" / "1")
    assert case.inject_time == 1661140434 and case.label["root_cause_service"] == "frontend"
    assert len(case.snapshot.metrics) == 223
    assert SeriesKey.of("cpu_usage_rate_pct", service="frontend") in case.snapshot.metrics.keys
    assert case.snapshot.window.step == 60
    assert len(case.services) == 10 and case.dependency
    assert Relation("service:checkoutservice", "calls", "service:cartservice") in case.snapshot.inventory.relations
