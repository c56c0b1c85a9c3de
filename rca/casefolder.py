"""Ranking case folders (RCAEval layout): ``rca rank`` and the ranker used by ``rca bench rca``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.files import Case, read_case
from rca.engine import AnalysisRequest
from rca.errors import BadInput
from rca.settings import Settings
from rca.types import Incident, Window, entity_name
from rca.wiring import build_engine

__all__ = ["bench_rankers", "case_ranking", "rank_case", "rank_loaded_case", "with_detected_time"]


def _windows(case: Case, detect_time: bool) -> tuple[Window, Window]:
    w = case.snapshot.window
    t = case.inject_time
    if detect_time or t is None:
        if not detect_time:
            raise BadInput(f"{case.path} has no inject_time.txt", field="CASE_DIR",
                           fix="add inject_time.txt or pass --detect-time")
        from rca.onset import detect_onset

        t = detect_onset(case.snapshot.metrics)
    if not (w.start < t <= w.end):
        raise BadInput(f"inject time {t} is outside the data ({w.start}..{w.end})", field="inject_time",
                       fix="check inject_time.txt against the time column of metrics.csv")
    return Window(w.start, t - w.step, w.step), Window(t, w.end, w.step)


def rank_loaded_case(case: Case, detect_time: bool = False) -> Incident:
    base, inc = _windows(case, detect_time)
    engine = build_engine(Settings(max_hypotheses=10))
    return engine.analyze(AnalysisRequest(window=inc, baseline=base, signal="latency", statistic="p99",
                                          params={"rank_all": True, "categories": "microservice"}),
                          snapshot=case.snapshot)


def case_ranking(case: Case, inc: Incident) -> list[tuple[str, float, str]]:
    """``(service, score, category)`` best first. Case folders are labelled per service: a pod
    (from a trace or log ``pod`` column) stands for the service it belongs to, once."""
    inv = case.snapshot.inventory
    out: dict[str, tuple[str, float, str]] = {}
    for h in inc.hypotheses:
        groups = inv.groups_of(h.root) if h.root.startswith("pod:") else []
        name = entity_name(groups[0] if groups else h.root)
        out.setdefault(name, (name, h.score, h.category))
    return list(out.values())


def rank_case(path: str | Path, detect_time: bool = False) -> dict[str, Any]:
    """``rca rank --json``: every hypothesis with its evidence (each item with references back
    to the raw data: series, time range, baseline and observed values, log examples, trace
    ids), the dependency path to the symptom, and what was checked / had no data."""
    from rca.serialize import rfc3339, to_jsonable

    case = read_case(path)
    inc = rank_loaded_case(case, detect_time)
    ranks = []
    for h in inc.hypotheses:
        metric = next((e.ref.get("series") for e in h.evidence if e.kind == "metric"), None)
        ranks.append({"service": entity_name(h.root), "score": h.score, "metric": metric,
                      "category": h.category, "confidence": h.confidence,
                      "path": [entity_name(p) for p in h.path],
                      "evidence": to_jsonable(list(h.evidence)),
                      "checked": list(h.checked), "no_data": list(h.no_data)})
    return {"case": str(path), "anomaly_time": rfc3339(inc.window.start), "detected_time": detect_time,
            "symptom": to_jsonable(inc.symptom), "ranks": ranks, "checked": list(inc.checked),
            "no_data": list(inc.no_data), "label": case.label or None}


def with_detected_time(case: Case) -> Case:
    """The case with ``inject_time`` replaced by the detected onset (``--detect-time``)."""
    from dataclasses import replace

    from rca.onset import detect_onset

    return replace(case, inject_time=detect_onset(case.snapshot.metrics))


def bench_rankers(detect_time: bool = False) -> dict[str, Callable[[Case], list]]:
    """Ours beside the reference baselines, all as ``case -> ranked service names``. With
    ``detect_time`` every ranker is given the detected onset instead of ``inject_time.txt``."""
    from rca.bench.baselines import baro_rank, nsigma_rank, random_rank

    def ours(case: Case) -> list[tuple[str, float, str]]:
        return case_ranking(case, rank_loaded_case(case))

    rankers: dict[str, Callable[[Case], list]] = {
        "rca": ours,
        "baro": lambda c: [s for s, _, _ in baro_rank(c)],
        "nsigma": lambda c: [s for s, _, _ in nsigma_rank(c)],
        "random": lambda c: [s for s, _, _ in random_rank(c, 0)],
    }
    if detect_time:
        return {k: (lambda c, f=f: f(with_detected_time(c))) for k, f in rankers.items()}
    return rankers
