"""Request flow through the non-vLLM services: rates, own latencies, composition, errors.

Every gateway request goes to the orchestrator, which does two cache lookups, a retrieval
(80 %: embedder + two vector-db queries), one LLM call through the router (70 % llama-3-70b,
30 % llama-3-8b), an optional tool call (web-search 30 %, code-exec 10 %) and a postgres
write. A caller's latency distribution is its own time plus its children's, composed as a
mixture (LLM finish classes x tool outcomes) with the children seen one step late, so a
fault's own signal always moves before its dependents'. Errors propagate upwards with
per-edge probabilities, keeping the status code (500/503/504). Bystanders of a varied fleet
(``Latent.extras``) are leaves: their mean time (one step late) adds to their caller's own
part, and a share of their errors propagates to it.
"""

from __future__ import annotations

import numpy as np

from rca.sim.latent import Comp, Latent, SvcState, lag, mix_mean
from rca.sim.serving import BASE_ABORT_SHARE
from rca.sim.workload import ar1, rng_for

__all__ = ["FANOUT", "TOOLS", "base_services", "compose_services", "leaf_mix"]

FANOUT = {"api-gateway": 1.0, "orchestrator": 1.0, "rag-retriever": 0.8, "embedder": 0.8,
          "vector-db": 1.6, "llm-router": 1.0, "mcp-web-search": 0.3, "mcp-code-exec": 0.1,
          "cache": 2.0, "postgres": 1.0}
OWN_S = {"api-gateway": 0.005, "orchestrator": 0.020, "rag-retriever": 0.015, "embedder": 0.010,
         "vector-db": 0.025, "llm-router": 0.003, "mcp-web-search": 0.300, "mcp-code-exec": 0.800,
         "cache": 0.001, "postgres": 0.005}
SIGMA = {"api-gateway": 0.3, "orchestrator": 0.45, "rag-retriever": 0.4, "embedder": 0.35,
         "vector-db": 0.45, "llm-router": 0.45, "mcp-web-search": 0.5, "mcp-code-exec": 0.5,
         "cache": 0.4, "postgres": 0.45}
TOOLS = (("mcp-web-search", 0.3), ("mcp-code-exec", 0.1))
BASE_ERROR = 0.001


def base_services(lat: Latent) -> None:
    rng = rng_for(lat.seed, "services")
    n = lat.n
    rel_load = lat.load / np.mean(lat.load)
    table = [(wire, fan, OWN_S[wire], SIGMA[wire]) for wire, fan in FANOUT.items()]
    table += [(x.wire, x.fanout, x.own_s, x.sigma) for x in lat.extras]
    for wire, fan, own_s, sigma in table:
        own = own_s * (1 + 0.15 * (rel_load - 1)) * np.exp(ar1(rng, (n,), 0.04 * lat.noise, 10))
        err_level = BASE_ERROR * np.exp(0.3 * rng.standard_normal())
        split = np.array([0.6, 0.25, 0.15])[:, None]        # codes 500, 503, 504
        err = split * err_level * np.exp(ar1(rng, (n,), 0.3 * lat.noise, 6))[None, :]
        lat.svc[wire] = SvcState(lat.load * fan, own, sigma, err_own=err)


def leaf_mix(s: SvcState) -> list[Comp]:
    rest = 1 - sum((c.weight for c in s.extra), np.zeros_like(s.own))
    return [Comp(np.clip(rest, 0, 1), s.own, s.sigma), *s.extra]


def _with_extra(mix: list[Comp], extra: list[Comp]) -> list[Comp]:
    """Make room for fault components (e.g. fast failures) in a composed mixture."""
    if not extra:
        return mix
    keep = np.clip(1 - sum(e.weight for e in extra), 0, 1)
    return [Comp(c.weight * keep, c.median, c.sigma, c.tag) for c in mix] + extra


def _sum(parts: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, float]:
    """Median and shape of a sum of lognormal parts ((median, sigma) pairs): medians add, the
    relative spread is the parts' spreads combined by their size (one number per component)."""
    med = sum(m for m, _ in parts)
    spread = np.sqrt(sum((m * s) ** 2 for m, s in parts)) / np.maximum(med, 1e-12)
    return med, float(np.median(spread))


def _typ(s: SvcState) -> np.ndarray:
    return mix_mean(s.mix)


def _extra_children(lat: Latent, caller: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean time and error shares that ``caller``'s bystanders add per caller request (lagged),
    or None when it has none."""
    xs = lat.extras_of(caller)
    if not xs:
        return None
    per = {x.wire: x.fanout / FANOUT[caller] for x in xs}
    t = sum(lag(k * _typ(lat.svc[w])) for w, k in per.items())
    err = sum(0.5 * min(k, 1.0) * lag(lat.svc[w].err) for w, k in per.items())
    return np.asarray(t), np.asarray(err)


def compose_services(lat: Latent) -> None:
    """Fill ``mix`` and ``err`` of every service from own values, children and the LLMs."""
    sv, llm = lat.svc, lat.llm
    assert llm is not None
    for wire in ("embedder", "vector-db", "mcp-web-search", "mcp-code-exec", "cache", "postgres",
                 *(x.wire for x in lat.extras)):
        sv[wire].mix = leaf_mix(sv[wire])
        sv[wire].err = sv[wire].err_own
    rag = sv["rag-retriever"]
    rag_children = lag(_typ(sv["embedder"]) + 2 * _typ(sv["vector-db"]))
    rag_extra = _extra_children(lat, "rag-retriever")
    if rag_extra is not None:
        rag_children = rag_children + rag_extra[0]
    rag.mix = [Comp(c.weight, *_sum([(c.median, c.sigma), (rag_children, 0.3)])) for c in leaf_mix(rag)]
    rag.err = rag.err_own + 0.9 * lag(sv["embedder"].err + 1.6 * sv["vector-db"].err)
    if rag_extra is not None:
        rag.err = rag.err + rag_extra[1]

    # router: one component per (replica, finish class), weighted by routed traffic
    router = sv["llm-router"]
    lam = llm.lam * llm.alive
    total = np.maximum(lam.sum(axis=0), 1e-9)
    router.mix = [Comp(lag(lam[p] / total * c.weight[p]),
                       *_sum([(router.own, router.sigma), (lag(c.median[p]), c.sigma)]))
                  for c in llm.comps["e2e"] for p in range(len(llm.pods))]
    fail = (llm.lam * llm.fail).sum(axis=0) / np.maximum(llm.lam.sum(axis=0), 1e-9)
    gave_up = (lam * (llm.out["abort"] - BASE_ABORT_SHARE)).sum(axis=0) / total * 0.9
    router.err = router.err_own + lag(np.stack([np.zeros_like(fail), fail, gave_up]))

    orch = sv["orchestrator"]
    fixed = (orch.own + lag(2 * _typ(sv["cache"]) + 0.8 * _typ(rag) + _typ(sv["postgres"])))
    orch_extra = _extra_children(lat, "orchestrator")
    if orch_extra is not None:
        fixed = fixed + orch_extra[0]
    tool_opts: list[tuple[np.ndarray, np.ndarray, float]] = [
        (np.full(lat.n, 1 - sum(f for _, f in TOOLS)), np.zeros(lat.n), 0.0)]
    for wire, frac in TOOLS:
        tool_opts += [(frac * lag(c.weight), lag(c.median), c.sigma) for c in sv[wire].mix]
    orch.mix = _with_extra([Comp(rc.weight * tw, *_sum([(fixed, orch.sigma), (rc.median, rc.sigma), (tm, ts)]))
                            for rc in router.mix for tw, tm, ts in tool_opts], orch.extra)
    tool_err = sum(frac * sv[wire].err for wire, frac in TOOLS)
    orch.err = (orch.err_own + 0.9 * lag(router.err) + 0.3 * lag(tool_err) + 0.4 * lag(rag.err)
                + 0.5 * lag(sv["postgres"].err))
    if orch_extra is not None:
        orch.err = orch.err + orch_extra[1]

    gw = sv["api-gateway"]
    gw_extra = _extra_children(lat, "api-gateway")
    gw_parts = [] if gw_extra is None else [(gw_extra[0], 0.3)]
    gw.mix = [Comp(c.weight, *_sum([(c.median, c.sigma), (gw.own, gw.sigma), *gw_parts])) for c in orch.mix]
    gw.err = gw.err_own + orch.err
    if gw_extra is not None:
        gw.err = gw.err + gw_extra[1]
    for s in sv.values():
        s.err = np.clip(s.err, 0, 0.95)
