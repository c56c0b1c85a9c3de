"""Log lines: a low background of INFO/WARN per service over the whole window, plus helpers
that faults and traces use for their own lines. ``entity`` is ``pod:<pod>`` for container
logs and ``node:<node>`` for kernel logs; attributes carry Loki-style stream labels.
"""

from __future__ import annotations

import numpy as np

from rca.sim.latent import Latent
from rca.sim.topology import NAMESPACE, Pod
from rca.sim.workload import STEP, rng_for
from rca.types import LogRecord

__all__ = ["background_logs", "node_log", "pod_log"]


def pod_log(ts_ns: int, pod: Pod, severity: str, body: str, trace_id: str | None = None,
            span_id: str | None = None) -> LogRecord:
    attrs = {"service": pod.wire, "pod": pod.name, "namespace": NAMESPACE, "container": pod.container,
             "level": severity.lower()}
    return LogRecord(int(ts_ns), pod.eid, severity, body, trace_id, span_id, attrs)


def node_log(ts_ns: int, node: str, severity: str, body: str) -> LogRecord:
    return LogRecord(int(ts_ns), f"node:{node}", severity, body, None, None,
                     {"source": "kernel", "node": node, "level": severity.lower()})


BENIGN_WARN = {
    "api-gateway": ["client closed connection before response was sent status=499 route=/v1/chat/completions",
                    "rate limit close to quota tenant=t-{n} used=0.9{n}"],
    "orchestrator": ["retrying cache GET after transient error attempt=1/3 error=ConnectionResetError",
                     "agent step budget nearly exhausted steps=7/8 session=s-{n}"],
    "rag-retriever": ["reranker skipped: candidate list shorter than top_k=8 (got {n})"],
    "embedder": ["input truncated to 512 tokens (was {n}00)"],
    "vector-db": ["slow search request took {n}0ms collection=docs-v3"],
    "llm-router": ["upstream health probe slow upstream={vllm} latency_ms=2{n}0"],
    "mcp-web-search": ["search provider returned partial results provider=brave results={n}"],
    "mcp-code-exec": ["sandbox warm pool below target pool=3 target=4"],
    "cache": ["Client id={n}1 addr=10.244.1.{n}:4{n}12 closed for idle timeout"],
    "postgres": ["checkpoints are occurring too frequently (2{n} seconds apart)"],
}
INFO = {
    "cache": "DB saved on disk, {n} keys in 1 database",
    "postgres": "checkpoint complete: wrote {n}31 buffers (0.{n}%); 0 WAL file(s) added",
    "vector-db": "optimizer status ok collection=docs-v3 segments=1{n} indexed_vectors=2{n}41822",
    "mcp-web-search": "tools/list served tools=1 session=m-{n}",
    "mcp-code-exec": "sandbox recycled id=sb-{n}f2 runtime_s=6{n}",
    "embedder": "batch served size={n} model=all-minilm-l6-v2",
    "rag-retriever": "index stats refreshed collection=docs-v3 shards=2",
    "llm-router": "pool status healthy_upstreams=5/5",
    "api-gateway": "config reloaded routes=4",
    "orchestrator": "tool registry refreshed tools=2",
}


def background_logs(lat: Latent) -> list[LogRecord]:
    """Periodic INFO lines, vLLM stats lines every 60 s and rare benign WARNs."""
    rng = rng_for(lat.seed, "logs")
    ts = lat.tl.ts
    out: list[LogRecord] = []
    vllm_names = [p.name for p in lat.fleet.vllm_pods]
    info = {**INFO, **{x.wire: x.info for x in lat.extras}}
    warn = {**BENIGN_WARN, **{x.wire: list(x.warn) for x in lat.extras}}
    for pod in lat.fleet.pods:
        if pod.model or pod.wire == "batch-embed":
            continue
        alive = lat.alive[pod.name]
        for idx in np.flatnonzero((rng.random(len(ts)) < 1 / 20) & alive):
            body = info[pod.wire].format(n=int(rng.integers(1, 9)))
            out.append(pod_log(_ns(ts[idx], rng), pod, "INFO", body))
        for idx in np.flatnonzero((rng.random(len(ts)) < 1 / 160) & alive):
            tmpl = warn[pod.wire][int(rng.integers(0, len(warn[pod.wire])))]
            body = tmpl.format(n=int(rng.integers(1, 9)), vllm=vllm_names[int(rng.integers(0, 5))])
            out.append(pod_log(_ns(ts[idx], rng), pod, "WARN", body))
    llm = lat.llm
    assert llm is not None
    o = llm.out
    for k, pod in enumerate(llm.pods):
        for idx in np.flatnonzero((np.arange(len(ts)) % 4 == k % 4) & llm.alive[k]):
            lam = o["lam_eff"][k, idx]
            body = (f"Engine 000: Avg prompt throughput: {lam * o['prompt_mean'][k, idx]:.1f} tokens/s, "
                    f"Avg generation throughput: {lam * o['gen_mean'][k, idx]:.1f} tokens/s, "
                    f"Running: {int(round(o['running'][k, idx]))} reqs, "
                    f"Waiting: {int(round(o['waiting'][k, idx]))} reqs, "
                    f"GPU KV cache usage: {100 * o['kv'][k, idx]:.1f}%, "
                    f"Prefix cache hit rate: {rng.uniform(38, 46):.1f}%")
            out.append(pod_log(_ns(ts[idx], rng), pod, "INFO", body))
    batch = lat.fleet.batch_pod
    idle = lat.batch_items if lat.batch_items is not None else np.zeros(len(ts))
    for idx in np.flatnonzero((np.arange(len(ts)) % 40 == 7) & (idle < 1)):
        out.append(pod_log(_ns(ts[idx], rng), batch, "INFO", "no pending shards, sleeping 600s"))
    return out


def _ns(t_s: int, rng: np.random.Generator) -> int:
    """A random instant inside the step ending at ``t_s``."""
    return int(t_s) * 1_000_000_000 - int(rng.integers(0, STEP * 1_000_000_000))
