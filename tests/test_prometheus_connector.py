"""PrometheusConnector against real Prometheus 2.42 and VictoriaMetrics 1.79, and its failure
modes against httpx.MockTransport and dead sockets."""

from __future__ import annotations

import base64
import functools
import json
import socket
import threading

import httpx
import numpy as np
import pytest
from promservers import SERVER_KINDS, serve_frames

from connectors.inventory import inventory_from_labels
from connectors.prometheus import PrometheusConnector, canonical_name, spellings
from rca.bench.promserver import free_port
from rca.errors import SourceError, SourceTimeout
from rca.types import MetricFrame, SeriesKey, Snapshot, Window

K = SeriesKey.of
SIM_START = 1795188000
T_RT = SIM_START - 5 * 86400      # round-trip frame: 2.5 h, 15 s
T_LONG = SIM_START - 9 * 86400    # chunking frame: 12,100 steps of 15 s (> 11,000)
N_RT, N_LONG = 600, 12_100
SCENARIO, SEED = "kv_cache_exhaustion", 0


@functools.cache
def sim_result():
    from rca.sim import simulate

    return simulate(SCENARIO, SEED)


@functools.cache
def roundtrip() -> tuple[MetricFrame, MetricFrame]:
    """(stored frame, what the engine should see): gauges with gaps and +Inf, counters, a
    histogram, colon names, an escaped ``vllm_`` name, an old vLLM name, FB in bytes, a
    percentage that must become a fraction."""
    rng = np.random.default_rng(7)
    n = N_RT
    ts = T_RT + 15 * np.arange(n)
    kv = np.round(rng.uniform(0, 1, n), 6)
    kv[[3, 10, 11]] = np.nan
    kv[100:130] = np.nan
    waiting = rng.poisson(4, n).astype(float)
    waiting[50:60] = np.nan
    old_kv = np.round(rng.uniform(0.2, 0.4, n), 6)
    c200 = np.cumsum(rng.poisson(600, n)).astype(float)
    c500 = np.cumsum(rng.poisson(3, n)).astype(float)
    c500[:40] = np.nan                         # a label child born late
    cum = np.cumsum(np.cumsum(rng.poisson(5, (n, 3)), axis=1), axis=0).astype(float)
    hsum = np.round(np.cumsum(rng.uniform(1, 9, n)), 3)
    fb_mib = np.round(rng.uniform(1000, 70000, n))
    pct = np.round(rng.uniform(10, 95, n), 2)
    inf = rng.normal(size=n)
    inf[20], inf[21] = np.inf, -np.inf
    rt = {"suite": "rt"}
    hist = {"pod": "rt-0", **rt}
    stored = [
        (K("vllm:kv_cache_usage_perc", pod="rt-0", **rt), kv, K("vllm:kv_cache_usage_perc", pod="rt-0", **rt), kv),
        (K("vllm_num_requests_waiting", pod="rt-0", **rt), waiting,
         K("vllm:num_requests_waiting", pod="rt-0", **rt), waiting),
        (K("vllm:gpu_cache_usage_perc", pod="rt-1", **rt), old_kv,
         K("vllm:kv_cache_usage_perc", pod="rt-1", **rt), old_kv),
        (K("http_requests_total", pod="gw-0", code="200", **rt), c200, None, c200),
        (K("http_requests_total", pod="gw-0", code="500", **rt), c500, None, c500),
        *((K("vllm:e2e_request_latency_seconds_bucket", le=le, **hist), cum[:, j], None, cum[:, j])
          for j, le in enumerate(("0.5", "1.0", "+Inf"))),
        (K("vllm:e2e_request_latency_seconds_count", **hist), cum[:, -1], None, cum[:, -1]),
        (K("vllm:e2e_request_latency_seconds_sum", **hist), hsum, None, hsum),
        (K("DCGM_FI_DEV_FB_USED_bytes", gpu="0", Hostname="rt-node", **rt), fb_mib * 2 ** 20,
         K("DCGM_FI_DEV_FB_USED", gpu="0", Hostname="rt-node", **rt), fb_mib),
        (K("sglang:token_usage", pod="rt-2", **rt), pct, None, pct / 100),
        (K("weird_gauge", pod="rt-3", **rt), inf, None, inf),
    ]
    frame = MetricFrame(tuple(s[0] for s in stored), ts, np.vstack([s[1] for s in stored]))
    want_keys = [s[2] or s[0] for s in stored]
    want = MetricFrame(tuple(want_keys), ts, np.vstack([s[3] for s in stored]))
    return frame, want


@functools.cache
def long_frame() -> MetricFrame:
    rng = np.random.default_rng(3)
    ts = T_LONG + 15 * np.arange(N_LONG)
    a = np.round(rng.normal(size=N_LONG), 6)
    a[rng.random(N_LONG) < 0.05] = np.nan
    b = np.cumsum(rng.poisson(2, N_LONG)).astype(float)
    return MetricFrame((K("chunk_probe", series="a", suite="long"), K("chunk_probe_total", series="b", suite="long")),
                       ts, np.vstack([a, b]))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request, tmp_path_factory):
    frames = [roundtrip()[0], long_frame(), sim_result().snapshot.metrics]
    srv = serve_frames(request.param, frames, tmp_path_factory.mktemp(request.param))
    print(f"\n{request.param}: load {srv.timings['load_s']:.1f} s, start {srv.timings['start_s']:.1f} s "
          f"({sum(len(f) for f in frames)} series)")
    yield srv
    srv.stop()


_OPEN: list[PrometheusConnector] = []


@pytest.fixture(autouse=True)
def _close_connectors():
    yield
    while _OPEN:
        _OPEN.pop().close()


def make(url: str, **kw) -> PrometheusConnector:
    """A connector closed after the test (it owns an HTTP client unless one is injected)."""
    c = PrometheusConnector(url, **kw)
    _OPEN.append(c)
    return c


def connector(srv, **kw) -> PrometheusConnector:
    return make(srv.url, flavor=srv.kind, name=srv.kind, **kw)


def assert_frames_equal(got: MetricFrame, want: MetricFrame, rtol: float = 1e-9) -> None:
    assert set(got.keys) == set(want.keys), (set(want.keys) - set(got.keys), set(got.keys) - set(want.keys))
    assert np.array_equal(got.timestamps, want.timestamps)
    idx = {k: i for i, k in enumerate(got.keys)}
    g = got.values[[idx[k] for k in want.keys]]
    w = want.values
    assert np.array_equal(np.isnan(g), np.isnan(w)), "missing samples differ"
    fin = np.isfinite(w)
    assert np.array_equal(g[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)])  # +-Inf kept
    np.testing.assert_allclose(g[fin], w[fin], rtol=rtol, atol=1e-12)


# -- real servers ----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["raw", "range"])
def test_round_trip_names_units_and_gaps(server, mode):
    stored, want = roundtrip()
    window = Window(T_RT, T_RT + 15 * (N_RT - 1), 15)
    snap = connector(server, mode=mode).fetch(window, selector='{suite="rt"}')
    assert_frames_equal(snap.metrics, want)
    assert any("sglang:token_usage" in w and "percentage" in w for w in snap.warnings)
    # a coarser step keeps the last sample of each step
    coarse = connector(server, mode=mode, step=60).fetch(window, selector='{suite="rt",pod="gw-0"}')
    row = coarse.metrics.row(K("http_requests_total", pod="gw-0", code="200", suite="rt"))
    np.testing.assert_array_equal(coarse.metrics.timestamps, np.arange(T_RT, window.end + 1, 60))
    np.testing.assert_allclose(row, stored.row(K("http_requests_total", pod="gw-0", code="200", suite="rt"))[::4])


@pytest.mark.integration
def test_discovery_selector_and_label_values(server):
    c = connector(server)
    window = Window(T_RT, T_RT + 15 * (N_RT - 1), 15)
    names = {s["__name__"] for s in c.series(window, '{suite="rt"}')}
    assert names == {k.name for k in roundtrip()[0].keys}
    assert c.label_values("pod", window, '{suite="rt"}') == ["gw-0", "rt-0", "rt-1", "rt-2", "rt-3"]
    # a canonical name finds the escaped spelling, and the selector's matchers are kept
    snap = c.fetch(window, selector='vllm:num_requests_waiting{suite="rt"}')
    assert snap.metrics.keys == (K("vllm:num_requests_waiting", pod="rt-0", suite="rt"),)
    snap = c.fetch(window, selector='{suite="rt",code="500"}')
    assert snap.metrics.keys == (K("http_requests_total", pod="gw-0", code="500", suite="rt"),)


@pytest.mark.integration
def test_chunking_long_window(server):
    window = Window(T_LONG, T_LONG + 15 * (N_LONG - 1), 15)
    queries = []
    hooks = {"request": [lambda r: queries.append(r.url.path) if r.url.path.startswith("/api/v1/query") else None]}
    with httpx.Client(event_hooks=hooks) as client:
        for mode, max_points, per_name in (("range", 11000, 2), ("raw", 1000, 13)):
            queries.clear()
            snap = connector(server, client=client, mode=mode, max_points_per_request=max_points).fetch(
                window, selector='{suite="long"}')
            assert len(queries) == 2 * per_name, (mode, queries)
            assert_frames_equal(snap.metrics, long_frame())
    if server.kind == "prometheus":  # one request would exceed the 11,000-point limit
        with pytest.raises(SourceError, match="11,000"):
            connector(server, mode="range", max_points_per_request=20_000).fetch(window, '{suite="long"}')


@pytest.mark.integration
def test_empty_window_is_empty_frame(server):
    window = Window(1_600_000_000, 1_600_003_600, 15)
    snap = connector(server).fetch(window)
    assert len(snap.metrics) == 0 and len(snap.metrics.timestamps) == 241
    assert not snap.inventory.entities


@pytest.mark.integration
def test_check_ok_and_down(server):
    h = connector(server).check()
    assert h.status == "ok", h
    assert h.latency_s >= 0
    dead = make(f"http://127.0.0.1:{free_port()}", name="dead").check()
    assert dead.status == "down" and "cannot connect" in dead.detail


@pytest.mark.integration
def test_quantile_pushdown_matches_client_side(server):
    c = connector(server)
    w = sim_result().snapshot.window
    for by in (("model_name",), ("pod",)):
        push = c.query_quantile("vllm:e2e_request_latency_seconds", 0.99, w, by=by)
        local = c.query_quantile("vllm_e2e_request_latency_seconds", 0.99, w, by=by, pushdown=False)
        assert push.keys == local.keys and len(push.keys) == (2 if by == ("model_name",) else 5)
        both = np.isfinite(push.values) & np.isfinite(local.values)
        assert both.sum() >= 0.95 * np.isfinite(local.values).sum() > 0
        np.testing.assert_allclose(push.values[both], local.values[both], rtol=1e-9)
    rate = c.query_rate("vllm:request_success_total", w, by=("model_name",))
    assert len(rate) == 2 and np.nanmin(rate.values) > 0


@pytest.mark.integration
def test_parity_with_embedded_engine(server):
    from rca.ask import parse_question
    from rca.demo import run_demo
    from rca.engine import AnalysisRequest
    from rca.settings import Settings
    from rca.wiring import build_engine

    result = sim_result()
    snap = result.snapshot
    q = parse_question(result.question, now=snap.window.end)
    req = AnalysisRequest(at=q.at, question=q.text, signal=q.signal, statistic=q.statistic, scope=q.scope)
    engine = build_engine(Settings(), [connector(server)])
    remote = engine.analyze(req)
    assert not remote.no_data, remote.no_data
    inv = inventory_from_labels(snap.metrics)
    embedded = engine.analyze(req, snapshot=Snapshot(snap.window, snap.metrics, inventory=inv))
    assert remote.hypotheses[0].root == embedded.hypotheses[0].root
    # the same window the connector fetched: the whole ranking agrees
    base, inc = engine.windows(req, 15)
    w = Window(base.start, inc.end, 15)
    same = engine.analyze(req, snapshot=Snapshot(w, snap.metrics.between(w.start, w.end), inventory=inv))
    assert [h.root for h in remote.hypotheses[:3]] == [h.root for h in same.hypotheses[:3]]
    assert remote.hypotheses[0].score == pytest.approx(same.hypotheses[0].score, rel=1e-5)
    fetched = engine.fetch(w)
    assert fetched.inventory.entities == inventory_from_labels(snap.metrics.between(w.start, w.end)).entities
    demo = run_demo(SCENARIO, SEED)["hypotheses"][0]["root"]
    print(f"\nparity {server.kind}: remote={remote.hypotheses[0].root} embedded={embedded.hypotheses[0].root} "
          f"demo(full)={demo} truth={result.truth.root}")


@pytest.mark.integration
def test_cli_ask_from_the_server_equals_the_embedded_answer(server):
    """`rca ask "..." --source prometheus://host:port` (and victoriametrics://) answers from the
    server exactly as the embedded path does from the same series."""
    import json

    from typer.testing import CliRunner

    from rca.cli import app
    from rca.serialize import rfc3339

    result = sim_result()
    now = rfc3339(result.snapshot.window.end)
    url = server.url.replace("http://", f"{server.kind}://")
    r = CliRunner().invoke(app, ["ask", result.question, "--source", url, "--now", now, "--json"])
    assert r.exit_code == 0, r.output
    remote = json.loads(r.output)
    assert remote["no_data"] == []
    local = CliRunner().invoke(app, ["ask", result.question, "--source", f"sim://{SCENARIO}?seed={SEED}",
                                     "--now", now, "--json"])
    embedded = json.loads(local.output)
    assert remote["interpreted"]["window"] == embedded["interpreted"]["window"]
    assert remote["hypotheses"][0]["root"] == embedded["hypotheses"][0]["root"] == result.truth.root
    assert remote["hypotheses"][0]["category"] == embedded["hypotheses"][0]["category"]


# -- inventory -------------------------------------------------------------------------------

def test_inventory_from_labels_matches_simulator():
    snap = sim_result().snapshot
    sim, got = snap.inventory, inventory_from_labels(snap.metrics)
    assert set(got.entities) == set(sim.entities)
    for eid, attrs in sim.entities.items():
        assert dict(got.entities[eid]) == dict(attrs), eid
    want = {r for r in sim.relations if r.relation != "calls"}
    have = set(got.relations)
    assert have <= want, have - want
    # dcgm-exporter names one pod per GPU: a second pod time-sliced on a GPU is invisible
    users: dict[str, set[str]] = {}
    for r in sim.relations:
        if r.relation == "uses":
            users.setdefault(r.dst, set()).add(r.src)
    shared = {(p, g) for g, ps in users.items() if len(ps) > 1 for p in ps}
    missing = want - have
    assert missing and all(r.relation == "uses" and (r.src, r.dst) in shared for r in missing), missing


def test_names_and_spellings():
    assert canonical_name("vllm_kv_cache_usage_perc") == ("vllm:kv_cache_usage_perc", 1.0)
    assert canonical_name("vllm_gpu_cache_usage_perc") == ("vllm:kv_cache_usage_perc", 1.0)
    assert canonical_name("vllm:time_per_output_token_seconds_bucket")[0] == "vllm:inter_token_latency_seconds_bucket"
    assert canonical_name("DCGM_FI_DEV_FB_FREE_bytes") == ("DCGM_FI_DEV_FB_FREE", 1 / 2 ** 20)
    assert canonical_name("vllm:gpu_prefix_cache_hits_total")[0] == "vllm:gpu_prefix_cache_hits_total"  # units differ
    assert canonical_name("http_requests_total") == ("http_requests_total", 1.0)
    assert spellings("vllm:inter_token_latency_seconds_sum") == [
        "vllm:inter_token_latency_seconds_sum", "vllm:time_per_output_token_seconds_sum",
        "vllm_inter_token_latency_seconds_sum", "vllm_time_per_output_token_seconds_sum"]


# -- failure modes (MockTransport, dead sockets) ---------------------------------------------

W = Window(1_700_000_000, 1_700_000_300, 15)
SERIES = {"status": "success", "data": [{"__name__": "up", "job": "x"}]}


def _matrix(values) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "up", "job": "x"}, "values": values}]}}


def mock(handler, **kw) -> tuple[PrometheusConnector, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request, len(seen))

    client = httpx.Client(transport=httpx.MockTransport(wrapped))
    kw.setdefault("backoff_s", 0.0)
    return make("http://prom.test", client=client, name="mockprom", **kw), seen


def ok_handler(request: httpx.Request, n: int) -> httpx.Response:
    if request.url.path == "/api/v1/series":
        return httpx.Response(200, json=SERIES)
    return httpx.Response(200, json=_matrix([[W.start, "1"], [W.start + 15, "NaN"], [W.start + 30, "+Inf"]]))


def test_headers_tenant_bearer_and_basic_auth():
    c, seen = mock(ok_handler, tenant="team-a", bearer_token="s3cret")
    snap = c.fetch(W)
    assert snap.metrics.row(K("up", job="x"))[:3].tolist()[0] == 1.0
    assert np.isnan(snap.metrics.row(K("up", job="x"))[1]) and snap.metrics.row(K("up", job="x"))[2] == np.inf
    assert seen and all(r.headers["X-Scope-OrgID"] == "team-a" for r in seen)
    assert all(r.headers["Authorization"] == "Bearer s3cret" for r in seen)
    assert "s3cret" not in repr(c)
    c, seen = mock(ok_handler, basic_auth=("alice", "pw"))
    c.fetch(W)
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
    assert "X-Scope-OrgID" not in seen[0].headers


def test_series_request_carries_selector_and_window():
    c, seen = mock(ok_handler)
    c.fetch(W, selector='{job="x"}')
    form = dict(httpx.QueryParams(seen[0].content.decode()).multi_items())
    assert seen[0].url.path == "/api/v1/series"
    assert form == {"match[]": '{job="x"}', "start": str(W.start), "end": str(W.end)}
    assert 'job="x"' in httpx.QueryParams(seen[1].content.decode())["query"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried_then_recover(status):
    def handler(request, n):
        return httpx.Response(status, text="busy") if n <= 2 else ok_handler(request, n)

    c, seen = mock(handler, retries=3)
    snap = c.fetch(W)
    assert len(snap.metrics) == 1 and len(seen) == 4  # 2 failures + series + query


def test_retries_run_out_into_source_error():
    c, seen = mock(lambda r, n: httpx.Response(503, json={"status": "error", "errorType": "unavailable",
                                                           "error": "tsdb closing"}), retries=3)
    with pytest.raises(SourceError, match="HTTP 503 unavailable: tsdb closing") as e:
        c.fetch(W)
    assert e.value.source == "mockprom" and len(seen) == 3


def test_client_errors_are_not_retried():
    body = {"status": "error", "errorType": "bad_data", "error": "parse error: unclosed left parenthesis"}
    c, seen = mock(lambda r, n: httpx.Response(400, json=body), retries=5)
    with pytest.raises(SourceError, match="bad_data: parse error"):
        c.fetch(W, selector="up{")
    assert len(seen) == 1


def test_connect_errors_are_retried():
    def handler(request, n):
        if n <= 2:
            raise httpx.ConnectError("refused", request=request)
        return ok_handler(request, n)

    c, seen = mock(handler, retries=3)
    assert len(c.fetch(W).metrics) == 1 and len(seen) == 4


def test_read_timeout_is_source_timeout_not_retried():
    def handler(request, n):
        raise httpx.ReadTimeout("slow", request=request)

    c, seen = mock(handler, retries=3)
    with pytest.raises(SourceTimeout, match="no answer within"):
        c.fetch(W)
    assert len(seen) == 1


@pytest.mark.parametrize("body, match", [
    (b"<html>502 Bad Gateway</html>", "not JSON"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}', "malformed"),
    (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "malformed"),
    (b'[1, 2, 3]', "not a Prometheus API answer"),
    (json.dumps({"status": "error", "errorType": "execution", "error": "query processing would load too many samples"}
                ).encode(), "execution: query processing would load too many samples"),
])
def test_lying_sources_raise_source_error(body, match):
    def handler(request, n):
        if request.url.path == "/api/v1/series":
            return httpx.Response(200, json=SERIES)
        return httpx.Response(422 if b'"error"' in body else 200, content=body)

    c, _ = mock(handler)
    with pytest.raises(SourceError, match=match):
        c.fetch(W)


def test_garbage_series_answer():
    c, _ = mock(lambda r, n: httpx.Response(200, json={"status": "success", "data": {"not": "a list"}}))
    with pytest.raises(SourceError, match="not a list"):
        c.fetch(W)


def test_response_over_size_limit():
    big = _matrix([[W.start + 15 * i, str(i)] for i in range(21)])

    def handler(request, n):
        if request.url.path == "/api/v1/series":
            return httpx.Response(200, json=SERIES)
        return httpx.Response(200, json=big)

    c, _ = mock(handler, max_response_bytes=200)
    with pytest.raises(SourceError, match="larger than"):
        c.fetch(W)
    c, _ = mock(handler, max_response_bytes=10_000)
    assert np.nansum(c.fetch(W).metrics.values) == sum(range(21))


def test_empty_discovery_is_empty_frame():
    c, seen = mock(lambda r, n: httpx.Response(200, json={"status": "success", "data": []}))
    snap = c.fetch(W)
    assert len(snap.metrics) == 0 and snap.metrics.shape == (0, 21) and len(seen) == 1


def test_exemplars_from_query_exemplars():
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {"status": "success", "data": [{
        "seriesLabels": {"__name__": "vllm_e2e_request_latency_seconds_bucket", "le": "1.0", "pod": "p"},
        "exemplars": [{"labels": {"trace_id": tid}, "value": "0.67", "timestamp": 1700000000.123},
                      {"labels": {"span_id": "abc"}, "value": "2", "timestamp": 1700000001}]}]}
    c, seen = mock(lambda r, n: httpx.Response(200, json=body))
    ex = c.exemplars(W, "vllm:e2e_request_latency_seconds_bucket")
    assert seen[0].url.path == "/api/v1/query_exemplars"
    assert "vllm_e2e_request_latency_seconds_bucket" in httpx.QueryParams(seen[0].content.decode())["query"]
    assert [(e.trace_id, e.value, e.ts) for e in ex] == [(tid, 0.67, 1700000000.123), (None, 2.0, 1700000001.0)]
    assert ex[0].series == K("vllm:e2e_request_latency_seconds_bucket", le="1.0", pod="p")


def test_connection_refused_is_source_error():
    c = make(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.0, timeout_s=2.0)
    with pytest.raises(SourceError, match="cannot connect"):
        c.fetch(W)


def test_silent_server_times_out():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept, read nothing, answer nothing
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        c = make(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout_s=0.3, retries=3)
        with pytest.raises(SourceTimeout):
            c.fetch(W)
        assert c.check().status == "down"
    finally:
        stop.set()
        t.join(2)
        for s in held:
            s.close()
        srv.close()
