"""promtool (Prometheus 2.42) backfills what write_openmetrics writes, sample for sample."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rca.emit import write_openmetrics
from rca.errors import NotFound
from rca.types import MetricFrame, SeriesKey

T0 = 1795190400  # 2026-11-20T16:00:00Z, as the simulator's timeline
K = SeriesKey.of


def _frame() -> MetricFrame:
    """Gauges with gaps and +-Inf, counters, a histogram, colon names, hostile label values."""
    rng = np.random.default_rng(1)
    n = 600  # 2.5 h at 15 s: crosses a 2 h block boundary
    ts = np.arange(T0, T0 + 15 * n, 15)
    gauge = rng.uniform(0, 1, n)
    gauge[[3, 10, 11]] = np.nan
    gauge[20], gauge[21] = np.inf, -np.inf
    cum = np.cumsum(np.cumsum(rng.poisson(5, (n, 3)), axis=1), axis=0).astype(float)
    keys = [K("vllm:kv_cache_usage_perc", pod="vllm-0", note='a"b\\c\nd'),
            K("http_requests_total", pod="gw-0", code="200"), K("http_requests_total", pod="gw-0", code="500"),
            *(K("vllm:e2e_request_latency_seconds_bucket", pod="vllm-0", le=le) for le in ("0.5", "1.0", "+Inf")),
            K("vllm:e2e_request_latency_seconds_count", pod="vllm-0"),
            K("vllm:e2e_request_latency_seconds_sum", pod="vllm-0")]
    rows = [gauge, np.cumsum(rng.poisson(600, n)), np.cumsum(rng.poisson(3, n)), *cum.T, cum[:, -1],
            np.cumsum(rng.uniform(1, 9, n))]
    return MetricFrame(tuple(keys), ts, np.vstack(rows).astype(float))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not on PATH but CI=true: install it (Debian: apt-get install prometheus)")
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


_DUMP = re.compile(r"^\{(.*)\}$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(v: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def _backfill(promtool: str, frame: MetricFrame, tmp: Path,
              match: str | None = None) -> tuple[Path, dict[SeriesKey, dict[int, float]]]:
    """Backfill ``frame`` with promtool, then dump the blocks (the series ``match`` selects)."""
    om, blocks = tmp / "metrics.om", tmp / "blocks"
    write_openmetrics(frame, om)
    r = _run(promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(blocks))
    assert r.returncode == 0, r.stderr + r.stdout
    metas = list(blocks.glob("*/meta.json"))
    assert metas, f"no block written: {list(blocks.iterdir())}"
    (blocks / "wal").mkdir(exist_ok=True)  # `tsdb dump` opens the dir as a DB and wants a WAL
    r = _run(promtool, "tsdb", "dump", str(blocks), *([f"--match={match}"] if match else []))
    assert r.returncode == 0, r.stderr
    by_prefix: dict[str, list[tuple[str, str]]] = {}
    for line in r.stdout.splitlines():
        prefix, value, ts = line.rsplit(" ", 2)
        by_prefix.setdefault(prefix, []).append((value, ts))
    got: dict[SeriesKey, dict[int, float]] = {}
    for prefix, points in by_prefix.items():
        m = _DUMP.match(prefix)
        assert m, prefix
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(1))}
        key = SeriesKey.of(labels.pop("__name__"), labels)
        got[key] = {int(t): float(v) for v, t in points}
    return blocks, got


def _assert_same(frame: MetricFrame, got: dict[SeriesKey, dict[int, float]]) -> None:
    assert set(got) == set(frame.keys)
    for key, row in zip(frame.keys, frame.values, strict=True):
        ok = ~np.isnan(row)
        assert sorted(got[key]) == (frame.timestamps[ok] * 1000).tolist(), key  # seconds -> ms
        assert [got[key][t] for t in sorted(got[key])] == row[ok].tolist(), key


def test_promtool_backfills_every_sample(promtool, tmp_path):
    frame = _frame()
    blocks, got = _backfill(promtool, frame, tmp_path)
    _assert_same(frame, got)
    metas = [json.loads(p.read_text()) for p in blocks.glob("*/meta.json")]
    assert len(metas) == 2  # 2.5 h of data in 2 h blocks
    assert sum(m["stats"]["numSamples"] for m in metas) == int(np.count_nonzero(~np.isnan(frame.values)))
    assert max(m["stats"]["numSeries"] for m in metas) == len(frame)
    assert min(m["minTime"] for m in metas) == int(frame.timestamps[0]) * 1000
    listing = _run(promtool, "tsdb", "list", str(blocks))
    assert listing.returncode == 0 and str(len(frame)) in listing.stdout


def test_promtool_backfills_simulator_output(promtool, tmp_path):
    sim = pytest.importorskip("rca.sim", reason="the simulator package rca.sim is not importable")
    if not hasattr(sim, "simulate"):
        pytest.skip("rca.sim does not export simulate() yet (simulator still being written)")
    try:
        frame = sim.simulate("kv_cache_exhaustion", seed=0).snapshot.metrics
    except NotFound as e:
        pytest.skip(f"simulator scenario missing: {e}")
    pod = "vllm-llama-3-70b-0"  # dump one pod's series (vLLM histograms, DCGM, container): dumps are slow
    blocks, got = _backfill(promtool, frame, tmp_path, match=f'{{pod="{pod}"}}')
    _assert_same(frame.select(lambda k: k.label("pod") == pod), got)
    metas = [json.loads(p.read_text()) for p in blocks.glob("*/meta.json")]
    assert sum(m["stats"]["numSamples"] for m in metas) == int(np.count_nonzero(~np.isnan(frame.values)))
    assert max(m["stats"]["numSeries"] for m in metas) == len(frame)
