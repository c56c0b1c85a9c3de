"""Scenario definitions (``datasets/scenarios/<name>.yaml``) and their ground truth.

YAML keys: ``name``, ``description``, optional ``question`` (``{time}`` becomes ``HH:MM`` UTC
of the question time), ``fault: {kind, target, duration_s, magnitude, ...}`` (extra keys are
kind-specific parameters), ``truth: {category}`` and optional ``onset_before_question_s``.
``target: auto`` lets the seed choose among the fault kind's eligible entities; the truth
root is the chosen target (``None`` for kind ``none``), except that a pod which is the only
member of its group is reported as the group, as the engine reports it.

The directory is ``<repo>/datasets/scenarios`` unless ``RCA_SCENARIOS_DIR`` names another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rca.errors import BadInput, NotFound
from rca.sim.faults import Fault
from rca.sim.faults_gpu import NoisyNeighbor, Thermal, Xid
from rca.sim.faults_llm import LongPromptSurge, PromptDrift, TokenLoop
from rca.sim.faults_svc import BadDeploy, ToolTimeout, VectorDbCpu
from rca.sim.topology import Fleet
from rca.sim.workload import rng_for
from rca.types import EntityId

__all__ = ["DEFAULT_QUESTION", "FAULTS", "FaultSpec", "Scenario", "Truth", "list_scenarios", "load_scenario",
           "parse_scenario", "resolve_target", "scenarios_dir"]

DEFAULT_QUESTION = "why was p99 slow at {time}"
FAULTS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    Fault, LongPromptSurge, Xid, Thermal, VectorDbCpu, ToolTimeout, TokenLoop, BadDeploy, NoisyNeighbor,
    PromptDrift)}


@dataclass(frozen=True)
class FaultSpec:
    """What to inject. ``magnitude`` ``None`` = the kind's default; ``duration_s`` from onset."""

    kind: str
    target: str = "auto"
    duration_s: int = 1200
    magnitude: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: FaultSpec
    category: str
    question: str = DEFAULT_QUESTION
    onset_before_question_s: int = 480


@dataclass(frozen=True)
class Truth:
    """The injected root cause: ``root`` entity, ``category``, ``onset`` (unix s).
    ``None`` / ``"none"`` / ``None`` for a scenario without a fault."""

    root: EntityId | None
    category: str
    onset: int | None


def scenarios_dir() -> Path:
    env = os.environ.get("RCA_SCENARIOS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "datasets" / "scenarios"


def list_scenarios() -> list[str]:
    d = scenarios_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_scenario(name: str) -> Scenario:
    path = scenarios_dir() / f"{name}.yaml"
    names = list_scenarios()
    if name not in names:
        raise NotFound(f"no scenario named {name!r}", field="scenario",
                       fix=f"use one of: {', '.join(names) or '(none found in ' + str(scenarios_dir()) + ')'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}", field="scenario", fix="fix the file") from exc
    return parse_scenario(data, default_name=name)


def parse_scenario(data: Any, default_name: str = "") -> Scenario:
    """Validate a scenario mapping (as read from YAML)."""
    if not isinstance(data, Mapping):
        raise BadInput("a scenario must be a mapping", field="scenario", fix="see datasets/scenarios/*.yaml")
    unknown = set(data) - {"name", "description", "question", "fault", "truth", "onset_before_question_s"}
    if unknown:
        raise BadInput(f"unknown keys {sorted(unknown)}", field="scenario",
                       fix="use name, description, question, fault, truth, onset_before_question_s")
    fault = data.get("fault") or {"kind": "none"}
    if not isinstance(fault, Mapping) or fault.get("kind") not in FAULTS:
        raise BadInput(f"unknown fault kind {fault.get('kind') if isinstance(fault, Mapping) else fault!r}",
                       field="fault.kind", fix=f"use one of {', '.join(sorted(FAULTS))}")
    truth = data.get("truth") or {}
    if not isinstance(truth, Mapping) or not truth.get("category"):
        raise BadInput("truth.category is missing", field="truth.category", fix="e.g. truth: {category: none}")
    params = {k: v for k, v in fault.items() if k not in {"kind", "target", "duration_s", "magnitude"}}
    try:
        spec = FaultSpec(str(fault["kind"]), str(fault.get("target", "auto")), int(fault.get("duration_s", 1200)),
                         None if fault.get("magnitude") is None else float(fault["magnitude"]), params)
        before = int(data.get("onset_before_question_s", 480))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"bad number in scenario: {exc}", field="fault", fix="use numbers for durations") from exc
    if spec.duration_s <= 0 or not 60 <= before <= 3 * 3600:
        raise BadInput("duration_s must be > 0 and onset_before_question_s within 60..10800", field="fault",
                       fix="adjust the durations")
    return Scenario(str(data.get("name") or default_name), str(data.get("description", "")).strip(), spec,
                    str(truth["category"]), str(data.get("question") or DEFAULT_QUESTION), before)


def resolve_target(scenario: Scenario, fleet: Fleet, seed: int) -> EntityId | None:
    """The faulted entity: the scenario's ``target``, or one eligible entity chosen by ``seed``."""
    eligible = FAULTS[scenario.fault.kind]().eligible(fleet)
    if not eligible:
        return None
    target = scenario.fault.target
    if target == "auto":
        return eligible[int(rng_for(seed, f"target:{scenario.fault.kind}").integers(0, len(eligible)))]
    if target not in eligible:
        raise BadInput(f"{target!r} cannot take a {scenario.fault.kind} fault", field="fault.target",
                       fix=f"use auto or one of {', '.join(eligible)}")
    return target
