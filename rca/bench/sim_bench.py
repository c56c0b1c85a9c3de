"""``rca bench sim``: the demo's question over every simulator scenario and many seeds."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from rich.progress import Progress

__all__ = ["run_sim_bench"]


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
