"""Sampled traces (last 90 min, ~2 per step) and the log lines that carry their trace ids.

Each trace follows one gateway request through the fleet; durations are drawn from the same
latent distributions as the metrics at that step, children nest inside their parents, and a
failing call marks its span (``status="error"``, ``error.type``) and, with the same per-edge
probabilities as the metrics model, its callers. Bystanders of a varied fleet get a CLIENT/SERVER
pair under their caller (an MCP tool the same spans as the other tools).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rca.sim.faults_svc import TRACEBACK
from rca.sim.latent import Comp, Latent
from rca.sim.logs import pod_log
from rca.sim.outputs import output_messages
from rca.sim.services import TOOLS
from rca.sim.serving import BASE_LENGTH_SHARE
from rca.sim.topology import NAMESPACE, Pod
from rca.sim.workload import STEP, rng_for
from rca.types import LogRecord, Span

__all__ = ["TRACE_HORIZON_S", "emit_traces"]

TRACE_HORIZON_S = 90 * 60
TRACES_PER_STEP = 2.0
MS = 1_000_000  # ns


@dataclass
class _Trace:
    rng: np.random.Generator
    trace_id: str
    spans: list[Span] = field(default_factory=list)

    def add(self, parent: str | None, pod: Pod, service: str, name: str, kind: str, start: int, end: int,
            attrs: dict[str, Any], error: str | None = None) -> str:
        """A new span (fresh id) whose times are known now; returns its id."""
        return self.put(self.rng.bytes(8).hex(), parent, pod, service, name, kind, start, end, attrs, error)

    def put(self, sid: str, parent: str | None, pod: Pod, service: str, name: str, kind: str, start: int,
            end: int, attrs: dict[str, Any], error: str | None = None) -> str:
        """A span with a pre-drawn id (parents are written after their children)."""
        if error:
            attrs = {**attrs, "error.type": error}
        res = {"service.name": service, "k8s.pod.name": pod.name, "k8s.namespace.name": NAMESPACE}
        self.spans.append(Span(self.trace_id, sid, parent, service, name, int(start), int(end),
                               "error" if error else "unset", kind, attrs, res, error or ""))
        return sid


@dataclass
class _Pool:
    """A service's pods with their liveness and traffic weights as ``(P, T)`` matrices, built
    once per simulation (picking a pod per request is the hot loop)."""

    pods: list[Pod]
    alive: np.ndarray
    weight: np.ndarray


def _pools(lat: Latent) -> dict[str, _Pool]:
    out = {}
    for wire in lat.svc:
        pods = lat.fleet.pods_of(wire)
        out[wire] = _Pool(pods, np.array([lat.alive[p.name] for p in pods], dtype=bool),
                          np.array([lat.weight[p.name] for p in pods], dtype=float))
    return out


def _choice(rng: np.random.Generator, w: np.ndarray) -> int:
    """``rng.choice(len(w), p=w / w.sum())`` without its argument checks (the same single
    uniform draw and the same cdf arithmetic, so the same index): it runs per span."""
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def _pick_pod(pool: _Pool, rng: np.random.Generator, i: int) -> Pod:
    """A live pod of the service at step ``i``, drawn by its traffic weight."""
    idx = np.flatnonzero(pool.alive[:, i])
    w = pool.weight[idx, i]
    return pool.pods[int(idx[_choice(rng, w)])]


def _draw(rng: np.random.Generator, comps: list[Comp], i: int) -> tuple[float, str]:
    """One value (seconds) from a service mixture at step i, with the component's tag."""
    w = np.array([float(c.weight[i]) for c in comps])
    c = comps[_choice(rng, w)]
    return float(c.median[i]) * float(np.exp(c.sigma * rng.standard_normal())), c.tag


def emit_traces(lat: Latent) -> tuple[list[Span], list[LogRecord]]:
    rng = rng_for(lat.seed, "traces")
    ts = lat.tl.ts
    pools = _pools(lat)
    spans: list[Span] = []
    logs: list[LogRecord] = []
    for i in np.flatnonzero(ts > ts[-1] - TRACE_HORIZON_S):
        for _ in range(int(rng.poisson(TRACES_PER_STEP))):
            t0 = int((ts[i] - rng.uniform(0, STEP)) * 1e9)
            tr = _Trace(rng, rng.bytes(16).hex())
            logs.extend(_request(lat, tr, int(i), t0, pools))
            spans.extend(tr.spans)
    return spans, logs


def _fails(rng: np.random.Generator, err: np.ndarray | None, i: int) -> str | None:
    """Own failure of a service at step i: None or the status code."""
    if err is None:
        return None
    p = err[:, i]
    u = rng.random()
    for code, cum in zip(("500", "503", "504"), np.cumsum(p), strict=True):
        if u < cum:
            return code
    return None


def _request(lat: Latent, tr: _Trace, i: int, t0: int, pools: dict[str, _Pool]) -> list[LogRecord]:
    """One gateway request at step ``i`` starting at ``t0`` (ns): decide, then lay out spans."""
    rng, sv, llm = tr.rng, lat.svc, lat.llm
    assert llm is not None
    pods = {w: _pick_pod(pools[w], rng, i) for w in sv}
    logs: list[LogRecord] = []
    orch_pod, gw_pod = pods["orchestrator"], pods["api-gateway"]
    crash_w = float(sv["orchestrator"].crash[i]) if sv["orchestrator"].crash is not None else 0.0
    crash = bool(rng.random() < crash_w)
    orch_err: str | None = None
    gw_sid, orch_sid = rng.bytes(8).hex(), rng.bytes(8).hex()
    pre = _extras(lat, tr, pods, "api-gateway", gw_sid, i, t0, logs)[0]
    orch_start = pre + int(rng.uniform(0.5, 1.5) * MS)
    cursor = orch_start + int(rng.uniform(1, 3) * MS)

    for _ in range(2):
        dur = max(rng.lognormal(np.log(sv["cache"].own[i]), 0.4), 2e-4)
        cursor = _pair(tr, orch_sid, orch_pod, "orchestrator", "GET cache", pods["cache"], "cache", "GET", cursor,
                       dur, {"db.system": "redis", "db.operation.name": "GET"}, _fails(rng, sv["cache"].err_own, i),
                       {"server.address": "cache"})
    cursor, x_err = _extras(lat, tr, pods, "orchestrator", orch_sid, i, cursor, logs)
    if x_err and rng.random() < 0.5:
        orch_err = x_err
    if rng.random() < 0.8:
        cursor, rag_err = _rag(lat, tr, pods, orch_sid, i, cursor)
        if rag_err and rng.random() < 0.4:
            orch_err = rag_err
    lam = llm.lam[:, i] * np.where(llm.alive[:, i] | (llm.fail[:, i] > 0), 1.0, 0.0)
    call = _llm_call(lat, rng, _choice(rng, lam), i)
    model = call["model"]
    cursor = _llm_spans(tr, pods, orch_sid, call, cursor, logs)
    if call["error"] and rng.random() < 0.9:
        orch_err = orch_err or ("503" if call["error"] == "503" else "504")
    tool_name = "none"
    if crash:   # the new planner fails on the LLM's answer
        cursor += int(rng.uniform(1, 4) * MS)
        logs.append(pod_log(cursor, orch_pod, "ERROR", TRACEBACK, tr.trace_id, orch_sid))
    else:
        u = rng.random()
        for wire, frac in TOOLS:
            if u < frac:
                tool_name = wire.removeprefix("mcp-")
                cursor, terr = _tool(lat, tr, pods, orch_sid, wire, i, cursor, logs)
                if terr and rng.random() < 0.3:
                    orch_err = orch_err or ("504" if terr == "timeout" else "500")
                break
            u -= frac
        dur = rng.lognormal(np.log(sv["postgres"].own[i]), 0.45)
        attrs = {"db.system": "postgresql", "db.operation.name": "INSERT", "db.collection.name": "sessions"}
        pg_err = _fails(rng, sv["postgres"].err_own, i)
        cursor = _pair(tr, orch_sid, orch_pod, "orchestrator", "INSERT sessions", pods["postgres"], "postgres",
                       "INSERT sessions", cursor, dur, attrs, pg_err, {"server.address": "postgres"})
        if pg_err and rng.random() < 0.5:
            orch_err = orch_err or pg_err
    own_p = max(float(sv["orchestrator"].err_own[:, i].sum()) - crash_w, 0.0)
    if crash:
        orch_err = "500"
    elif rng.random() < own_p:
        orch_err = orch_err or "500"

    orch_end = cursor + int(rng.lognormal(np.log(sv["orchestrator"].own[i]), 0.3) * 1e9)
    gw_err = orch_err or _fails(rng, sv["api-gateway"].err_own, i)
    gw_end = orch_end + int(rng.lognormal(np.log(sv["api-gateway"].own[i]), 0.3) * 1e9)
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "assistant", "gen_ai.provider.name": "vllm"}
    agent["gen_ai.request.model"] = model
    tr.put(orch_sid, gw_sid, orch_pod, "orchestrator", "invoke_agent assistant", "server", orch_start, orch_end,
           agent, orch_err)
    status = int(gw_err) if gw_err else 200
    tr.put(gw_sid, None, gw_pod, "api-gateway", "POST /v1/chat/completions", "server", t0, gw_end,
           {"http.request.method": "POST", "http.route": "/v1/chat/completions", "url.path": "/v1/chat/completions",
            "http.response.status_code": status}, gw_err)
    logs.append(pod_log(gw_end, gw_pod, "ERROR" if gw_err else "INFO",
                        f"request completed status={status} duration_ms={(gw_end - t0) / MS:.0f} "
                        "route=/v1/chat/completions", tr.trace_id, gw_sid))
    if not orch_err and rng.random() < 0.5:
        logs.append(pod_log(orch_end, orch_pod, "INFO",
                            f"agent run completed model={model} tool={tool_name} "
                            f"duration_ms={(orch_end - orch_start) / MS:.0f}", tr.trace_id, orch_sid))
    return logs


def _pair(tr: _Trace, parent: str, cpod: Pod, csvc: str, cname: str, spod: Pod, ssvc: str, sname: str,
          cursor: int, dur: float, attrs: dict[str, Any], err: str | None, client_extra: dict[str, Any]) -> int:
    """A CLIENT span wrapping the callee's SERVER span; returns the time after the call."""
    s0 = cursor + int(0.2 * MS)
    s1 = s0 + int(dur * 1e9)
    c1 = s1 + int(0.3 * MS)
    csid = tr.add(parent, cpod, csvc, cname, "client", cursor, c1, {**attrs, **client_extra}, err)
    tr.add(csid, spod, ssvc, sname, "server", s0, s1, attrs, err)
    return c1 + int(0.2 * MS)


def _extras(lat: Latent, tr: _Trace, pods: dict[str, Pod], caller: str, parent: str, i: int, cursor: int,
            logs: list[LogRecord]) -> tuple[int, str | None]:
    """Calls from ``caller`` to its bystanders (none in the default fleet: no draws at all)."""
    err_out: str | None = None
    for x in lat.extras_of(caller):
        rng = tr.rng
        if x.fanout < 1 and rng.random() >= x.fanout:
            continue
        if x.is_tool:
            cursor, terr = _tool(lat, tr, pods, parent, x.wire, i, cursor, logs)
            err_out = err_out or (("504" if terr == "timeout" else "500") if terr else None)
            continue
        dur = max(rng.lognormal(np.log(lat.svc[x.wire].own[i]), x.sigma), 2e-4)
        err = _fails(rng, lat.svc[x.wire].err_own, i)
        cursor = _pair(tr, parent, pods[caller], caller, x.span, pods[x.wire], x.wire, x.span, cursor, dur,
                       dict(x.attrs), err, {"server.address": x.wire})
        err_out = err_out or err
    return cursor, err_out


def _rag(lat: Latent, tr: _Trace, pods: dict[str, Pod], parent: str, i: int, r0: int) -> tuple[int, str | None]:
    rng, sv = tr.rng, lat.svc
    err = _fails(rng, sv["rag-retriever"].err_own, i) or _fails(rng, sv["vector-db"].err_own, i)
    rsid = rng.bytes(8).hex()
    e0 = r0 + int(0.6 * MS)
    e1 = e0 + int(rng.lognormal(np.log(sv["embedder"].own[i]), sv["embedder"].sigma) * 1e9)
    tr.add(rsid, pods["embedder"], "embedder", "embeddings all-minilm-l6-v2", "server", e0, e1,
           {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "all-minilm-l6-v2",
            "gen_ai.embeddings.dimension.count": 384})
    cursor, x_err = _extras(lat, tr, pods, "rag-retriever", rsid, i, e1 + int(0.3 * MS), [])
    err = err or (x_err if x_err and rng.random() < 0.5 else None)
    for _ in range(2):
        cursor = _pair(tr, rsid, pods["rag-retriever"], "rag-retriever", "query vector-db", pods["vector-db"],
                       "vector-db", "search", cursor, _draw(rng, sv["vector-db"].mix, i)[0],
                       {"db.system": "qdrant", "db.operation.name": "query", "db.collection.name": "docs-v3"},
                       err, {"server.address": "vector-db"})
    r1 = cursor + int(rng.lognormal(np.log(sv["rag-retriever"].own[i]), 0.3) * 1e9)
    tr.put(rsid, parent, pods["rag-retriever"], "rag-retriever", "retrieve", "server", r0, r1,
           {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "docs-v3", "retrieval.top_k": 8}, err)
    return r1 + int(0.3 * MS), err


def _tool(lat: Latent, tr: _Trace, pods: dict[str, Pod], parent: str, wire: str, i: int, x0: int,
          logs: list[LogRecord]) -> tuple[int, str | None]:
    rng = tr.rng
    name = wire.removeprefix("mcp-")
    dur, tag = _draw(rng, lat.svc[wire].mix, i)
    err = "timeout" if tag == "timeout" else ("tool_error" if _fails(rng, lat.svc[wire].err_own, i) else None)
    c0 = x0 + int(0.1 * MS)
    s0 = c0 + int(0.4 * MS)
    if err == "timeout":
        s1, c1 = c0 + int(29.99 * 1e9), c0 + int(30.0 * 1e9)
    else:
        s1 = s0 + int(dur * 1e9)
        c1 = s1 + int(0.4 * MS)
    x1 = c1 + int(0.2 * MS)
    orch = pods["orchestrator"]
    xsid = tr.add(parent, orch, "orchestrator", f"execute_tool {name}", "internal", x0, x1,
                  {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                   "gen_ai.tool.call.id": f"call_{rng.bytes(6).hex()}", "gen_ai.tool.type": "extension"}, err)
    attrs = {"mcp.method.name": "tools/call", "gen_ai.tool.name": name, "gen_ai.operation.name": "execute_tool",
             "jsonrpc.request.id": str(int(rng.integers(1, 10 ** 6))), "mcp.protocol.version": "2025-06-18"}
    csid = tr.add(xsid, orch, "orchestrator", f"tools/call {name}", "client", c0, c1,
                  {**attrs, "server.address": wire}, err)
    tr.add(csid, pods[wire], wire, f"tools/call {name}", "server", s0, s1, attrs, err)
    if err == "timeout":
        logs.append(pod_log(c1, orch, "ERROR", f"tool call {name} timed out after 30.0s", tr.trace_id, xsid))
    return x1 + int(0.5 * MS), err


def _llm_call(lat: Latent, rng: np.random.Generator, k: int, i: int) -> dict[str, Any]:
    llm = lat.llm
    assert llm is not None
    spec, o = llm.specs[k], llm.out
    pod = llm.pods[k]
    if llm.fail[k, i] > 0 and not llm.alive[k, i]:
        return {"k": k, "pod": pod, "model": spec.name, "error": "503"}
    pw = np.array([float(c.weight[k, i]) for c in llm.prompt])
    pc = llm.prompt[_choice(rng, pw)]
    prompt = int(min(rng.lognormal(np.log(pc.median[k, i]), pc.sigma), spec.max_model_len - spec.max_tokens))
    gw = np.array([float(c.weight[k, i]) for c in llm.gen])
    gc = llm.gen[_choice(rng, gw)]
    length_share = sum(w for w, c in zip(gw, llm.gen, strict=True) if c.tag == "length") / gw.sum()
    if gc.tag == "length":
        gen, reason = spec.max_tokens, "length"
    else:
        gen, reason = int(min(rng.lognormal(np.log(gc.median[k, i]), gc.sigma), spec.max_tokens - 1)), "stop"
    queue = float(o["queue"][k, i]) * float(rng.lognormal(0, 0.5))
    prefill = prompt / spec.prefill_tok_s * float(o["prefill_slow"][k, i])
    ttft = queue + 0.015 + prefill * float(rng.lognormal(0, 0.2))
    tpot = float(o["tpot"][k, i]) * float(rng.lognormal(0, 0.1))
    error = None
    if rng.random() < float(o["abort"][k, i]):
        reason, error = "abort", ("timeout" if queue > 10 else None)
        gen = int(gen * rng.uniform(0, 0.5))
    return {"k": k, "pod": pod, "model": spec.name, "error": error, "prompt": max(prompt, 1), "gen": max(gen, 1),
            "reason": reason, "queue": queue, "ttft": ttft, "e2e": ttft + gen * tpot,
            "max_tokens": spec.max_tokens,
            "output": output_messages([k, i, prompt, gen], reason,
                                      max(length_share - BASE_LENGTH_SHARE, 0.0) / max(length_share, 1e-9))}


def _llm_spans(tr: _Trace, pods: dict[str, Pod], parent: str, call: dict[str, Any], cursor: int,
               logs: list[LogRecord]) -> int:
    rng = tr.rng
    router = pods["llm-router"]
    pod, model = call["pod"], call["model"]
    r0 = cursor
    c0 = r0 + int(rng.uniform(0.5, 2) * MS)
    err = call["error"]
    if err == "503":
        c1 = c0 + int(rng.uniform(1, 4) * MS)
        v = None
    else:
        v0 = c0 + int(0.4 * MS)
        v1 = v0 + int(call["e2e"] * 1e9)
        c1 = v1 + int(0.4 * MS)
        v = (v0, v1)
    r1 = c1 + int(rng.uniform(0.3, 1) * MS)
    rsid = tr.add(parent, router, "llm-router", "route", "server", r0, r1,
                  {"gen_ai.request.model": model, "llm_router.upstream": pod.name},
                  "503" if err == "503" else ("504" if err else None))
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "vllm", "gen_ai.request.model": model,
            "server.address": pod.ip, "server.port": 8000}
    if v:
        chat.update({"gen_ai.request.max_tokens": call["max_tokens"], "gen_ai.usage.input_tokens": call["prompt"],
                     "gen_ai.usage.output_tokens": call["gen"], "gen_ai.response.model": model,
                     "gen_ai.response.finish_reasons": [call["reason"]]})
        if call["output"] is not None:
            chat["gen_ai.output.messages"] = call["output"]
    csid = tr.add(rsid, router, "llm-router", f"chat {model}", "client", c0, c1, chat, err)
    if err == "503":
        logs.append(pod_log(c1, router, "ERROR",
                            f"upstream {pod.name} ({pod.ip}:8000) request failed: connection refused; "
                            f"returning 503 model={model}", tr.trace_id, csid))
    if v:
        tr.add(csid, pod, "vllm", "llm_request", "server", v[0], v[1],
               {"gen_ai.request.id": f"chatcmpl-{rng.bytes(8).hex()}", "gen_ai.response.model": model,
                "gen_ai.request.max_tokens": call["max_tokens"], "gen_ai.usage.prompt_tokens": call["prompt"],
                "gen_ai.usage.completion_tokens": call["gen"], "gen_ai.latency.time_in_queue": round(call["queue"], 4),
                "gen_ai.latency.time_to_first_token": round(call["ttft"], 4),
                "gen_ai.latency.e2e": round(call["e2e"], 4), "gen_ai.response.finish_reasons": [call["reason"]]})
    return r1 + int(0.3 * MS)
