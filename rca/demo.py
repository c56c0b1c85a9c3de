"""``rca demo``: simulate a scenario, ask the question, answer it, compare with the truth."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from connectors.memory import StaticConnector
from rca.answer import answer_json, interpreted_of, request_of
from rca.ask import parse_question
from rca.protocols import Store
from rca.serialize import rfc3339
from rca.settings import Settings
from rca.wiring import build_engine

if TYPE_CHECKING:
    from rca.engine import Engine
    from rca.sim import SimResult
    from rca.types import Incident

__all__ = ["answer_sim", "analyze_sim", "run_demo"]


def analyze_sim(result: SimResult, engine: Engine) -> Incident:
    """``engine``'s incident for a simulated incident's question (the question path: parse it,
    analyse the time it names); stored (when the engine has a store) under the id
    ``sim-<scenario>-<seed>`` (``-v`` for a varied fleet), unique per simulated run."""
    snap = result.snapshot
    q = parse_question(result.question, now=snap.window.end)
    iid = f"sim-{result.scenario.name}-{result.seed}{'-v' if result.variant.get('varied') else ''}"
    return engine.analyze(replace(request_of(q), incident_id=iid), snapshot=StaticConnector(snap).fetch(snap.window))


def answer_sim(result: SimResult, store: Store | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The engine's answer to a simulated incident's question (the question path: parse it,
    analyse the time it names), plus ``scenario``, ``seed`` and ``truth`` ({root, category, onset})."""
    snap = result.snapshot
    engine = build_engine(settings or Settings(), [StaticConnector(snap, name="simulator")], store=store)
    q = parse_question(result.question, now=snap.window.end)
    incident = engine.analyze(request_of(q), snapshot=StaticConnector(snap).fetch(snap.window))
    ans = answer_json(incident, interpreted_of(q))
    t = result.truth
    ans["scenario"] = result.scenario.name
    ans["seed"] = result.seed
    ans["truth"] = {"root": t.root, "category": t.category,
                    "onset": rfc3339(t.onset) if t.onset is not None else None}
    return ans


def run_demo(scenario: str, seed: int = 0, store: Store | None = None,
             settings: Settings | None = None, vary: bool = False) -> dict[str, Any]:
    """Simulate ``scenario`` with ``seed`` (``vary``: a seed-chosen fleet shape) and answer it."""
    from rca.sim import simulate

    return answer_sim(simulate(scenario, seed, vary=vary), store, settings)
