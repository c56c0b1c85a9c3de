"""``simulate``: scenario + seed -> a ``Snapshot`` with its ground truth.

Pipeline (each stage fills the ``Latent`` state, the fault hooks in between):
timeline -> fleet (+ fault.fleet) -> load -> vLLM inputs (+ fault.inputs) -> vLLM solve ->
services (+ fault.services) -> composition -> resources, GPUs (+ fault.resources) ->
metrics, spans, logs (+ fault.logs). Every random draw comes from a generator derived from
the seed and a stage name, so results are identical for the same (scenario, seed, vary).
``vary=True`` first draws a fleet variant from the seed (``rca.sim.variant``); ``vary=False`` is
the fixed default fleet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from rca.errors import BadInput
from rca.sim.faults import FaultCtx
from rca.sim.latent import Latent
from rca.sim.logs import background_logs
from rca.sim.metrics import emit_metrics
from rca.sim.resources import base_resources, gpu_state
from rca.sim.scenarios import FAULTS, Scenario, Truth, load_scenario, resolve_target
from rca.sim.services import base_services, compose_services
from rca.sim.serving import base_llm, solve_llm
from rca.sim.topology import PLACEMENT, Fleet, build_fleet
from rca.sim.traces import emit_traces
from rca.sim.variant import Variant, draw_variant
from rca.sim.workload import STEP, gateway_load, make_timeline, rng_for
from rca.types import EntityId, Inventory, Snapshot

__all__ = ["SimResult", "simulate"]


@dataclass(frozen=True, eq=False)
class SimResult:
    """One simulated incident: the telemetry, the injected truth and the question to ask.
    ``question_time`` is unix seconds; ``variant`` describes the fleet shape
    (``Variant.describe()``: ``varied``, ``replicas``, ``extras``, ``pods``, ``load``, ``noise``,
    ``placement``)."""

    scenario: Scenario
    seed: int
    snapshot: Snapshot
    truth: Truth
    question: str
    question_time: int
    variant: dict[str, Any] = field(default_factory=dict)


def _fleet(sc: Scenario, seed: int, variant: Variant) -> tuple[Fleet, Variant]:
    """The fleet of ``variant``; a varied placement that would make an explicit target
    ineligible falls back to the default placement (the scenario names that GPU)."""
    fleet = build_fleet(rng_for(seed, "topology"), variant.services, variant.calls, variant.placement)
    target = sc.fault.target
    if variant.varied and target != "auto" and target not in FAULTS[sc.fault.kind]().eligible(fleet):
        variant = replace(variant, placement=dict(PLACEMENT))
        fleet = build_fleet(rng_for(seed, "topology"), variant.services, variant.calls, variant.placement)
    return fleet, variant


def simulate(scenario: str | Scenario, seed: int = 0, vary: bool = False) -> SimResult:
    """Simulate ``scenario`` (a name under ``datasets/scenarios`` or a ``Scenario``); with
    ``vary`` the seed also picks the fleet's shape, load level and noise."""
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    seed = int(seed)
    if seed < 0:
        raise BadInput(f"seed must be >= 0, got {seed}", field="seed", fix="use 0, 1, 2, ...")
    tl = make_timeline(seed, sc.onset_before_question_s)
    fleet, variant = _fleet(sc, seed, draw_variant(seed) if vary else Variant())
    target = resolve_target(sc, fleet, seed)
    fault = FAULTS[sc.fault.kind]()
    lat = Latent(seed, fleet, tl, gateway_load(seed, tl.ts, variant.load, variant.noise), noise=variant.noise,
                 load_scale=variant.load, extras=variant.extras)
    start = tl.idx(tl.onset)
    ctx = FaultCtx(lat, target or "", start, start + max(1, sc.fault.duration_s // STEP),
                   fault.default_magnitude if sc.fault.magnitude is None else sc.fault.magnitude,
                   rng_for(seed, f"fault:{sc.fault.kind}"), sc.fault.params)
    fault.fleet(ctx)
    lat.llm = base_llm(lat)
    fault.inputs(ctx)
    solve_llm(lat)
    base_services(lat)
    fault.services(ctx)
    compose_services(lat)
    base_resources(lat)
    gpu_state(lat)
    fault.resources(ctx)
    metrics = emit_metrics(lat)
    spans, trace_logs = emit_traces(lat)
    fault.logs(ctx)
    end_ns = tl.window.end * 1_000_000_000
    logs = sorted((r for r in (*background_logs(lat), *trace_logs, *lat.logs) if r.ts_ns <= end_ns),
                  key=lambda r: (r.ts_ns, r.entity, r.body))
    snapshot = Snapshot(tl.window, metrics, tuple(spans), tuple(logs), lat.fleet.inventory)
    truth = Truth(_reported_root(target, lat.fleet.inventory), sc.category if target else "none",
                  tl.onset if target else None)
    hhmm = time.strftime("%H:%M", time.gmtime(tl.question_time))
    return SimResult(sc, seed, snapshot, truth, sc.question.replace("{time}", hhmm), tl.question_time,
                     variant.describe())


def _reported_root(target: EntityId | None, inventory: Inventory) -> EntityId | None:
    """The engine reports a fault at the level of the group a pod belongs to when the pod is
    the group's only member (one replica *is* the service); the truth follows that convention
    (the noisy batch-embed pod -> ``service:batch-embed``)."""
    if not target or not target.startswith("pod:"):
        return target
    groups = inventory.groups_of(target)
    if len(groups) == 1 and inventory.members(groups[0]) == [target]:
        return groups[0]
    return target
