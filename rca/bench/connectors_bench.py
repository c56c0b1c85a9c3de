"""Connector benchmarks: how long ``PrometheusConnector.fetch`` takes for a realistic window.

``run_fetch_bench(tmpdir)`` builds :func:`bench_frame` (1,000 series x 1 day at 30 s =
2,881 points each: gauges, counters and a histogram, under ``vllm:``/``DCGM_`` names),
backfills it into a fresh local Prometheus 2.42 (``rca.bench.promserver``), times
:func:`bench_fetch` and stops the server. Target: fetch <= 5 s on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from connectors.prometheus import PrometheusConnector
from rca.bench.promserver import backfill_prometheus, start_prometheus
from rca.types import MetricFrame, SeriesKey, Window

__all__ = ["BENCH_END", "FETCH_TARGET_S", "bench_fetch", "bench_frame", "run_fetch_bench"]

BENCH_END = 1795190400  # 2026-11-20T16:00:00Z: fixed, so runs compare; far from any head block
FETCH_TARGET_S = 5.0
_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:num_requests_running", "DCGM_FI_DEV_GPU_UTIL",
           "DCGM_FI_DEV_FB_USED", "container_memory_working_set_bytes")
_COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total", "http_requests_total",
             "container_cpu_usage_seconds_total")
_BUCKETS = ("0.1", "0.5", "1", "5", "+Inf")


def bench_window(days: float = 1, step: int = 30, end: int = BENCH_END) -> Window:
    return Window(end - int(days * 86400), end, step)


def bench_frame(n_series: int = 1000, days: float = 1, step: int = 30, end: int = BENCH_END,
                seed: int = 0) -> MetricFrame:
    """``n_series`` raw series over :func:`bench_window`: one histogram of 5 buckets per 25 series,
    the rest spread over gauge and counter names, ``pod`` labels ``pod-<i>``."""
    rng = np.random.default_rng(seed)
    ts = bench_window(days, step, end).timestamps()
    keys: list[SeriesKey] = []
    rows: list[np.ndarray] = []
    i = 0
    while len(keys) < n_series:
        pod = f"pod-{i:04d}"
        kind = i % 10
        if kind == 0 and len(keys) + len(_BUCKETS) <= n_series:
            obs = np.cumsum(rng.poisson(20, (len(ts), len(_BUCKETS))), axis=1)
            cum = np.cumsum(obs, axis=0).astype(float)
            for j, le in enumerate(_BUCKETS):
                keys.append(SeriesKey.of("vllm:e2e_request_latency_seconds_bucket", pod=pod, le=le))
                rows.append(cum[:, j])
        elif kind % 2:
            keys.append(SeriesKey.of(_GAUGES[i % len(_GAUGES)], pod=pod, job="bench"))
            rows.append(np.round(rng.normal(50, 5, len(ts)), 3))
        else:
            keys.append(SeriesKey.of(_COUNTERS[i % len(_COUNTERS)], pod=pod, job="bench"))
            rows.append(np.cumsum(rng.poisson(30, len(ts))).astype(float))
        i += 1
    return MetricFrame(tuple(keys[:n_series]), ts, np.vstack(rows[:n_series]))


def bench_fetch(url: str, n_series: int = 1000, days: float = 1, step: int = 30, end: int = BENCH_END,
                repeats: int = 3) -> dict[str, Any]:
    """Time ``fetch`` of :func:`bench_window` from ``url``, which must hold :func:`bench_frame`
    (same arguments). Returns seconds (best and all runs), series and points fetched."""
    window = bench_window(days, step, end)
    conn = PrometheusConnector(url, timeout_s=60.0)
    runs, snap = [], None
    try:
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            snap = conn.fetch(window)
            runs.append(time.perf_counter() - t0)
    finally:
        conn.close()
    assert snap is not None
    got = len(snap.metrics)
    return {"fetch_s": round(min(runs), 3), "fetch_runs_s": [round(r, 3) for r in runs],
            "series": got, "series_expected": n_series, "points_per_series": len(window.timestamps()),
            "samples": int(np.count_nonzero(~np.isnan(snap.metrics.values))),
            "target_s": FETCH_TARGET_S, "within_target": min(runs) <= FETCH_TARGET_S and got == n_series}


def run_fetch_bench(tmpdir: str | Path, n_series: int = 1000, days: float = 1, step: int = 30) -> dict[str, Any]:
    """Backfill :func:`bench_frame` into a fresh Prometheus under ``tmpdir``, time the fetch,
    stop the server. Adds backfill and start-up seconds to :func:`bench_fetch`'s result."""
    tmp = Path(tmpdir)
    frame = bench_frame(n_series, days, step)
    t0 = time.perf_counter()
    timings = backfill_prometheus(frame, tmp / "prom-data")
    t1 = time.perf_counter()
    with start_prometheus(tmp / "prom-data") as server:
        t2 = time.perf_counter()
        out = bench_fetch(server.url, n_series, days, step)
    out.update(backfill_s=round(t1 - t0, 3), openmetrics_mb=round(timings["openmetrics_mb"], 1),
               start_s=round(t2 - t1, 3), server="prometheus 2.42")
    return out
