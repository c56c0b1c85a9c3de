"""JSON shapes of the core types: RFC 3339 times, entity strings, NaN -> null, exact round trips."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.errors import BadInput
from rca.serialize import (
    feedback_from_jsonable,
    incident_from_jsonable,
    parse_rfc3339,
    rfc3339,
    to_jsonable,
)
from rca.types import Anomaly, Evidence, Feedback, Health, Hypothesis, Incident, SeriesKey, Symptom, Window

T0 = 1795204320  # 2026-11-20T19:52:00Z


def test_rfc3339_both_ways():
    assert rfc3339(T0) == "2026-11-20T19:52:00Z"
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert parse_rfc3339("2026-11-20T19:52:00Z") == T0
    assert parse_rfc3339("2026-11-20T20:52:00+01:00") == T0
    assert parse_rfc3339("2026-11-20T19:52:00.999Z") == T0  # fractions dropped
    assert parse_rfc3339("2026-11-20T19:52:00") == T0  # no offset = UTC
    assert parse_rfc3339(T0) == T0


@pytest.mark.parametrize("bad", ["", "yesterday-ish", "2026-13-01T00:00:00Z", None, True])
def test_parse_rfc3339_rejects_garbage_with_field(bad):
    with pytest.raises(BadInput) as e:
        parse_rfc3339(bad, field="window.start")
    assert e.value.field == "window.start" and e.value.fix


def test_shapes_of_every_type():
    key = SeriesKey.of("http_server_duration_seconds", service="checkout", le="0.5")
    assert to_jsonable(key) == {"name": "http_server_duration_seconds",
                                "labels": {"le": "0.5", "service": "checkout"},
                                "text": 'http_server_duration_seconds{le="0.5",service="checkout"}'}
    assert to_jsonable(Window(T0, T0 + 60, 15)) == {"start": "2026-11-20T19:52:00Z",
                                                   "end": "2026-11-20T19:53:00Z", "step": 15}
    a = to_jsonable(Anomaly("service:checkout", key, "latency", T0, T0 + 30, 7.5, "up", "robust_z"))
    assert a["onset"] == "2026-11-20T19:52:00Z" and a["peak"] == "2026-11-20T19:52:30Z"
    assert a["baseline"] is None and a["observed"] is None  # NaN -> null
    assert a["entity"] == "service:checkout" and a["series"]["name"] == key.name
    assert to_jsonable(Health("prom", "down", "refused")) == {"name": "prom", "status": "down",
                                                               "detail": "refused", "latency_s": None}
    fb = to_jsonable(Feedback("inc-1", "confirm", 1, at=T0))
    assert fb["at"] == "2026-11-20T19:52:00Z" and fb["hypothesis_rank"] == 1
    inc = to_jsonable(_incident())
    assert inc["created_at"] == "2026-11-20T19:52:00Z"
    assert inc["hypotheses"][0]["path"] == ["service:db", "service:checkout"]
    assert inc["hypotheses"][0]["evidence"][0]["ref"] == {"series": "x", "start": T0, "end": T0 + 60}
    json.dumps(inc, allow_nan=False)  # strictly valid JSON


def test_generic_values_and_unknown_types():
    import numpy as np

    assert to_jsonable({"a": (1, float("nan"), np.float64(2.5), np.int64(3)), "b": np.array([1.0, np.inf])}) == \
        {"a": [1, None, 2.5, 3], "b": [1.0, None]}
    with pytest.raises(TypeError):
        to_jsonable(object())


def _incident(**kw) -> Incident:
    ev = Evidence("metric", "service:db", "p99 up 8x", {"series": "x", "start": T0, "end": T0 + 60},
                  "anomalous", 8.0)
    h = Hypothesis("service:db", "resource_cpu", 3.2, 0.8, ("service:db", "service:checkout"), (ev,),
                   checked=("cpu",), no_data=("logs",), unknown=("gpu",))
    base = dict(id="inc-0123456789ab", question="why was p99 slow at 20:00?", window=Window(T0, T0 + 3600, 15),
                symptom=Symptom("service:checkout", "latency_p99", SeriesKey.of("lat", service="checkout"),
                                0.2, 1.6, "s"),
                hypotheses=(h,), params={"k": 3, "nested": {"x": [1, 2]}}, checked=("a",), no_data=("b",),
                summary="db is slow", created_at=T0)
    base.update(kw)
    return Incident(**base)


def test_incident_round_trip_examples():
    for inc in (_incident(), _incident(symptom=None, hypotheses=(), question=None, params={}),
                _incident(symptom=Symptom("service:x", "errors"))):
        d = json.loads(json.dumps(to_jsonable(inc)))
        assert incident_from_jsonable(d) == inc


def test_incident_round_trip_with_nan_scores_is_equal_as_json():
    h = Hypothesis("service:a", "", float("nan"), float("nan"))
    inc = _incident(hypotheses=(h,))
    back = incident_from_jsonable(json.loads(json.dumps(to_jsonable(inc))))
    assert math.isnan(back.hypotheses[0].score) and math.isnan(back.hypotheses[0].confidence)
    assert to_jsonable(back) == to_jsonable(inc)


def test_bad_incident_names_the_field():
    d = to_jsonable(_incident())
    del d["window"]
    with pytest.raises(BadInput) as e:
        incident_from_jsonable(d)
    assert e.value.field == "incident.window"
    d = to_jsonable(_incident())
    d["window"]["start"] = "noon"
    with pytest.raises(BadInput) as e:
        incident_from_jsonable(d)
    assert e.value.field == "window.start"
    with pytest.raises(BadInput):
        feedback_from_jsonable({"incident_id": "x", "verdict": "maybe"})


# ---- property-based round trips ---------------------------------------------------------------

times = st.integers(min_value=0, max_value=4_102_444_800)  # 1970 .. 2100
text = st.text(max_size=20)
entities = st.builds(lambda k, n: f"{k}:{n}", st.sampled_from(["service", "pod", "gpu", "model"]),
                     st.text(min_size=1, max_size=12))
finite = st.floats(allow_nan=False, allow_infinity=False)
maybe_nan = st.one_of(finite, st.just(float("nan")))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, text)
json_val = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                      st.dictionaries(text, c, max_size=3)), max_leaves=8)
series = st.builds(SeriesKey.of, st.text(min_size=1, max_size=10), st.dictionaries(text, text, max_size=3))
evidence = st.builds(Evidence, st.sampled_from(["metric", "log", "trace"]), entities, text,
                     st.dictionaries(text, json_val, max_size=3), st.sampled_from(["ok", "anomalous", "no_data"]),
                     finite)
strs = st.lists(text, max_size=3).map(tuple)
hypothesis_st = st.builds(Hypothesis, entities, text, finite, finite, st.lists(entities, max_size=3).map(tuple),
                          st.lists(evidence, max_size=2).map(tuple), strs, strs, strs)
window = st.tuples(times, st.integers(0, 10**6), st.integers(1, 3600)).map(lambda t: Window(t[0], t[0] + t[1], t[2]))
symptom = st.one_of(st.none(), st.builds(Symptom, entities, text, st.one_of(st.none(), series), finite, finite, text))
incident_st = st.builds(Incident, text, st.one_of(st.none(), text), window, symptom,
                        st.lists(hypothesis_st, max_size=3).map(tuple), st.dictionaries(text, json_val, max_size=3),
                        strs, strs, text, times)
feedback_st = st.builds(Feedback, text, st.sampled_from(["confirm", "reject", "correct"]),
                        st.one_of(st.none(), st.integers(1, 50)), st.one_of(st.none(), entities),
                        st.one_of(st.none(), text), text, text, times)


@settings(max_examples=150, deadline=None)
@given(incident_st)
def test_incident_round_trips_exactly(inc):
    d = json.loads(json.dumps(to_jsonable(inc), allow_nan=False))
    assert incident_from_jsonable(d) == inc


@settings(max_examples=150, deadline=None)
@given(feedback_st)
def test_feedback_round_trips_exactly(fb):
    d = json.loads(json.dumps(to_jsonable(fb), allow_nan=False))
    assert feedback_from_jsonable(d) == fb


@given(times)
def test_rfc3339_round_trips(t):
    assert parse_rfc3339(rfc3339(t)) == t


@given(maybe_nan)
def test_nan_becomes_null(x):
    out = to_jsonable(Evidence("metric", "service:a", "", {}, "ok", x))["score"]
    assert out is None if math.isnan(x) else out == x
