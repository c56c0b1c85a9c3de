"""Simulator benches.

* ``rca bench sim`` (:func:`run_sim_bench`): the demo's question over every scenario and seed,
  fixed fleet.
* ``rca bench rca --sim`` (:func:`run_sim_rca_bench`): every scenario x seed on a *varied* fleet
  (``simulate(..., vary=True)``: replicas, bystanders, load, noise, GPU placement), our engine
  on the question path (:func:`rca.demo.answer_sim`) beside the reference rankers of
  :mod:`rca.bench.baselines` on the same telemetry, scored with AC@k / Avg@5.

The reference rankers see what our engine sees, made comparable: the derived signals
(:func:`rca.signals.derive`, rates and quantiles rather than raw cumulative counters), each row
labelled ``service=<its entity>`` by the engine's entity mapping, and the truth onset as inject
time (BARO's normal period is everything before it). Their per-row scores become an entity
ranking by :func:`rank_entities`, which rolls pods up like the truth does: a group (service,
database, tool, model) scores as its best member and is listed before its members when the
fault looks shared (runner-up member >= ``SHARED`` x best) or the group has one member;
otherwise the best pod comes first and the group right after it. BARO's runtime includes
``derive`` (it needs rates too). ``no_fault`` runs only our engine: the report is how often
its top confidence reaches 0.5.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rca.types import EntityId, Inventory

__all__ = ["RANKERS", "SHARED", "rank_entities", "render_sim_table", "run_sim_bench", "run_sim_rca_bench"]

RANKERS = ("rca", "baro", "nsigma", "random")
SHARED = 0.5
CONFIDENT = 0.5
NO_FAULT = "no_fault"


def run_sim_bench(seeds: Iterable[int], progress: bool = True) -> dict[str, Any]:
    from rca.demo import run_demo
    from rca.sim import list_scenarios

    seeds = list(seeds)
    names = list_scenarios()
    per: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    t0 = time.perf_counter()
    with Progress(disable=not progress) as bar:
        task = bar.add_task("scenarios", total=len(names) * len(seeds))
        for name in names:
            for seed in seeds:
                ans = run_demo(name, seed)
                top = ans["hypotheses"][0] if ans["hypotheses"] else None
                truth = ans["truth"]
                per[name]["root"].append(bool(top) and top["root"] == truth["root"])
                per[name]["both"].append(bool(top) and top["root"] == truth["root"]
                                         and top["category"] == truth["category"])
                per[name]["conf"].append(top["confidence"] if top else 0.0)
                bar.advance(task)
    scen = {n: {"root_at_1": sum(v["root"]) / len(seeds), "root_category_at_1": sum(v["both"]) / len(seeds),
                "mean_top_confidence": sum(v["conf"]) / len(seeds)} for n, v in per.items()}
    faults = [n for n in names if n != "no_fault"]
    hits = [h for n in faults for h in per[n]["both"]]
    return {"seeds": seeds, "scenarios": scen,
            "faults_root_category_at_1": sum(hits) / max(len(hits), 1),
            "no_fault_confident": sum(c >= 0.5 for c in per["no_fault"]["conf"]) if "no_fault" in per else None,
            "elapsed_s": round(time.perf_counter() - t0, 1)}


def rank_entities(row_scores: np.ndarray, entities: Sequence[EntityId], inventory: Inventory) -> list[EntityId]:
    """Entities best first from per-row scores (see the module docstring for the roll-up)."""
    best: dict[EntityId, float] = {}
    for e, v in zip(entities, np.asarray(row_scores, dtype=float).tolist(), strict=True):
        if v > best.get(e, -np.inf):
            best[e] = v
    members: dict[EntityId, list[EntityId]] = defaultdict(list)
    for r in inventory.relations:
        if r.relation == "member_of" and r.src in best:
            members[r.dst].append(r.src)
    tier: dict[EntityId, int] = dict.fromkeys(best, 0)
    score = dict(best)
    for group, ms in members.items():
        ranked = sorted((best[m] for m in ms), reverse=True)
        shared = len(ranked) == 1 or ranked[1] >= SHARED * ranked[0]
        score[group] = max(ranked[0], best.get(group, -np.inf))
        tier[group] = 0 if shared else 1
        for m in ms:
            tier[m] = 1 if shared else 0
    return sorted(score, key=lambda e: (-score[e], tier[e], e))


def _significant(v: np.ndarray, digits: int = 6) -> np.ndarray:
    """``v`` rounded to ``digits`` significant digits (what ``%.6g`` in a case folder keeps)."""
    with np.errstate(all="ignore"):
        mag = np.where(np.isfinite(v) & (v != 0), np.floor(np.log10(np.abs(v))), 0.0)
        scale = 10.0 ** (digits - 1 - mag)
        return np.round(v * scale) / scale


def _baseline_case(result: Any, signals: Any) -> Any:
    """The case the reference rankers get: derived rows, ``service`` = the row's entity, values
    at 6 significant digits as a case folder of the same run stores them (``rca simulate --out``):
    a flat quantile then has an IQR of 0, not float noise of 1e-17 that BARO divides by."""
    from connectors.files import Case
    from rca.types import MetricFrame, Snapshot

    f = signals.frame
    keys = tuple(k.with_name(k.name, service=e) for k, e in zip(f.keys, signals.entities, strict=True))
    snap = result.snapshot
    frame = MetricFrame(keys, f.timestamps, _significant(f.values))
    return Case(Path(f"sim/{result.scenario.name}/{result.seed}"), Snapshot(snap.window, frame, (), (), snap.inventory),
                result.truth.onset, {"root_cause_service": result.truth.root})


def _baselines(result: Any) -> tuple[dict[str, list[EntityId]], dict[str, float]]:
    """Rankings of BARO, N-Sigma and random on ``result``, and their seconds (derive included)."""
    from rca.bench.baselines import random_rank, robust_scores, sigma_scores
    from rca.entities import aliases_from_inventory
    from rca.signals import derive

    inv = result.snapshot.inventory
    t0 = time.perf_counter()
    signals = derive(result.snapshot.metrics, aliases_from_inventory(inv))
    case = _baseline_case(result, signals)
    t_derive = time.perf_counter() - t0
    out: dict[str, list[EntityId]] = {}
    secs: dict[str, float] = {}
    for name, fn in (("baro", robust_scores), ("nsigma", sigma_scores)):
        t = time.perf_counter()
        out[name] = rank_entities(fn(case), signals.entities, inv)
        secs[name] = t_derive + time.perf_counter() - t
    order = {svc: sc for svc, sc, _ in random_rank(case, result.seed)}
    out["random"] = rank_entities(np.array([order[e] for e in signals.entities]), signals.entities, inv)
    return out, secs


def _run_one(scenario: str, seed: int) -> dict[str, Any]:
    """One varied simulation under every ranker: scores, top 5, our top-1, seconds, errors."""
    from rca.bench.metrics import case_scores
    from rca.demo import answer_sim
    from rca.sim import simulate

    t0 = time.perf_counter()
    result = simulate(scenario, seed, vary=True)
    truth = result.truth
    run: dict[str, Any] = {"scenario": scenario, "seed": seed, "variant": result.variant,
                           "truth": {"root": truth.root, "category": truth.category},
                           "seconds": {"simulate": round(time.perf_counter() - t0, 3)},
                           "top5": {}, "scores": {}, "errors": {}, "top": None}
    rankings: dict[str, list[EntityId]] = {}
    t0 = time.perf_counter()
    try:
        ans = answer_sim(result)
        hyps = ans["hypotheses"]
        rankings["rca"] = [h["root"] for h in hyps]
        if hyps:
            run["top"] = {k: hyps[0][k] for k in ("root", "category", "confidence")}
    except Exception as e:  # a broken engine run scores 0; the bench goes on
        run["errors"]["rca"] = f"{type(e).__name__}: {e}"
    run["seconds"]["rca"] = round(time.perf_counter() - t0, 3)
    if truth.root is not None:
        try:
            base, secs = _baselines(result)
            rankings.update(base)
            run["seconds"].update({k: round(v, 3) for k, v in secs.items()})
        except Exception as e:
            for name in RANKERS[1:]:
                run["errors"][name] = f"{type(e).__name__}: {e}"
        for name in RANKERS:
            ranked = rankings.get(name, [])
            run["scores"][name] = case_scores(ranked, [truth.root])
            run["top5"][name] = ranked[:5]
    else:
        run["top5"]["rca"] = rankings.get("rca", [])[:5]
    return run


def _mean(xs: Iterable[float]) -> float:
    v = list(xs)
    return float(sum(v) / len(v)) if v else 0.0


def _summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per fault scenario: rankers' AC@k / Avg@5, our category accuracy, mean seconds."""
    from rca.bench.metrics import aggregate

    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        rs = [r for r in runs if r["scenario"] == name]
        if rs[0]["truth"]["root"] is None:
            continue
        top = [r["top"] or {} for r in rs]
        cat = [t.get("category") == r["truth"]["category"] for t, r in zip(top, rs, strict=True)]
        root = [t.get("root") == r["truth"]["root"] for t, r in zip(top, rs, strict=True)]
        out[name] = {
            "runs": len(rs), "truth_category": rs[0]["truth"]["category"],
            "rankers": {k: aggregate(r["scores"][k] for r in rs) for k in RANKERS},
            "category_at_1": _mean(cat), "root_category_at_1": _mean(a and b for a, b in zip(cat, root, strict=True)),
            "mean_top_confidence": _mean(t.get("confidence", 0.0) for t in top),
            "seconds": {k: round(_mean(r["seconds"].get(k, 0.0) for r in rs), 3) for k in ("simulate", "rca", "baro")},
            "errors": {k: sum(k in r["errors"] for r in rs) for k in RANKERS},
        }
    return out


def run_sim_rca_bench(scenarios: list[str], seeds: Iterable[int], progress: bool = True) -> dict[str, Any]:
    """``rca bench rca --sim``: every scenario x seed on a varied fleet, ours beside BARO,
    N-Sigma and random. Returns ``seeds``, ``scenarios`` (per fault scenario: ``rankers`` ->
    {AC@1..AC@5, Avg@5, cases}, ``category_at_1``, ``root_category_at_1``,
    ``mean_top_confidence``, ``seconds`` {simulate, rca, baro} per run, ``errors``), ``overall``
    (means over the fault scenarios), ``no_fault`` (``runs``, ``confident_share``,
    ``mean_top_confidence``; None when not run), ``variants`` (ranges drawn), ``runs`` (every
    run: variant, truth, top 5 per ranker, scores, seconds) and ``elapsed_s``."""
    seeds = [int(s) for s in seeds]
    todo = [(name, seed) for name in scenarios for seed in seeds]
    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("rca bench --sim", total=len(todo))
        for name, seed in todo:
            bar.update(task, description=f"{name} seed {seed}")
            runs.append(_run_one(name, seed))
            bar.advance(task)
    per = _summarise(runs)
    overall: dict[str, Any] = {}
    if per:
        overall = {"scenarios": len(per),
                   "rankers": {k: {m: _mean(p["rankers"][k][m] for p in per.values())
                                   for m in ("AC@1", "AC@2", "AC@3", "AC@4", "AC@5", "Avg@5")} for k in RANKERS},
                   **{m: _mean(p[m] for p in per.values())
                      for m in ("category_at_1", "root_category_at_1", "mean_top_confidence")},
                   "seconds": {k: round(_mean(p["seconds"][k] for p in per.values()), 3)
                               for k in ("simulate", "rca", "baro")}}
    nf = [r for r in runs if r["truth"]["root"] is None]
    conf = [(r["top"] or {}).get("confidence", 0.0) for r in nf]
    no_fault = {"runs": len(nf), "confident_share": _mean(c >= CONFIDENT for c in conf),
                "confident_seeds": [r["seed"] for r, c in zip(nf, conf, strict=True) if c >= CONFIDENT],
                "mean_top_confidence": _mean(conf),
                "seconds": {"rca": round(_mean(r["seconds"]["rca"] for r in nf), 3)}} if nf else None
    v = [r["variant"] for r in runs]
    variants = {"service_pods": [min(x["service_pods"] for x in v), max(x["service_pods"] for x in v)],
                "extras": [min(len(x["extras"]) for x in v), max(len(x["extras"]) for x in v)],
                "load": [min(x["load"] for x in v), max(x["load"] for x in v)],
                "noise": [min(x["noise"] for x in v), max(x["noise"] for x in v)]} if v else {}
    return {"seeds": seeds, "scenarios": per, "overall": overall, "no_fault": no_fault, "variants": variants,
            "runs": runs, "elapsed_s": round(time.perf_counter() - t0, 1)}


_LABEL = {"rca": "rca", "baro": "BARO", "nsigma": "N-Sigma", "random": "random"}


def render_sim_table(res: Mapping[str, Any]) -> Table:
    """One row per fault scenario and ranker (AC@1, AC@3, Avg@5; our category accuracy and
    seconds per run), the means over fault scenarios, and the no-fault line in the caption."""
    n = len(res["seeds"])
    table = Table(title=f"rca bench rca --sim — {n} varied seed(s) per scenario", pad_edge=False)
    width = max([len(n) for n in res["scenarios"]] + [len("all faults (10)")])
    table.add_column("scenario", no_wrap=True, min_width=width)
    table.add_column("ranker", no_wrap=True)
    for col in ("AC@1", "AC@3", "Avg@5", "cat@1", "r+cat@1", "s/run"):
        table.add_column(col, justify="right")

    def rows(label: str, p: Mapping[str, Any], ranks: Mapping[str, Mapping[str, float]]) -> None:
        for i, k in enumerate(RANKERS):
            m = ranks[k]
            ours = k == "rca"
            secs = p["seconds"].get(k) if k in ("rca", "baro") else None
            table.add_row(label if i == 0 else "", _LABEL[k], *(f"{m[x]:.2f}" for x in ("AC@1", "AC@3", "Avg@5")),
                          f"{p['category_at_1']:.2f}" if ours else "",
                          f"{p['root_category_at_1']:.2f}" if ours else "",
                          f"{secs:.2f}" if secs is not None else "", end_section=i == len(RANKERS) - 1)

    for name, p in res["scenarios"].items():
        rows(name, p, p["rankers"])
    if res["overall"]:
        rows(f"all faults ({res['overall']['scenarios']})", res["overall"], res["overall"]["rankers"])
    notes = ["cat@1: our top-1 category is the truth's; r+cat@1: root and category; s/run: seconds per run "
             "(BARO's include deriving the signals)"]
    nf = res.get("no_fault")
    if nf:
        notes.append(f"no_fault: top confidence >= {CONFIDENT} in {len(nf['confident_seeds'])}/{nf['runs']} runs "
                     f"({nf['confident_share']:.2f}); mean top confidence {nf['mean_top_confidence']:.2f}")
    v = res.get("variants")
    if v:
        notes.append(f"fleets: {v['service_pods'][0]}-{v['service_pods'][1]} service pods, "
                     f"{v['extras'][0]}-{v['extras'][1]} bystanders, load x{v['load'][0]:.2f}-{v['load'][1]:.2f}, "
                     f"noise x{v['noise'][0]:.2f}-{v['noise'][1]:.2f}; {res['elapsed_s']:.0f} s in all")
    table.caption = "\n".join(notes)
    return table
