"""Fault kinds: what each injected fault changes, in causal order (the kinds themselves live in
``faults_llm``, ``faults_gpu`` and ``faults_svc``; ``scenarios.FAULTS`` registers them).

A fault acts through hooks, called in pipeline order: ``fleet`` (pods and their lifecycles),
``inputs`` (before the vLLM model
is solved: routing, token mixes, GPU slowdowns), ``services`` (before the call graph is
composed: own latencies, errors), ``resources`` (CPU, memory, GPUs) and ``logs``. Effects
follow an envelope that starts at the onset step, so the faulted entity's own signals move
first and its dependents follow through the model (one step later per hop). Each fault lasts
``duration_s`` (default 1200 s, usually past the window end), except ``xid``: a GPU that fell
off the bus stays gone.

| kind | eligible targets (``auto`` picks one by seed) | magnitude |
|---|---|---|
| ``long_prompt_surge`` | vLLM pods | prompt length factor of the tenant (6) |
| ``xid`` | GPUs of llama-3-70b replicas | - |
| ``thermal`` | GPUs used by a vLLM pod | TPOT slowdown of the pod (1.7) |
| ``vector_db_cpu`` | ``db:vector-db`` | latency factor (10) |
| ``tool_timeout`` | MCP tools | share of calls timing out at 30 s (0.6) |
| ``token_loop`` | models | ``finished_reason=length`` share (0.6) |
| ``bad_deploy`` | ``service:orchestrator`` | 5xx share of the new version (0.2) |
| ``noisy_neighbor`` | the batch-embed pod | TPOT slowdown of the co-located replica (2) |
| ``prompt_drift`` | models | prompt length factor (2.5) |
| ``none`` | - | - |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rca.sim.latent import Latent
from rca.sim.topology import Fleet
from rca.types import EntityId

__all__ = ["Fault", "FaultCtx"]


@dataclass
class FaultCtx:
    lat: Latent
    target: EntityId
    start: int                  # onset step index
    end: int                    # index where the fault ends (may be past the window)
    magnitude: float
    rng: np.random.Generator
    params: Mapping[str, Any] = field(default_factory=dict)

    def env(self, ramp: int = 2, delay: int = 0) -> np.ndarray:
        """0 before onset+delay, linear up over ``ramp`` steps, 1 until the end, then down."""
        i = np.arange(self.lat.n)
        up = np.clip((i - self.start - delay + 1) / ramp, 0, 1)
        return np.minimum(up, np.clip((self.end + delay - i) / ramp, 0, 1))

    def t_ns(self, idx: int, offset_s: float = 0.0) -> int:
        return int((int(self.lat.tl.ts[min(idx, self.lat.n - 1)]) + offset_s) * 1e9)

    def active_steps(self, delay: int = 0) -> np.ndarray:
        return np.arange(self.start + delay, min(self.end + delay, self.lat.n))


class Fault:
    """Base: no effect. Subclasses set ``kind`` and override the hooks they need."""

    kind: ClassVar[str] = "none"
    default_magnitude: ClassVar[float] = 1.0

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return []

    def fleet(self, c: FaultCtx) -> None:
        """Change the fleet itself (new pods of a rollout) and pod lifecycles (``lat.alive``)."""

    def inputs(self, c: FaultCtx) -> None: ...

    def services(self, c: FaultCtx) -> None: ...

    def resources(self, c: FaultCtx) -> None: ...

    def logs(self, c: FaultCtx) -> None: ...
