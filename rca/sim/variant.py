"""Opt-in fleet variation (``simulate(..., vary=True)``): one seed, one fleet shape.

A ranker tuned on one fleet learns its names and levels, not causes. A varied run draws, from
its own stream ``rng_for(seed, "variant")``:

* replicas of every non-vLLM service: 1-3 each, raised where the drawn load needs more (an
  operator sizes a service so its pods stay <= ``CPU_HEADROOM`` of their CPU limit at a burst
  on the daily peak; the default fleet runs below that too);
* 0-4 healthy bystanders from ``BYSTANDERS`` (services, a database, an MCP tool), wired into
  the call graph under the gateway, the orchestrator or the retriever, with their own metrics,
  spans and logs, 1-3 replicas each;
* a load level: gateway requests/s x 0.5-2 (log-uniform);
* a noise scale: the latent noise terms (AR(1) sigmas, jitters) x 0.5-2 (log-uniform);
* a GPU placement: the three llama-3-70b replicas on three of the six 4-GPU halves of the GPU
  nodes, the two llama-3-8b replicas on one GPU each of two other halves (the second one
  time-sliced with the batch-embed job). Every fault kind keeps its eligible targets.

``Variant()`` is the fixed default shape: a run with it is the same as before variation existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rca.sim.topology import CALLS, GPU_NODES, PLACEMENT, SERVICES, Placement, ServiceSpec
from rca.sim.workload import rng_for
from rca.types import EntityId

__all__ = ["BYSTANDERS", "Bystander", "Variant", "draw_variant", "min_replicas"]

LOAD_RANGE = (0.5, 2.0)
NOISE_RANGE = (0.5, 2.0)
REPLICAS = (1, 3)
MAX_BYSTANDERS = 4
CPU_HEADROOM = 0.6
PEAK_FACTOR = 1.3 * 1.5      # daily peak x the largest normal burst (``workload.gateway_load``)


@dataclass(frozen=True)
class Bystander:
    """A healthy extra service. ``caller``: wire name of the service that calls it; ``fanout``:
    its calls per gateway request (< 1 = called by that share of requests); ``own_s``/``sigma``:
    its lognormal latency; ``span``/``attrs``: its server span; ``info``/``warn``: log templates
    (``{n}`` is a small number)."""

    spec: ServiceSpec
    caller: str
    fanout: float
    own_s: float
    sigma: float
    span: str
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    info: str = ""
    warn: tuple[str, ...] = ()

    @property
    def wire(self) -> str:
        return self.spec.wire

    @property
    def is_tool(self) -> bool:
        return self.spec.eid.startswith("tool:")


BYSTANDERS = (
    Bystander(ServiceSpec("service:auth", "auth", 1, 0.04, 0.002, 160, "3.2.0"), "api-gateway", 1.0, 0.004, 0.3,
              "POST /v1/token/verify", {"http.request.method": "POST", "http.route": "/v1/token/verify"},
              "jwks refreshed keys={n}", ("token close to expiry tenant=t-{n} ttl_s={n}0",)),
    Bystander(ServiceSpec("service:usage-meter", "usage-meter", 1, 0.03, 0.001, 120, "0.8.1"), "api-gateway", 1.0,
              0.002, 0.35, "POST /v1/usage", {"http.request.method": "POST", "http.route": "/v1/usage"},
              "flushed usage batch records={n}00", ("usage batch flush slow duration_ms={n}50",)),
    Bystander(ServiceSpec("service:guardrails", "guardrails", 1, 0.1, 0.015, 900, "1.1.3"), "orchestrator", 1.0,
              0.012, 0.4, "POST /v1/check", {"http.request.method": "POST", "http.route": "/v1/check"},
              "policy bundle loaded rules=4{n}", ("input flagged for review category=pii score=0.{n}",)),
    Bystander(ServiceSpec("db:feature-store", "feature-store", 1, 0.05, 0.0008, 1800, "7.2.4"), "orchestrator", 1.0,
              0.002, 0.4, "HGETALL", {"db.system": "redis", "db.operation.name": "HGETALL"},
              "background saving terminated with success keys={n}k", ("slow command HGETALL took {n}2ms",)),
    Bystander(ServiceSpec("tool:calculator", "mcp-calculator", 1, 0.03, 0.01, 140, "0.1.9"), "orchestrator", 0.05,
              0.02, 0.4, "tools/call calculator", {}, "tools/list served tools=1 session=m-{n}",
              ("expression rejected: too long len={n}00",)),
    Bystander(ServiceSpec("service:reranker", "reranker", 1, 0.15, 0.02, 1100, "0.3.0"), "rag-retriever", 0.8,
              0.008, 0.35, "rerank", {"gen_ai.operation.name": "rerank", "gen_ai.request.model": "bge-reranker-base"},
              "reranker warm batch={n}", ("candidate list truncated to 64 (got {n}0)",)),
)
_CALLER_EID = {"api-gateway": "service:api-gateway", "orchestrator": "service:orchestrator",
               "rag-retriever": "service:rag-retriever"}


@dataclass(frozen=True)
class Variant:
    """A fleet shape. ``replicas``: wire name -> replicas (missing = the default);
    ``extras``: bystanders; ``load``/``noise``: factors; ``placement``: vLLM pod -> GPUs."""

    replicas: dict[str, int] = field(default_factory=dict, hash=False)
    extras: tuple[Bystander, ...] = ()
    load: float = 1.0
    noise: float = 1.0
    placement: Placement = field(default_factory=lambda: dict(PLACEMENT), hash=False)
    varied: bool = False

    @property
    def services(self) -> tuple[ServiceSpec, ...]:
        """The non-vLLM service specs: defaults with this variant's replicas, then the extras."""
        if not self.replicas and not self.extras:
            return SERVICES
        base = tuple(replace(s, replicas=self.replicas.get(s.wire, s.replicas)) for s in SERVICES)
        return base + tuple(replace(x.spec, replicas=self.replicas.get(x.wire, x.spec.replicas))
                            for x in self.extras)

    @property
    def calls(self) -> tuple[tuple[EntityId, EntityId], ...]:
        return CALLS + tuple((_CALLER_EID[x.caller], x.spec.eid) for x in self.extras)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (what a bench reports beside its scores)."""
        services = self.services
        return {"varied": self.varied,
                "replicas": {s.wire: s.replicas for s in services},
                "extras": [x.spec.eid for x in self.extras],
                "service_pods": sum(s.replicas for s in services),
                "load": round(self.load, 3), "noise": round(self.noise, 3),
                "placement": {pod: f"{node}:{','.join(map(str, idx))}"
                              for pod, (node, idx) in sorted(self.placement.items())}}


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _placement(rng: np.random.Generator) -> Placement:
    """70b replicas on three 4-GPU halves; each 8b replica on one GPU of another half."""
    halves = [(node, h) for node in GPU_NODES for h in (0, 1)]
    order = rng.permutation(len(halves))
    out: Placement = {}
    for r in range(3):
        node, h = halves[order[r]]
        out[f"vllm-llama-3-70b-{r}"] = (node, tuple(range(4 * h, 4 * h + 4)))
    for r in range(2):
        node, h = halves[order[3 + r]]
        out[f"vllm-llama-3-8b-{r}"] = (node, (4 * h + int(rng.integers(0, 4)),))
    return out


def min_replicas(spec: ServiceSpec, fanout: float, load: float) -> int:
    """Fewest pods that keep each one at <= ``CPU_HEADROOM`` of its limit at peak load."""
    from rca.sim.workload import BASE_RPS

    rps = BASE_RPS * load * PEAK_FACTOR * fanout
    per_pod = CPU_HEADROOM * spec.cpu_limit - spec.cpu_base
    return max(1, int(np.ceil(spec.cpu_per_rps * rps / max(per_pod, 1e-9))))


def draw_variant(seed: int) -> Variant:
    """The variant of ``seed`` (its own stream: the other stages draw as without variation)."""
    rng = rng_for(seed, "variant")
    lo, hi = REPLICAS
    replicas = {s.wire: int(rng.integers(lo, hi + 1)) for s in SERVICES}
    n_extra = int(rng.integers(0, MAX_BYSTANDERS + 1))
    picked = sorted(rng.choice(len(BYSTANDERS), size=n_extra, replace=False).tolist())
    extras = tuple(BYSTANDERS[i] for i in picked)
    replicas.update({x.wire: int(rng.integers(lo, hi + 1)) for x in extras})
    load = _log_uniform(rng, LOAD_RANGE)
    noise = _log_uniform(rng, NOISE_RANGE)
    from rca.sim.services import FANOUT  # services -> latent -> this module: import when used

    fan = {**FANOUT, **{x.wire: x.fanout for x in extras}}
    specs = {s.wire: s for s in (*SERVICES, *(x.spec for x in extras))}
    replicas = {w: max(n, min_replicas(specs[w], fan[w], load)) for w, n in replicas.items()}
    return Variant(replicas, extras, load, noise, _placement(rng), varied=True)
