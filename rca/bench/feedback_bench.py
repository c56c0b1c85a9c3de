"""``rca bench feedback``: does feedback make the ranking better?

The loop, simulated end to end through the store:

1. **Label.** Every fault scenario x ``train_seeds`` on a *varied* fleet is analysed by the base
   ranker and stored with its candidates; its ground truth goes back as feedback, the way an
   SRE would give it: ``confirm N`` when the true root is hypothesis N, ``correct ROOT`` when it
   is not among them.
2. **Train.** ``rca.learn.train_ranker`` on that store: it holds back a quarter of the labels
   and activates the new version only if it beats the base ranking there.
3. **Fresh seeds.** Every fault scenario x ``test_seeds`` (disjoint from the training seeds, so
   other fleet shapes, loads, noise and placements): AC@1 / AC@3 of the base ranking and of
   whatever step 2 left active (the base ranking again when nothing was activated).
4. **Unseen scenarios.** Leave one scenario out: train (same gate) on the labels of the other
   scenarios only, test on the held-out scenario's fresh seeds. This is the hard case: a kind
   of fault the re-ranker has never seen labelled.

The re-ranker only reorders the candidates the base ranker logged (``Incident.candidates``),
so step 3 applies the model to each incident's logged candidates, exactly as the graph ranker
does at run time (``tests/test_learn.py`` pins that equivalence).
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from rca.types import Feedback, Incident

__all__ = ["feedback_for_truth", "render_feedback_table", "run_feedback_bench"]


def feedback_for_truth(incident: Incident, root: str, category: str | None, author: str = "bench",
                       at: int = 0) -> Feedback:
    """The verdict an SRE who knows the truth would give."""
    for n, h in enumerate(incident.hypotheses, 1):
        if h.root == root:
            return Feedback(incident.id, "confirm", n, None, category if category != h.category else None,
                            author=author, at=at)
    return Feedback(incident.id, "correct", None, root, category, author=author, at=at)


def _ranked(incident: Incident, model: Any | None) -> list[str]:
    ents = [c.entity for c in incident.candidates]
    if model is None or len(ents) < 2:
        return ents or [h.root for h in incident.hypotheses]
    return [ents[i] for i in model.order([c.features for c in incident.candidates])]


def _score(runs: Sequence[tuple[str, Incident, str]], model: Any | None) -> dict[str, Any]:
    per: dict[str, list[int]] = defaultdict(list)
    for scen, inc, root in runs:
        order = _ranked(inc, model)
        per[scen].append(order.index(root) + 1 if root in order else 99)

    from rca.learn import rank_summary

    def summary(ranks: list[int]) -> dict[str, float]:
        return {**rank_summary(ranks), "n": len(ranks)}

    return {"all": summary([r for v in per.values() for r in v]), "scenarios": {s: summary(v) for s, v in per.items()}}


def _model_of(store: Any) -> Any | None:
    from models.reranker import PairwiseReranker

    row = store.active_model()
    return PairwiseReranker.from_json(row["weights"]) if row else None


def run_feedback_bench(train_seeds: Sequence[int], test_seeds: Sequence[int], scenarios: Sequence[str] | None = None,
                       holdout: float = 0.25, leave_one_out: bool = True, progress: bool = True) -> dict[str, Any]:
    from rca.demo import analyze_sim
    from rca.learn import label_of, train_ranker
    from rca.settings import Settings
    from rca.sim import list_scenarios, simulate
    from rca.store import SqlStore
    from rca.wiring import build_engine

    if set(train_seeds) & set(test_seeds):
        from rca.errors import BadInput

        raise BadInput("training and test seeds overlap", field="test_seeds", fix="use disjoint seed ranges")
    names = [n for n in (scenarios or list_scenarios()) if n != "no_fault"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        engine = build_engine(Settings(reranker=False), [], store=store)
        train: list[tuple[str, Incident, str]] = []
        test: list[tuple[str, Incident, str]] = []
        with Progress(disable=not progress) as bar:
            task = bar.add_task("simulated incidents", total=len(names) * (len(train_seeds) + len(test_seeds)))
            for name in names:
                for seed in list(train_seeds) + list(test_seeds):
                    res = simulate(name, seed, vary=True)
                    inc = analyze_sim(res, engine)
                    if seed in train_seeds:
                        store.add_feedback(feedback_for_truth(inc, res.truth.root, res.truth.category, at=seed))
                        train.append((name, inc, res.truth.root))
                    else:
                        test.append((name, inc, res.truth.root))
                    bar.advance(task)
        t_sim = time.perf_counter() - t0
        report = train_ranker(store, holdout=holdout, note="rca bench feedback")
        model = _model_of(store)
        fresh = {"base": _score(test, None), "learned": _score(test, model)}
        labels = {inc.id: label_of(inc, store.list_feedback(inc.id)) for _, inc, _ in train}
        loo: dict[str, Any] = {}
        if leave_one_out:
            for name in names:
                fold = SqlStore.open(f"sqlite:///{Path(tmp) / f'loo-{name}.db'}")
                rep = train_ranker(fold, holdout=holdout, note=f"leave out {name}",
                                   labels=[(inc, labels[inc.id]) for s, inc, _ in train if s != name])
                held = [r for r in test if r[0] == name]
                loo[name] = {"activated": rep.activated, "base": _score(held, None)["all"],
                             "learned": _score(held, _model_of(fold))["all"]}
                fold.close()
        store.close()
    return {"train_seeds": list(train_seeds), "test_seeds": list(test_seeds), "scenarios": names,
            "train": {"version": report.version, "activated": report.activated, "reason": report.reason,
                      "metrics": dict(report.metrics), "top_features": [list(x) for x in report.top_features]},
            "fresh_seeds": fresh, "leave_one_scenario_out": loo,
            "elapsed_s": round(time.perf_counter() - t0, 1), "simulate_and_analyse_s": round(t_sim, 1)}


def render_feedback_table(res: dict[str, Any]) -> Table:
    tr = res["train"]
    m = tr["metrics"]
    cap = (f"{m.get('labelled', 0)} labelled incidents ({m.get('train', 0)} trained on, {m.get('held_back', 0)} held "
           f"back); {tr['reason']}; {res['elapsed_s']} s")
    t = Table(title="rca bench feedback: AC@1 / AC@3, base ranking vs after feedback", caption=cap)
    for col in ("test set", "scenario", "base", "learned", "re-ranker active"):
        t.add_column(col)
    fresh = res["fresh_seeds"]
    for s in res["scenarios"]:
        b, lrn = fresh["base"]["scenarios"][s], fresh["learned"]["scenarios"][s]
        t.add_row("fresh seeds", s, f"{b['ac_at_1']:.2f} / {b['ac_at_3']:.2f}", f"{lrn['ac_at_1']:.2f} / {lrn['ac_at_3']:.2f}",
                  "yes" if tr["activated"] else "no")
    b, lrn = fresh["base"]["all"], fresh["learned"]["all"]
    t.add_row("fresh seeds", "[b]all[/b]", f"[b]{b['ac_at_1']:.2f} / {b['ac_at_3']:.2f}[/b]",
              f"[b]{lrn['ac_at_1']:.2f} / {lrn['ac_at_3']:.2f}[/b]", "yes" if tr["activated"] else "no")
    for s, v in res["leave_one_scenario_out"].items():
        t.add_row("scenario left out", s, f"{v['base']['ac_at_1']:.2f} / {v['base']['ac_at_3']:.2f}",
                  f"{v['learned']['ac_at_1']:.2f} / {v['learned']['ac_at_3']:.2f}", "yes" if v["activated"] else "no")
    return t
