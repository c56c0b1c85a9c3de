"""Fleet variation of the simulator (``simulate(..., vary=True)``) and the scenario bench
``rca bench rca --sim`` (ours beside BARO, N-Sigma and random on varied fleets)."""

from __future__ import annotations

import json
import sys
from functools import cache

import numpy as np
import pytest
from rich.table import Table
from typer.testing import CliRunner

from rca.bench.sim_bench import rank_entities, render_sim_table, run_sim_rca_bench
from rca.cli import app, main
from rca.errors import BadInput
from rca.sim import SimResult, load_scenario, simulate
from rca.sim.scenarios import FAULTS, FaultSpec, Scenario, resolve_target
from rca.sim.services import FANOUT
from rca.sim.topology import PLACEMENT, SERVICES, build_fleet
from rca.sim.variant import BYSTANDERS, draw_variant, min_replicas
from rca.sim.workload import rng_for
from rca.types import Inventory, Relation


@cache
def sim(name: str, seed: int, vary: bool) -> SimResult:
    return simulate(name, seed, vary=vary)


def _gateway_rps(r: SimResult) -> float:
    """Mean gateway requests/s over the window (all codes, all gateway pods)."""
    f = r.snapshot.metrics
    idx = [i for i, k in enumerate(f.keys) if k.name == "http_requests_total" and k.label("service") == "api-gateway"]
    d = np.diff(f.values[idx], axis=1) / r.snapshot.window.step
    return float(np.nansum(np.nanmean(d, axis=1)))


def _service_pods(r: SimResult) -> set[str]:
    inv = r.snapshot.inventory
    return {e for e in inv.entities if e.startswith("pod:") and not e.startswith(("pod:vllm-", "pod:batch-embed-"))}


# --- the simulator's variation --------------------------------------------------------------------

def test_default_run_is_the_fixed_fleet() -> None:
    r = sim("no_fault", 0, False)
    v = r.variant
    assert v["varied"] is False and v["extras"] == [] and v["load"] == 1.0 and v["noise"] == 1.0
    assert v["replicas"] == {s.wire: s.replicas for s in SERVICES}
    assert len(_service_pods(r)) == sum(s.replicas for s in SERVICES) == v["service_pods"]
    assert {p: f"{n}:{','.join(map(str, i))}" for p, (n, i) in PLACEMENT.items()} == v["placement"]


def test_varied_run_changes_fleet_size_load_and_wiring() -> None:
    base, var = sim("no_fault", 1, False), sim("no_fault", 1, True)
    v = var.variant
    assert v["varied"] is True
    assert len(_service_pods(var)) == v["service_pods"] == sum(v["replicas"].values())
    # 1-3 replicas, more only where the load needs them (pods stay under their CPU headroom)
    specs = {s.wire: (s, FANOUT[s.wire]) for s in SERVICES} | {x.wire: (x.spec, x.fanout) for x in BYSTANDERS}
    for wire, n in v["replicas"].items():
        assert 1 <= n <= max(3, min_replicas(*specs[wire], v["load"])) and n >= min_replicas(*specs[wire], v["load"])
    assert max(draw_variant(s).replicas["orchestrator"] for s in range(30)) == 3
    assert 0.5 <= v["load"] <= 2.0 and 0.5 <= v["noise"] <= 2.0
    # same seed, same load stream: the gateway's rate follows the drawn load level
    ratio = _gateway_rps(var) / _gateway_rps(base)
    assert ratio == pytest.approx(v["load"], rel=0.15)
    # bystanders are in the inventory, called by a service, and have their own telemetry
    inv = var.snapshot.inventory
    calls = {(r.src, r.dst) for r in inv.relations if r.relation == "calls"}
    for eid in v["extras"]:
        assert eid in inv.entities and any(dst == eid for _, dst in calls)
        wire = inv.entities[eid]["service"]
        assert any(k.label("service") == wire for k in var.snapshot.metrics.keys)
        assert any(s.service == wire for s in var.snapshot.spans) or eid.startswith("tool:")
        assert any(lg.attributes.get("service") == wire for lg in var.snapshot.logs)


def test_variants_differ_between_seeds_and_repeat_for_a_seed() -> None:
    shapes = {(draw_variant(s).describe()["service_pods"], len(draw_variant(s).extras)) for s in range(12)}
    assert len(shapes) > 3
    assert draw_variant(7).describe() == draw_variant(7).describe()
    extras = {x.spec.eid for s in range(40) for x in draw_variant(s).extras}
    assert extras == {x.spec.eid for x in BYSTANDERS}     # every bystander gets used


@pytest.mark.parametrize("kind", sorted(k for k in FAULTS if k != "none"))
def test_every_fault_keeps_an_eligible_target_on_varied_fleets(kind: str) -> None:
    sc = Scenario("t", "", FaultSpec(kind), "x")
    for seed in range(25):
        v = draw_variant(seed)
        fleet = build_fleet(rng_for(seed, "topology"), v.services, v.calls, v.placement)
        target = resolve_target(sc, fleet, seed)
        assert target is not None and target in fleet.inventory.entities, (kind, seed)
        pods = fleet.vllm_pods
        gpus = [g for p in pods for g in p.gpus]
        assert len(gpus) == len(set(gpus)) == 14                # no GPU is used twice by vLLM
        assert fleet.batch_pod.gpus[0] in fleet.pod("vllm-llama-3-8b-1").gpus


def test_varied_run_keeps_truth_target_in_inventory() -> None:
    r = sim("gpu_thermal_throttle", 3, True)
    assert r.truth.root in r.snapshot.inventory.entities
    host, idx = r.truth.root.split(":", 1)[1].split("/")
    temp = [i for i, k in enumerate(r.snapshot.metrics.keys)
            if k.name == "DCGM_FI_DEV_GPU_TEMP" and k.label("Hostname") == host and k.label("gpu") == idx]
    assert temp and np.nanmax(r.snapshot.metrics.values[temp[0]]) > 85


def test_explicit_target_survives_variation() -> None:
    """A scenario naming a GPU keeps it eligible: the placement falls back when needed."""
    sc = load_scenario("gpu_thermal_throttle")
    gpu = "gpu:gpu-node-3/5"           # idle in the default placement: not a valid thermal target there
    seed = next(s for s in range(50) if any(n == "gpu-node-3" and 5 in i for n, i in draw_variant(s).placement.values()))
    pinned = Scenario(sc.name, sc.description, FaultSpec("thermal", gpu, 1200, 1.7), sc.category)
    r = simulate(pinned, seed, vary=True)
    assert r.truth.root == gpu and r.variant["varied"]
    fallback = Scenario(sc.name, sc.description, FaultSpec("thermal", "gpu:gpu-node-1/0", 1200, 1.7),
                        sc.category)
    seed2 = next(s for s in range(50) if not any(n == "gpu-node-1" and 0 in i
                                                 for n, i in draw_variant(s).placement.values()))
    r2 = simulate(fallback, seed2, vary=True)
    assert r2.truth.root == "gpu:gpu-node-1/0"
    assert r2.variant["placement"]["vllm-llama-3-70b-0"] == "gpu-node-1:0,1,2,3"


# --- the bench ------------------------------------------------------------------------------------

def test_rank_entities_rolls_pods_up_like_the_truth() -> None:
    rel = [Relation("pod:a-1", "member_of", "service:a"), Relation("pod:a-2", "member_of", "service:a"),
           Relation("pod:b-1", "member_of", "service:b")]
    inv = Inventory({e: {} for e in ("pod:a-1", "pod:a-2", "pod:b-1", "service:a", "service:b", "gpu:n/0")},
                    tuple(rel))
    ents = ["pod:a-1", "pod:a-2", "pod:b-1", "gpu:n/0"]
    # one replica far worse than its peer: the pod, then its group
    assert rank_entities(np.array([9.0, 1.0, 3.0, 2.0]), ents, inv)[:3] == ["pod:a-1", "service:a", "service:b"]
    # both replicas bad: the group first
    assert rank_entities(np.array([9.0, 8.0, 3.0, 2.0]), ents, inv)[:2] == ["service:a", "pod:a-1"]
    # a one-pod group is named as the group (as the truth names it)
    assert rank_entities(np.array([1.0, 1.0, 7.0, 2.0]), ents, inv)[:2] == ["service:b", "pod:b-1"]


def test_bench_reports_every_ranker_per_scenario() -> None:
    bench = run_sim_rca_bench(["mcp_tool_timeout", "no_fault"], range(2), progress=False)
    assert {"seeds", "scenarios", "overall", "no_fault", "variants", "runs", "elapsed_s"} <= set(bench)
    assert bench["seeds"] == [0, 1] and len(bench["runs"]) == 4
    p = bench["scenarios"]["mcp_tool_timeout"]
    assert p["runs"] == 2 and set(p["rankers"]) == {"rca", "baro", "nsigma", "random"}
    for r in ("rca", "baro", "nsigma", "random"):
        for m in ("AC@1", "AC@3", "Avg@5"):
            assert 0.0 <= p["rankers"][r][m] <= 1.0
            assert 0.0 <= bench["overall"]["rankers"][r][m] <= 1.0
        assert p["rankers"][r]["AC@1"] <= p["rankers"][r]["AC@3"]
    for m in ("category_at_1", "root_category_at_1", "mean_top_confidence"):
        assert 0.0 <= p[m] <= 1.0
    assert p["root_category_at_1"] <= p["category_at_1"]
    assert p["seconds"]["rca"] > 0 and p["seconds"]["baro"] > 0
    nf = bench["no_fault"]
    assert nf["runs"] == 2 and 0.0 <= nf["confident_share"] <= 1.0 and 0.0 <= nf["mean_top_confidence"] <= 1.0
    assert "no_fault" not in bench["scenarios"]
    for run in bench["runs"]:
        assert run["variant"]["varied"] is True
        if run["truth"]["root"]:
            assert set(run["top5"]) == {"rca", "baro", "nsigma", "random"} and run["top5"]["baro"]
            # every ranker names entities the way the truth does
            assert all(":" in e for e in run["top5"]["baro"])
    json.dumps(bench)

    table = render_sim_table(bench)
    assert isinstance(table, Table)
    assert table.row_count == 4 + 4              # one fault scenario, the all-faults block
    rankers = list(table.columns[1].cells)
    assert rankers.count("BARO") == 2 and rankers.count("rca") == 2
    assert "no_fault" in str(table.caption)


def test_cli_rejects_unknown_sim_scenario(monkeypatch) -> None:
    res = CliRunner().invoke(app, ["bench", "rca", "--sim", "nope", "--seeds", "1"])
    # CliRunner sees the exception itself; ``rca.cli.main`` turns BadInput into exit code 2
    assert isinstance(res.exception, BadInput) and res.exception.field == "--sim" and "nope" in str(res.exception)
    monkeypatch.setattr(sys, "argv", ["rca", "bench", "rca", "--sim", "nope", "--seeds", "1"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
