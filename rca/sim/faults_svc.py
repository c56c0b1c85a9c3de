"""Faults of the application services: vector-db CPU saturation, MCP tool timeouts, a bad deploy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rca.sim.faults import Fault, FaultCtx
from rca.sim.latent import Comp
from rca.sim.logs import pod_log
from rca.sim.topology import SERVICES, Fleet, k8s_suffix, make_inventory
from rca.sim.workload import STEP
from rca.types import EntityId

__all__ = ["NEW_ORCHESTRATOR_VERSION", "BadDeploy", "ToolTimeout", "VectorDbCpu"]

NEW_ORCHESTRATOR_VERSION = "1.15.0"
TRACEBACK = ("Unhandled exception in POST /v1/agent/invoke: KeyError: 'tool_choice'\n"
             "Traceback (most recent call last):\n"
             '  File "/app/orchestrator/server.py", line 88, in invoke\n'
             "    result = await agent.run(request)\n"
             '  File "/app/orchestrator/planner.py", line 214, in plan\n'
             '    tool = self.tools[step["tool_choice"]]\n'
             "KeyError: 'tool_choice'")


def _wire(eid: EntityId) -> str:
    return next(s.wire for s in SERVICES if s.eid == eid)


def _volume(c: FaultCtx, rate: np.ndarray, cap: int, delay: int = 0) -> list[tuple[int, int]]:
    """(step, lines) for a sampled log volume: Poisson(rate x step) capped per step."""
    steps = c.active_steps(delay)
    counts = np.minimum(c.rng.poisson(np.maximum(rate[steps], 0) * STEP), cap)
    return [(int(i), int(k)) for i, k in zip(steps, counts, strict=True) if k]


class VectorDbCpu(Fault):
    """Segment compaction saturates the vector database's CPU; searches slow down 8-15x."""

    kind = "vector_db_cpu"
    default_magnitude = 10.0

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return ["db:vector-db"]

    def services(self, c: FaultCtx) -> None:
        vdb = c.lat.svc["vector-db"]
        vdb.extra.append(Comp(c.env(ramp=3), vdb.own * c.magnitude, 0.6, "cpu_starved"))

    def resources(self, c: FaultCtx) -> None:
        spec = next(s for s in c.lat.fleet.services if s.wire == "vector-db")
        for pod in c.lat.fleet.pods_of("vector-db"):
            env = c.env(ramp=2)
            full = spec.cpu_limit * c.rng.uniform(0.95, 1.0, c.lat.n)
            c.lat.cpu[pod.name] = c.lat.cpu[pod.name] + (full - c.lat.cpu[pod.name]) * env
            c.lat.mem[pod.name] = c.lat.mem[pod.name] * (1 + 0.12 * env)

    def logs(self, c: FaultCtx) -> None:
        fleet = c.lat.fleet
        vdb = fleet.pods_of("vector-db")[0]
        c.lat.logs.append(pod_log(c.t_ns(c.start, -5.0), vdb, "INFO",
                                  "Optimizer 'merge' started for collection docs-v3: 14 segments"))
        for idx in c.active_steps()[::2]:
            body = (f"segment compaction running collection=docs-v3 segments={int(c.rng.integers(9, 15))} "
                    "optimizer=merge threads=4 cpu_budget=exhausted")
            c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), vdb, "WARN", body))
        rag = fleet.pods_of("rag-retriever")
        for idx, k in _volume(c, np.full(c.lat.n, 0.1), 2, delay=1):
            for _ in range(k):
                ms = int(c.lat.svc["vector-db"].own[idx] * c.magnitude * 1000 * c.rng.uniform(1.5, 4))
                body = f"vector search slow duration_ms={ms} collection=docs-v3 top_k=8"
                pod = rag[int(c.rng.integers(0, len(rag)))]
                c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), pod, "WARN", body))


class ToolTimeout(Fault):
    """An MCP tool's upstream hangs: ~60 % of its calls time out at 30 s."""

    kind = "tool_timeout"
    default_magnitude = 0.6

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return ["tool:web-search", "tool:code-exec"]

    def services(self, c: FaultCtx) -> None:
        tool = c.lat.svc[_wire(c.target)]
        share = c.magnitude * c.env(ramp=2)
        tool.extra.append(Comp(share, np.full(c.lat.n, 30.0), 0.004, "timeout"))
        assert tool.err_own is not None
        tool.err_own[2] = tool.err_own[2] + share

    def logs(self, c: FaultCtx) -> None:
        name = c.target.split(":", 1)[1]
        tool = c.lat.svc[_wire(c.target)]
        orch = c.lat.fleet.pods_of("orchestrator")
        timeouts = tool.rate * sum(x.weight for x in tool.extra if x.tag == "timeout")
        for idx, k in _volume(c, timeouts * 0.02, 3, delay=2):
            for _ in range(k):
                pod = orch[int(c.rng.integers(0, len(orch)))]
                body = f"tool call {name} timed out after 30.0s"
                c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), pod, "ERROR", body))
        server = c.lat.fleet.pods_of(_wire(c.target))[0]
        upstream = "search provider" if name == "web-search" else "sandbox runtime"
        for idx, k in _volume(c, timeouts * 0.01, 2, delay=2):
            for _ in range(k):
                body = f"{upstream} request timed out after 30000ms; returning 504 method=tools/call"
                c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), server, "WARN", body))


class BadDeploy(Fault):
    """Orchestrator 1.15.0 rolls out (new ReplicaSet) with a planner bug: ~20 % of requests
    raise ``KeyError`` after the planning LLM call and return 500."""

    kind = "bad_deploy"
    default_magnitude = 0.2

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return ["service:orchestrator"]

    def _rolls(self, c: FaultCtx) -> list[int]:
        """Step at which each replacement pod becomes ready (one every 30 s)."""
        replicas = next(s.replicas for s in c.lat.fleet.services if s.wire == "orchestrator")
        return [c.start + 2 * k for k in range(replicas)]

    def services(self, c: FaultCtx) -> None:
        i = np.arange(c.lat.n)
        new = np.mean([(i >= r) for r in self._rolls(c)], axis=0)
        share = c.magnitude * new * np.exp(0.1 * c.rng.standard_normal(c.lat.n))
        orch = c.lat.svc["orchestrator"]
        assert orch.err_own is not None
        orch.err_own[0] = orch.err_own[0] + share
        orch.crash = share     # raised after the planning LLM call: latency stays about the same

    def fleet(self, c: FaultCtx) -> None:
        """A rollout: each old pod is replaced by a pod of the new ReplicaSet (new hash)."""
        f, n = c.lat.fleet, c.lat.n
        old = f.pods_of("orchestrator")
        tmpl = k8s_suffix(c.rng, 5)
        new = [replace(p, name=f"orchestrator-{tmpl}-{k8s_suffix(c.rng, 5)}",
                       ip=f"10.244.{int(c.rng.integers(0, 8))}.{int(c.rng.integers(2, 254))}") for p in old]
        pods = (*f.pods, *new)
        c.lat.fleet = replace(f, pods=pods, inventory=make_inventory(pods, f.gpus, f.node_ips, f.services, f.calls))
        i = np.arange(n)
        for p_old, p_new, r in zip(old, new, self._rolls(c), strict=True):
            c.lat.alive[p_old.name] = i < r + 1          # terminates once the new pod is ready
            c.lat.alive[p_new.name] = i >= r
            c.lat.version[p_new.name] = NEW_ORCHESTRATOR_VERSION

    def resources(self, c: FaultCtx) -> None:
        n = c.lat.n
        for pod in c.lat.fleet.pods_of("orchestrator"):
            if c.lat.version.get(pod.name) != NEW_ORCHESTRATOR_VERSION:
                continue
            born = int(np.argmax(c.lat.alive[pod.name]))
            c.lat.cpu[pod.name][born:born + 2] += 1.2          # start-up
            warm = np.clip((np.arange(n) - born) / 20.0, 0, 1)
            c.lat.mem[pod.name] = c.lat.mem[pod.name] * (0.45 + 0.55 * warm)

    def logs(self, c: FaultCtx) -> None:
        orch = c.lat.fleet.pods_of("orchestrator")
        new = [p for p in orch if c.lat.version.get(p.name) == NEW_ORCHESTRATOR_VERSION]
        for pod, r in zip(new, self._rolls(c), strict=True):
            c.lat.logs.append(pod_log(c.t_ns(r, -2.0), pod, "INFO",
                                      f"Starting orchestrator version={NEW_ORCHESTRATOR_VERSION} "
                                      "commit=3f9c2e1 workers=8"))
        svc = c.lat.svc["orchestrator"]
        crash = svc.rate * (svc.crash if svc.crash is not None else 0.0)
        for idx, k in _volume(c, crash * 0.02, 3):
            for _ in range(k):
                pod = new[int(c.rng.integers(0, len(new)))]
                c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), pod, "ERROR",
                                          TRACEBACK))
