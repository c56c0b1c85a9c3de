"""Signal derivation: histogram_quantile semantics, counter rates/resets, ratios, changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.signals import derive, histogram_quantile
from rca.types import MetricFrame, SeriesKey

B = np.array([0.1, 0.5, 1.0, np.inf])


def hq(q, counts, bounds=B):
    return float(histogram_quantile(q, np.asarray(bounds, float), np.asarray(counts, float)[:, None])[0])


def test_histogram_quantile_interpolates_like_prometheus():
    assert hq(0.5, [2, 6, 9, 10]) == pytest.approx(0.4)
    assert hq(0.1, [2, 6, 9, 10]) == pytest.approx(0.05)  # first bucket: lower bound 0


def test_histogram_quantile_inf_bucket_clamps_to_second_highest_bound():
    assert hq(0.99, [2, 6, 9, 10]) == 1.0
    assert hq(0.95, [0, 0, 0, 10]) == 1.0


def test_histogram_quantile_empty_and_malformed():
    assert math.isnan(hq(0.5, [0, 0, 0, 0]))  # no observations
    assert math.isnan(hq(0.5, [1, 2, 3], [0.1, 0.5, 1.0]))  # no +Inf bucket
    assert math.isnan(hq(0.5, [3], [np.inf]))  # fewer than 2 buckets
    assert hq(-0.1, [2, 6, 9, 10]) == -np.inf
    assert hq(1.1, [2, 6, 9, 10]) == np.inf
    assert math.isnan(hq(float("nan"), [2, 6, 9, 10]))


def test_histogram_quantile_forces_monotonic_counts():
    # a scrape-skewed bucket (6 then 5) is repaired, as Prometheus does
    assert hq(0.5, [2, 6, 5, 10]) == hq(0.5, [2, 6, 6, 10])


def test_histogram_quantile_non_positive_first_bound():
    assert hq(0.1, [5, 6, 9, 10], [-1.0, 0.5, 1.0, np.inf]) == -1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=4, max_size=4), st.floats(0, 1))
def test_histogram_quantile_bounded_and_monotone_in_q(incs, q):
    counts = np.cumsum(incs).astype(float)
    v = hq(q, counts)
    if counts[-1] == 0:
        assert math.isnan(v)
        return
    assert 0.0 <= v <= 1.0
    assert hq(min(1.0, q + 0.1), counts) >= v - 1e-12


def _frame(rows: dict[SeriesKey, list[float]], step: int = 15) -> MetricFrame:
    keys = tuple(rows)
    n = len(next(iter(rows.values())))
    return MetricFrame(keys, np.arange(n, dtype=np.int64) * step, np.array([rows[k] for k in keys], float))


def _row(sig, name, stat):
    for i, k in enumerate(sig.frame.keys):
        if k.name == name and k.label("stat") == stat:
            return sig.frame.values[i]
    raise KeyError((name, stat))


def test_counter_rate_handles_resets():
    c = [0, 15, 30, 45, 60, 5, 20, 35, 50]  # 1/s, reset after 60
    sig = derive(_frame({SeriesKey.of("x_total", job="a"): c}), rate_window_s=15)
    r = _row(sig, "x_total", "rate")
    assert np.isnan(r[0])
    np.testing.assert_allclose(r[1:], [1, 1, 1, 1, 5 / 15, 1, 1, 1])


def test_status_codes_give_error_ratio_and_shares():
    ok = np.arange(10) * 90.0
    bad = np.arange(10) * 10.0
    sig = derive(_frame({SeriesKey.of("http_requests_total", job="a", code="200"): ok,
                         SeriesKey.of("http_requests_total", job="a", code="500"): bad}), rate_window_s=15)
    np.testing.assert_allclose(_row(sig, "http_requests_total", "error_ratio")[1:], 0.1)
    np.testing.assert_allclose(_row(sig, "http_requests_total", "rate")[1:], 100 / 15)
    np.testing.assert_allclose(_row(sig, "http_requests_total", "ratio:code=200")[1:], 0.9)
    assert all(e == "service:a" for e in sig.entities)


def test_histogram_family_gives_quantiles_mean_and_rate():
    t = np.arange(6)
    rows = {SeriesKey.of("lat_seconds_bucket", job="a", le=le): list(t * n)
            for le, n in (("0.1", 2), ("0.5", 6), ("1.0", 9), ("+Inf", 10))}
    rows[SeriesKey.of("lat_seconds_count", job="a")] = list(t * 10.0)
    rows[SeriesKey.of("lat_seconds_sum", job="a")] = list(t * 4.0)
    sig = derive(_frame(rows), rate_window_s=15)
    np.testing.assert_allclose(_row(sig, "lat_seconds", "p50")[1:], 0.4)
    np.testing.assert_allclose(_row(sig, "lat_seconds", "mean")[1:], 0.4)
    np.testing.assert_allclose(_row(sig, "lat_seconds", "rate")[1:], 10 / 15)
    assert not any(k.label("le") for k in sig.frame.keys)


def test_info_series_appearing_is_a_change_and_gauges_pass_through():
    nan = float("nan")
    sig = derive(_frame({SeriesKey.of("app_build_info", job="a", version="2"): [nan, nan, 1, 1],
                         SeriesKey.of("app_build_info", job="a", version="1"): [1, 1, nan, nan],
                         SeriesKey.of("kv_usage", pod="p"): [0.1, 0.2, 0.3, 0.4]}))
    assert [(c.entity, c.at) for c in sig.changes] == [("service:a", 30)]
    np.testing.assert_allclose(_row(sig, "kv_usage", "value"), [0.1, 0.2, 0.3, 0.4])
    assert "pod:p" in sig.entities


def test_derive_on_empty_frame():
    sig = derive(MetricFrame.empty(np.arange(5)))
    assert len(sig.frame) == 0 and sig.entities == ()
