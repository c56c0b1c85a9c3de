"""The fleet simulator: public API, determinism, raw-data shapes, and every scenario's fault
being visible in the raw telemetry (before/after on the truth root's own signals)."""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache

import numpy as np
import pytest

import rca.sim
from rca.entities import aliases_from_inventory, entity_of_series
from rca.errors import BadInput, NotFound
from rca.sim import SimResult, list_scenarios, load_scenario, simulate
from rca.sim.scenarios import FAULTS, resolve_target
from rca.sim.topology import FB_TOTAL_MIB, build_fleet
from rca.sim.workload import rng_for
from rca.types import MetricFrame

SCENARIOS = ["bad_deploy", "gpu_thermal_throttle", "gpu_xid_79", "input_drift", "kv_cache_exhaustion",
             "mcp_tool_timeout", "no_fault", "noisy_neighbor", "token_black_hole", "vector_db_slowdown"]
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_VIOLATION")
HEX = re.compile(r"^[0-9a-f]+$")


@cache
def sim(name: str, seed: int = 0) -> SimResult:
    return simulate(name, seed)


# --- small helpers on the raw frame ------------------------------------------------------------

def rows(f: MetricFrame, name: str, **labels: str) -> np.ndarray:
    """Rows of series ``name`` whose labels match, shape (n, T)."""
    idx = [i for i, k in enumerate(f.keys)
           if k.name == name and all(k.label(a) == b for a, b in labels.items())]
    return f.values[idx]


def rate(counter_rows: np.ndarray) -> np.ndarray:
    """Per-second rate from cumulative counters, summed over rows (NaN gaps count as 0)."""
    d = np.diff(counter_rows, axis=-1, prepend=np.nan) / 15.0
    return np.nansum(np.atleast_2d(d), axis=0)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def before_after(r: SimResult, x: np.ndarray) -> tuple[float, float]:
    """Mean over the hour before onset and over onset+2 min .. question time."""
    ts, on = r.snapshot.metrics.timestamps, r.truth.onset or r.question_time - 480
    b = np.nanmean(x[(ts >= on - 3600) & (ts < on - 60)])
    a = np.nanmean(x[(ts >= on + 120) & (ts <= r.question_time)])
    return float(b), float(a)


def vllm_pods_of(r: SimResult, root: str) -> list[str]:
    inv = r.snapshot.inventory
    pods = inv.members(root) if root.startswith("model:") else [root]
    return [p.split(":", 1)[1] for p in pods]


# --- public API ---------------------------------------------------------------------------------

def test_public_api_is_pinned() -> None:
    assert sorted(rca.sim.__all__) == ["Scenario", "SimResult", "Truth", "list_scenarios", "load_scenario",
                                       "simulate"]
    assert list_scenarios() == SCENARIOS


def test_unknown_scenario_names_the_available_ones() -> None:
    with pytest.raises(NotFound) as exc:
        load_scenario("no_such_thing")
    assert exc.value.field == "scenario"
    assert "kv_cache_exhaustion" in str(exc.value) and "no_fault" in str(exc.value)
    with pytest.raises(NotFound):
        simulate("no_such_thing")
    with pytest.raises(BadInput, match="seed"):
        simulate("no_fault", seed=-1)
    assert hash(load_scenario("kv_cache_exhaustion")) == hash(load_scenario("kv_cache_exhaustion"))


def test_scenarios_dir_env_override(tmp_path, monkeypatch) -> None:
    (tmp_path / "custom.yaml").write_text(
        "name: custom\ndescription: x\nfault: {kind: thermal, target: gpu:gpu-node-2/0, magnitude: 2}\n"
        "truth: {category: gpu_thermal_throttle}\nquestion: 'what happened at {time}?'\n")
    (tmp_path / "broken.yaml").write_text("fault: {kind: meteor}\ntruth: {category: x}\n")
    monkeypatch.setenv("RCA_SCENARIOS_DIR", str(tmp_path))
    assert list_scenarios() == ["broken", "custom"]
    sc = load_scenario("custom")
    assert sc.fault.target == "gpu:gpu-node-2/0" and sc.fault.magnitude == 2.0
    with pytest.raises(BadInput, match="fault.kind"):
        load_scenario("broken")
    r = simulate(sc, seed=3)
    assert r.truth.root == "gpu:gpu-node-2/0"
    assert re.fullmatch(r"what happened at \d\d:\d\d\?", r.question)


def test_bad_explicit_target_is_rejected() -> None:
    sc = load_scenario("gpu_xid_79")
    bad = type(sc)(sc.name, sc.description, type(sc.fault)("xid", "gpu:gpu-node-3/7"), sc.category)
    with pytest.raises(BadInput, match="fault.target"):
        simulate(bad)


# --- determinism --------------------------------------------------------------------------------

def test_same_seed_same_snapshot_different_seed_differs() -> None:
    a, b = simulate("kv_cache_exhaustion", 5), simulate("kv_cache_exhaustion", 5)
    fa, fb = a.snapshot.metrics, b.snapshot.metrics
    assert fa.keys == fb.keys and np.array_equal(fa.values, fb.values, equal_nan=True)
    assert np.array_equal(fa.timestamps, fb.timestamps)
    assert a.snapshot.spans == b.snapshot.spans and a.snapshot.logs == b.snapshot.logs
    assert a.truth == b.truth and a.question == b.question
    c = sim("kv_cache_exhaustion", 0)
    assert c.snapshot.metrics.keys != fa.keys or not np.array_equal(c.snapshot.metrics.values, fa.values,
                                                                   equal_nan=True)
    assert c.snapshot.spans[0].trace_id != a.snapshot.spans[0].trace_id


# --- shapes of the raw data ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["no_fault", "gpu_xid_79", "bad_deploy"])
def test_raw_series_shapes(name: str) -> None:
    r = sim(name)
    f, w = r.snapshot.metrics, r.snapshot.window
    assert f.values.ndim == 2 and f.values.shape == (len(f.keys), len(f.timestamps))
    assert np.all(np.diff(f.timestamps) == 15) and f.timestamps[0] == w.start and f.timestamps[-1] == w.end
    assert w.end - w.start >= 4 * 3600 + 30 * 60 - 15*4 and w.end >= r.question_time + 600
    assert len(set(f.keys)) == len(f.keys)
    assert not any(k.name.endswith("_created") for k in f.keys)
    for k, v in zip(f.keys, f.values, strict=True):
        if k.name.endswith(COUNTER_SUFFIXES):
            seen = v[~np.isnan(v)]
            assert np.all(np.diff(seen) >= -1e-6), f"counter went down: {k}"
            assert np.all(seen >= 0), k


def test_histograms_have_inf_bucket_equal_to_count() -> None:
    f = sim("kv_cache_exhaustion").snapshot.metrics
    groups: dict[tuple, dict[str, np.ndarray]] = defaultdict(dict)
    counts = {}
    for k, v in zip(f.keys, f.values, strict=True):
        if k.name.endswith("_bucket"):
            groups[(k.name[:-7], tuple(x for x in k.labels if x[0] != "le"))][k.label("le")] = v
        elif k.name.endswith("_count"):
            counts[(k.name[:-6], k.labels)] = v
    assert len(groups) > 30
    for (base, labels), buckets in groups.items():
        assert "+Inf" in buckets, base
        assert np.array_equal(buckets["+Inf"], counts[(base, labels)], equal_nan=True)
        les = sorted((le for le in buckets if le != "+Inf"), key=float)
        stack = np.array([buckets[le] for le in [*les, "+Inf"]])
        ok = ~np.isnan(stack).any(axis=0)
        assert np.all(np.diff(stack[:, ok], axis=0) >= 0), base     # cumulative over le
    pod = "vllm-llama-3-8b-1"          # every request-level vLLM histogram counts each finished request
    finished = np.nansum(rows(f, "vllm:request_success_total", pod=pod), axis=0)
    for name in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds",
                 "request_prompt_tokens", "request_generation_tokens"):
        assert np.array_equal(rows(f, f"vllm:{name}_count", pod=pod)[0], finished), name
    assert np.array_equal(rows(f, "vllm:prompt_tokens_total", pod=pod), rows(f, "vllm:request_prompt_tokens_sum", pod=pod))
    for k in (k for k in f.keys if k.name == "http_request_duration_seconds_count"):
        codes = np.nansum(rows(f, "http_requests_total", pod=k.label("pod")), axis=0)
        assert np.array_equal(f.row(k), codes)
    ttft = {k.label("le") for k in f.keys if k.name == "vllm:time_to_first_token_seconds_bucket"}
    assert {"0.001", "1.0", "2.5", "2560.0", "+Inf"} <= ttft
    tok8b = {k.label("le") for k in f.keys if k.name == "vllm:request_prompt_tokens_bucket"
             and k.label("model_name") == "llama-3-8b"}
    assert tok8b == {"1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0", "2000.0",
                     "5000.0", "+Inf"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_value_ranges(name: str) -> None:
    r = sim(name)
    f = r.snapshot.metrics
    kv = rows(f, "vllm:kv_cache_usage_perc")
    assert np.nanmin(kv) >= 0 and np.nanmax(kv) <= 1
    used, free = rows(f, "DCGM_FI_DEV_FB_USED"), rows(f, "DCGM_FI_DEV_FB_FREE")
    assert np.nanmin(used) >= 0 and np.nanmax(used + free) <= FB_TOTAL_MIB
    util = rows(f, "DCGM_FI_DEV_GPU_UTIL")
    assert np.nanmin(util) >= 0 and np.nanmax(util) <= 100
    xid = rows(f, "DCGM_FI_DEV_XID_ERRORS")
    healthy = f.timestamps < (r.truth.onset or f.timestamps[-1] + 1)
    assert np.all(np.nan_to_num(xid[:, healthy]) == 0)
    if name != "gpu_xid_79":
        assert np.all(np.nan_to_num(xid) == 0)


# --- inventory ----------------------------------------------------------------------------------

def test_inventory_wiring() -> None:
    inv = sim("no_fault").snapshot.inventory
    aliases = aliases_from_inventory(inv)
    assert aliases["vector-db"] == "db:vector-db" and aliases["mcp-web-search"] == "tool:web-search"
    assert aliases["orchestrator"] == "service:orchestrator"
    assert inv.members("model:llama-3-70b") == [f"pod:vllm-llama-3-70b-{i}" for i in range(3)]
    assert inv.groups_of("pod:vllm-llama-3-8b-0") == ["model:llama-3-8b"]
    rel = {(r.src, r.relation, r.dst) for r in inv.relations}
    assert ("gpu:gpu-node-1/0", "part_of", "node:gpu-node-1") in rel
    assert ("pod:vllm-llama-3-70b-0", "uses", "gpu:gpu-node-1/3") in rel
    assert ("service:llm-router", "calls", "model:llama-3-8b") in rel
    assert len([g for g in inv.entities if g.startswith("gpu:")]) == 24
    batch = next(e for e in inv.entities if e.startswith("pod:batch-embed-"))
    shared = {r.dst for r in inv.relations if r.src == batch and r.relation == "uses"}
    assert shared and shared <= {r.dst for r in inv.relations if r.src.startswith("pod:vllm-llama-3-8b")}
    for k in sim("no_fault").snapshot.metrics.keys[:: 17]:
        assert entity_of_series(k, aliases) in inv.entities, k


# --- ground truth and the fault in the raw data ---------------------------------------------------

@pytest.mark.parametrize("name", SCENARIOS)
def test_truth_is_consistent(name: str) -> None:
    r = sim(name)
    w, t = r.snapshot.window, r.truth
    assert w.contains(r.question_time) and r.question_time % 60 == 0
    assert re.search(r"\d\d:\d\d", r.question)
    if name == "no_fault":
        assert (t.root, t.category, t.onset) == (None, "none", None)
        return
    assert t.root in r.snapshot.inventory.entities and t.category == load_scenario(name).category
    assert t.onset is not None and w.start + 3 * 3600 < t.onset < r.question_time <= w.end - 600
    assert (t.onset - w.start) % w.step == 0


def test_kv_cache_exhaustion_visible() -> None:
    r = sim("kv_cache_exhaustion")
    f, pod = r.snapshot.metrics, vllm_pods_of(r, r.truth.root)[0]
    kv_b, kv_a = before_after(r, rows(f, "vllm:kv_cache_usage_perc", pod=pod)[0])
    assert kv_a > kv_b + 0.2 and kv_a > 0.95
    pre_b, pre_a = before_after(r, rate(rows(f, "vllm:num_preemptions_total", pod=pod)))
    assert pre_b < 0.05 < pre_a
    wait_b, wait_a = before_after(r, rows(f, "vllm:num_requests_waiting", pod=pod)[0])
    assert wait_a > 10 * (wait_b + 1)
    ttft = ratio(rate(rows(f, "vllm:time_to_first_token_seconds_sum", pod=pod)),
                 rate(rows(f, "vllm:time_to_first_token_seconds_count", pod=pod)))
    b, a = before_after(r, ttft)
    assert a > 5 * b
    assert any("preempted by PreemptionMode.RECOMPUTE" in lg.body and lg.entity == r.truth.root
               for lg in r.snapshot.logs)


def test_gpu_xid_visible() -> None:
    r = sim("gpu_xid_79")
    f, gpu = r.snapshot.metrics, r.truth.root
    host, idx = gpu.split(":", 1)[1].split("/")
    xid = rows(f, "DCGM_FI_DEV_XID_ERRORS", Hostname=host, gpu=idx)[0]
    ts = f.timestamps
    assert np.nanmax(xid[ts >= r.truth.onset]) == 79 and np.all(xid[ts < r.truth.onset] == 0)
    assert np.all(np.isnan(rows(f, "DCGM_FI_DEV_GPU_TEMP", Hostname=host, gpu=idx)[0][ts > r.truth.onset + 60]))
    pod = next(rel.src for rel in r.snapshot.inventory.relations if rel.relation == "uses" and rel.dst == gpu)
    kv = rows(f, "vllm:kv_cache_usage_perc", pod=pod.split(":", 1)[1])[0]
    assert np.all(np.isnan(kv[ts > r.truth.onset + 30])) and not np.any(np.isnan(kv[ts < r.truth.onset]))
    e503 = rate(rows(f, "http_requests_total", service="llm-router", code="503"))
    b, _ = before_after(r, e503)
    assert e503[(ts >= r.truth.onset) & (ts <= r.truth.onset + 120)].max() > 10 * b + 1   # ~1 min of 503s
    peers = [p for p in r.snapshot.inventory.members("model:llama-3-70b") if p != pod]
    lb, la = before_after(r, sum(rate(rows(f, "vllm:request_success_total", pod=p.split(":")[1])) for p in peers))
    assert la > 1.3 * lb
    assert any(lg.entity == f"node:{host}" and ": 79, pid=" in lg.body for lg in r.snapshot.logs)


def test_gpu_thermal_visible() -> None:
    r = sim("gpu_thermal_throttle")
    f = r.snapshot.metrics
    host, idx = r.truth.root.split(":", 1)[1].split("/")
    temp_b, temp_a = before_after(r, rows(f, "DCGM_FI_DEV_GPU_TEMP", Hostname=host, gpu=idx)[0])
    clk_b, clk_a = before_after(r, rows(f, "DCGM_FI_DEV_SM_CLOCK", Hostname=host, gpu=idx)[0])
    assert temp_b < 75 < 88 < temp_a and clk_b > 1900 and clk_a < 1500
    thr_b, thr_a = before_after(r, rate(rows(f, "DCGM_FI_DEV_THERMAL_VIOLATION", Hostname=host, gpu=idx)))
    assert thr_b == 0 and thr_a > 1e8
    pod = next(rel.src for rel in r.snapshot.inventory.relations if rel.relation == "uses"
               and rel.dst == r.truth.root and "vllm" in rel.src).split(":", 1)[1]
    itl = ratio(rate(rows(f, "vllm:inter_token_latency_seconds_sum", pod=pod)),
                rate(rows(f, "vllm:inter_token_latency_seconds_count", pod=pod)))
    b, a = before_after(r, itl)
    assert a > 1.4 * b


def _mean_latency(f: MetricFrame, service: str) -> np.ndarray:
    return ratio(rate(rows(f, "http_request_duration_seconds_sum", service=service)),
                 rate(rows(f, "http_request_duration_seconds_count", service=service)))


def test_vector_db_slowdown_visible() -> None:
    r = sim("vector_db_slowdown")
    f = r.snapshot.metrics
    b, a = before_after(r, _mean_latency(f, "vector-db"))
    assert a > 5 * b
    pod = r.snapshot.inventory.members("db:vector-db")[0].split(":", 1)[1]
    cpu_b, cpu_a = before_after(r, rate(rows(f, "container_cpu_usage_seconds_total", pod=pod)))
    assert cpu_b < 1.5 and cpu_a > 3.5
    rb, ra = before_after(r, _mean_latency(f, "rag-retriever"))
    assert ra > 3 * rb
    gb, ga = before_after(r, _mean_latency(f, "api-gateway"))
    assert ga > gb


def test_mcp_tool_timeout_visible() -> None:
    r = sim("mcp_tool_timeout")
    f = r.snapshot.metrics
    wire = r.snapshot.inventory.entities[r.truth.root]["service"]
    e_b, e_a = before_after(r, ratio(rate(rows(f, "http_requests_total", service=wire, code="504")),
                                     rate(rows(f, "http_requests_total", service=wire))))
    assert e_b < 0.02 and e_a > 0.3
    b, a = before_after(r, _mean_latency(f, wire))
    assert a > 5 * b
    tool = r.truth.root.split(":", 1)[1]
    bad = [s for s in r.snapshot.spans if s.name == f"execute_tool {tool}" and s.status == "error"]
    assert bad and all(s.attributes["error.type"] in {"timeout", "tool_error"} for s in bad)
    assert any(s.attributes["error.type"] == "timeout" and s.start_ns > r.truth.onset * 1e9 for s in bad)
    assert any(f"tool call {tool} timed out after 30.0s" == lg.body for lg in r.snapshot.logs)


def test_token_black_hole_visible() -> None:
    r = sim("token_black_hole")
    f = r.snapshot.metrics
    pods = vllm_pods_of(r, r.truth.root)
    length = sum(rate(rows(f, "vllm:request_success_total", pod=p, finished_reason="length")) for p in pods)
    total = sum(rate(rows(f, "vllm:request_success_total", pod=p)) for p in pods)
    b, a = before_after(r, ratio(length, total))
    assert b < 0.1 and a > 0.4
    gb, ga = before_after(r, sum(rate(rows(f, "vllm:generation_tokens_total", pod=p)) for p in pods))
    assert ga > 1.3 * gb
    assert np.nanmax(rows(f, "vllm:kv_cache_usage_perc", model_name=r.truth.root.split(":")[1])) < 0.95
    assert sum(np.nansum(np.diff(rows(f, "vllm:num_preemptions_total", pod=p))) for p in pods) == 0
    model = r.truth.root.split(":", 1)[1]
    loops = [s for s in r.snapshot.spans if s.name == "llm_request" and s.attributes["gen_ai.response.model"] == model
             and (r.truth.onset + 120) * 1e9 < s.start_ns < (r.truth.onset + 1000) * 1e9]
    hit = [s for s in loops if s.attributes["gen_ai.response.finish_reasons"] == ["length"]]
    assert len(hit) > 0.3 * len(loops)
    assert all(s.attributes["gen_ai.usage.completion_tokens"] == s.attributes["gen_ai.request.max_tokens"]
               for s in hit)


def test_bad_deploy_visible() -> None:
    r = sim("bad_deploy")
    f, ts = r.snapshot.metrics, r.snapshot.metrics.timestamps
    old = rows(f, "app_build_info", service="orchestrator", version="1.14.2")
    new = rows(f, "app_build_info", service="orchestrator", version="1.15.0")
    assert len(old) == 2 and len(new) == 2
    assert np.all(np.isnan(new[:, ts < r.truth.onset])) and np.all(new[:, ts > r.truth.onset + 60] == 1)
    assert np.all(np.isnan(old[:, ts > r.truth.onset + 60])) and np.all(old[:, ts < r.truth.onset] == 1)
    assert set(r.snapshot.inventory.members("service:orchestrator")) >= {
        f"pod:{k.label('pod')}" for k in f.keys if k.name == "app_build_info" and k.label("service") == "orchestrator"}
    gw_ok = rate(rows(f, "http_requests_total", service="api-gateway", code="200"))
    gw_all = rate(rows(f, "http_requests_total", service="api-gateway"))
    b, a = before_after(r, 1 - ratio(gw_ok, gw_all))
    assert b < 0.02 and 0.1 < a < 0.35
    lb, la = before_after(r, _mean_latency(f, "api-gateway"))
    assert 0.8 < la / lb < 1.25
    assert any(lg.severity == "ERROR" and "KeyError" in lg.body for lg in r.snapshot.logs)


def test_noisy_neighbor_visible() -> None:
    r = sim("noisy_neighbor")
    f = r.snapshot.metrics
    inv = r.snapshot.inventory
    assert r.truth.root == "service:batch-embed"       # a one-pod group is reported as the group
    (pod_eid,) = inv.members(r.truth.root)
    ib, ia = before_after(r, rate(rows(f, "batch_embed_items_total", pod=pod_eid.split(":", 1)[1])))
    assert ib < 1 and ia > 100
    gpu = next(rel.dst for rel in inv.relations if rel.src == pod_eid and rel.relation == "uses")
    host, idx = gpu.split(":", 1)[1].split("/")
    ub, ua = before_after(r, rows(f, "DCGM_FI_DEV_GPU_UTIL", Hostname=host, gpu=idx)[0])
    fb_b, fb_a = before_after(r, rows(f, "DCGM_FI_DEV_FB_USED", Hostname=host, gpu=idx)[0])
    assert ua > 95 > ub and fb_a > fb_b + 5000
    pod = next(rel.src for rel in r.snapshot.inventory.relations if rel.dst == gpu and "vllm" in rel.src)
    itl = ratio(rate(rows(f, "vllm:inter_token_latency_seconds_sum", pod=pod.split(":", 1)[1])),
                rate(rows(f, "vllm:inter_token_latency_seconds_count", pod=pod.split(":", 1)[1])))
    b, a = before_after(r, itl)
    assert a > 1.6 * b


def test_input_drift_visible() -> None:
    r = sim("input_drift")
    f = r.snapshot.metrics
    pods = vllm_pods_of(r, r.truth.root)
    prompt = ratio(sum(rate(rows(f, "vllm:request_prompt_tokens_sum", pod=p)) for p in pods),
                   sum(rate(rows(f, "vllm:request_prompt_tokens_count", pod=p)) for p in pods))
    b, a = before_after(r, prompt)
    assert a > 1.8 * b
    kv = np.vstack([rows(f, "vllm:kv_cache_usage_perc", pod=p) for p in pods])
    kb, ka = before_after(r, kv.mean(axis=0))
    assert ka > kb + 0.1 and ka < 0.85
    assert sum(np.nansum(np.diff(rows(f, "vllm:num_preemptions_total", pod=p))) for p in pods) == 0
    errs = rate(rows(f, "http_requests_total", service="api-gateway", code="500"))
    eb, ea = before_after(r, errs)
    assert ea < 3 * eb + 0.1


def test_no_fault_stays_normal() -> None:
    r = sim("no_fault")
    f = r.snapshot.metrics
    ok = rate(rows(f, "http_requests_total", service="api-gateway", code="200"))
    total = rate(rows(f, "http_requests_total", service="api-gateway"))
    assert np.nanmax(1 - ratio(ok, total)[1:]) < 0.05
    assert np.nanmean(rows(f, "vllm:kv_cache_usage_perc")) < 0.6
    assert not any(lg.severity == "ERROR" and lg.entity.startswith("node:") for lg in r.snapshot.logs)
    load = rate(rows(f, "http_requests_total", service="api-gateway"))[1:]
    assert load.max() > 1.2 * np.median(load)     # the usual bursts are there


def test_auto_targets_vary_with_seed() -> None:
    for name in SCENARIOS:
        sc = load_scenario(name)
        fleet = build_fleet(rng_for(0, "topology"))
        if sc.fault.target != "auto" or len(FAULTS[sc.fault.kind]().eligible(fleet)) < 2:
            continue
        roots = {resolve_target(sc, build_fleet(rng_for(s, "topology")), s) for s in range(8)}
        assert len(roots) >= 2, name


# --- spans and logs -----------------------------------------------------------------------------

def test_spans_are_well_formed() -> None:
    r = sim("mcp_tool_timeout")
    spans, w = r.snapshot.spans, r.snapshot.window
    assert 300 < len({s.trace_id for s in spans}) < 2000
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    assert len(by_id) == len(spans)
    for s in spans:
        assert len(s.trace_id) == 32 and len(s.span_id) == 16 and HEX.match(s.trace_id) and HEX.match(s.span_id)
        assert s.start_ns <= s.end_ns and s.start_ns >= (w.end - 90 * 60 - 15) * 10 ** 9
        assert s.service == s.resource["service.name"] and s.resource["k8s.pod.name"]
        assert s.resource["k8s.namespace.name"] == "serving"
        if s.parent is None:
            assert s.name == "POST /v1/chat/completions"
            continue
        parent = by_id[(s.trace_id, s.parent)]
        assert parent.start_ns <= s.start_ns and s.end_ns <= parent.end_ns, (parent.name, s.name)
        if s.status == "error":
            assert s.attributes["error.type"]
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert chats and all(s.kind == "client" and s.attributes["gen_ai.operation.name"] == "chat"
                         and s.attributes["gen_ai.provider.name"] == "vllm" and s.attributes["gen_ai.request.model"]
                         for s in chats)
    for s in (s for s in spans if s.name == "llm_request"):
        assert s.service == "vllm" and s.kind == "server"
        for key in ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.request.max_tokens",
                    "gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e"):
            assert key in s.attributes
        assert isinstance(s.attributes["gen_ai.response.finish_reasons"], list)
        assert abs(s.duration_s - s.attributes["gen_ai.latency.e2e"]) < 0.01
    names = {s.name for s in spans}
    assert {"invoke_agent assistant", "retrieve", "embeddings all-minilm-l6-v2", "query vector-db", "search",
            "GET cache", "route", "INSERT sessions", "tools/call web-search", "execute_tool web-search"} <= names
    assert {s.attributes.get("db.system") for s in spans} >= {"redis", "qdrant", "postgresql"}


def test_logs_are_well_formed() -> None:
    r = sim("gpu_xid_79")
    logs, inv = r.snapshot.logs, r.snapshot.inventory
    assert [lg.ts_ns for lg in logs] == sorted(lg.ts_ns for lg in logs)
    assert all(lg.entity in inv.entities for lg in logs)
    assert {lg.severity for lg in logs} <= {"INFO", "WARN", "ERROR"}
    assert any(lg.severity == "WARN" and lg.ts_ns < (r.truth.onset - 3600) * 1e9 for lg in logs)
    traced = [lg for lg in logs if lg.trace_id]
    trace_ids = {s.trace_id for s in r.snapshot.spans}
    assert traced and all(lg.trace_id in trace_ids for lg in traced)
