"""Faults of the LLM workload itself: long prompts, token loops, prompt drift."""

from __future__ import annotations

import numpy as np

from rca.sim.faults import Fault, FaultCtx
from rca.sim.latent import Comp, Latent
from rca.sim.logs import pod_log
from rca.sim.serving import BASE_LENGTH_SHARE
from rca.sim.topology import MODELS, Fleet
from rca.sim.workload import STEP
from rca.types import EntityId

__all__ = ["LongPromptSurge", "PromptDrift", "TokenLoop"]

PREEMPT_MSG = ("Sequence group {seq} is preempted by PreemptionMode.RECOMPUTE mode because there is not "
               "enough KV cache space. This can affect the end-to-end performance. Increase "
               "gpu_memory_utilization or tensor_parallel_size to provide more KV cache memory. "
               "total_num_cumulative_preemption={total}")


def _pod_rows(lat: Latent, target: EntityId) -> list[int]:
    """vLLM pod rows serving ``target`` (a pod or a model entity)."""
    llm = lat.llm
    assert llm is not None
    return [k for k, p in enumerate(llm.pods) if target in (p.eid, p.group)]


def _add_gen_share(lat: Latent, rows: list[int], extra: np.ndarray, tag: str) -> None:
    """Move ``extra`` (T,) of the requests of ``rows`` from ``stop`` to ``tag`` finishes."""
    llm = lat.llm
    assert llm is not None
    stop = next(c for c in llm.gen if c.tag == "stop")
    other = next(c for c in llm.gen if c.tag == tag)
    for k in rows:
        moved = np.minimum(extra, stop.weight[k])
        stop.weight[k] = stop.weight[k] - moved
        other.weight[k] = other.weight[k] + moved


def _pin_tenant(lat: Latent, row: int, share: float, env: np.ndarray, factor: float) -> None:
    """A tenant (``share`` of its model's traffic, normally spread over the replicas) starts
    sending ``factor`` x longer prompts with a shared prefix; prefix-aware routing pins all of
    its requests to replica ``row``."""
    llm = lat.llm
    assert llm is not None
    peers = [k for k, p in enumerate(llm.pods) if p.model == llm.pods[row].model]
    tenant = share * env * llm.lam[peers].sum(axis=0)
    for k in peers:
        llm.lam[k] = llm.lam[k] * (1 - share * env)
    llm.lam[row] = llm.lam[row] + tenant
    base = llm.prompt[0]
    w = np.zeros_like(base.weight)
    w[row] = tenant / np.maximum(llm.lam[row], 1e-9)
    base.weight[row] = base.weight[row] * (1 - w[row])
    llm.prompt.append(Comp(w, base.median * factor, 0.35, "tenant", cap=base.cap))


class LongPromptSurge(Fault):
    """A tenant (25 % of a 70b's / 35 % of an 8b's traffic) switches to ~6x longer prompts with a shared
    prefix; prefix-aware routing pins all of them to one replica, whose KV cache runs out."""

    kind = "long_prompt_surge"
    default_magnitude = 6.0

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [p.eid for p in fleet.vllm_pods]

    def inputs(self, c: FaultCtx) -> None:
        row = _pod_rows(c.lat, c.target)[0]
        llm = c.lat.llm
        assert llm is not None
        default = 0.25 if llm.specs[row].tp > 1 else 0.35  # a decode-bound 8b needs a bigger tenant
        share = float(c.params.get("tenant_share", default))
        _pin_tenant(c.lat, row, share, c.env(ramp=4), c.magnitude)

    def logs(self, c: FaultCtx) -> None:
        llm = c.lat.llm
        assert llm is not None
        for k in _pod_rows(c.lat, c.target):
            pod = llm.pods[k]
            marks = np.floor(np.cumsum(llm.out["preempt"][k] * STEP) / 50).astype(int)
            new = np.diff(marks, prepend=0)
            seq = 40_000 + np.cumsum(llm.out["lam_eff"][k] * STEP).astype(int)
            for idx in np.flatnonzero(new > 0):
                for j in range(min(int(new[idx]), 4)):
                    body = PREEMPT_MSG.format(seq=int(seq[idx]) - 7 * j, total=50 * (marks[idx] - j))
                    c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), pod, "WARN", body))


class TokenLoop(Fault):
    """A prompt-template change makes one model loop until ``max_tokens`` (the token black hole)."""

    kind = "token_loop"
    default_magnitude = 0.6

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [f"model:{m.name}" for m in MODELS]

    def inputs(self, c: FaultCtx) -> None:
        extra = max(c.magnitude - BASE_LENGTH_SHARE, 0.0) * c.env(ramp=6)
        _add_gen_share(c.lat, _pod_rows(c.lat, c.target), extra, "length")

    def logs(self, c: FaultCtx) -> None:
        model = c.target.split(":", 1)[1]
        spec = next(m for m in MODELS if m.name == model)
        orch = c.lat.fleet.pods_of("orchestrator")
        for idx in c.active_steps(delay=2)[::2]:
            pod = orch[int(c.rng.integers(0, len(orch)))]
            body = (f"llm response truncated finish_reason=length model={model} "
                    f"completion_tokens={spec.max_tokens} max_tokens={spec.max_tokens}")
            c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), pod, "WARN", body))


class PromptDrift(Fault):
    """A new client feature sends ~2.5x longer prompts (median) to every replica of one model."""

    kind = "prompt_drift"
    default_magnitude = 2.5

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [f"model:{m.name}" for m in MODELS]

    def inputs(self, c: FaultCtx) -> None:
        llm = c.lat.llm
        assert llm is not None
        base = llm.prompt[0]
        share = np.zeros_like(base.weight)
        for k in _pod_rows(c.lat, c.target):
            share[k] = c.env(ramp=20)      # the feature rolls out to all clients over ~5 min
            base.weight[k] = base.weight[k] * (1 - share[k])
        # prompts = the usual ones plus a sizeable attached context: longer and less spread out
        llm.prompt.append(Comp(share, base.median * c.magnitude, 0.3, "drifted", cap=base.cap))
