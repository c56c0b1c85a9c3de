"""``rca bench rca DIR...``: run rankers over folders of case folders and score them.

Each case is read once and handed to every ranker. A ranker returns service names best first
(``"service:x"`` entity ids and ``(service, score, ...)`` tuples are accepted too). A ranker
that raises on a case scores 0 there and the error is kept in the result; a case that cannot
be read or has no label scores 0 for every ranker. The bench never stops half-way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.files import Case, iter_cases, read_case
from rca.bench.metrics import METRIC_NAMES, aggregate, canonical_fault, case_scores
from rca.errors import RcaError
from rca.rank.categories import MICROSERVICE_CATEGORIES
from rca.types import ENTITY_KINDS

__all__ = ["BenchResult", "CaseResult", "render_fault_table", "render_report", "render_table", "run_rca_bench"]

RankerFn = Callable[[Case], Sequence[Any]]
CATEGORIES = MICROSERVICE_CATEGORIES | {"unknown"}
_ZERO = dict.fromkeys(METRIC_NAMES, 0.0)


@dataclass
class CaseResult:
    """One case under every ranker: scores, top 5 and errors (by ranker name)."""

    folder: str
    case: str
    truths: list[str]
    fault: str = ""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    top5: dict[str, list[str]] = field(default_factory=dict)
    category: dict[str, str] = field(default_factory=dict)  # top-1 category, rankers that give one
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchResult:
    folders: list[str]
    rankers: list[str]
    cases: list[CaseResult] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{folder: {ranker: {"cases", "AC@1".."AC@5", "Avg@5", "errors", "seconds"}}}``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for folder in self.folders:
            rows = [c for c in self.cases if c.folder == folder]
            out[folder] = {}
            for r in self.rankers:
                agg = aggregate(c.scores.get(r, _ZERO) for c in rows)
                agg["errors"] = sum(r in c.errors for c in rows)
                known = [c for c in rows if canonical_fault(c.fault) and r in c.category]
                if known:  # category of the top hypothesis vs the label's fault type
                    agg["category@1"] = sum(c.category[r] == canonical_fault(c.fault) for c in known) / len(known)
                agg["seconds"] = round(sum(c.seconds.get(r, 0.0) for c in rows), 3)
                out[folder][r] = agg
        return out

    def by_fault(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """``{folder: {fault: {ranker: {...}}}}``: the summary split by the label's fault type."""
        out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        for folder in self.folders:
            rows = [c for c in self.cases if c.folder == folder]
            for fault in sorted({c.fault for c in rows}):
                sub = [c for c in rows if c.fault == fault]
                out.setdefault(folder, {})[fault] = {
                    r: aggregate(c.scores.get(r, _ZERO) for c in sub) for r in self.rankers}
        return out

    def overall(self) -> dict[str, dict[str, float]]:
        """Mean over folders (each set weighs the same), per ranker."""
        summ = self.summary()
        out = {}
        for r in self.rankers:
            per = [summ[f][r] for f in self.folders if summ[f][r]["cases"]]
            out[r] = {m: sum(p[m] for p in per) / len(per) if per else 0.0 for m in METRIC_NAMES}
            out[r]["mean_seconds_per_case"] = (sum(p["seconds"] for p in per)
                                               / max(sum(p["cases"] for p in per), 1))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"folders": self.folders, "rankers": self.rankers, "summary": self.summary(),
                "overall": self.overall(), "by_fault": self.by_fault(),
                "cases": [vars(c) for c in self.cases]}

    def to_json(self, indent: int | None = 2) -> str:
        """The whole result as JSON text (summary per folder and ranker, then every case)."""
        return json.dumps(self.to_dict(), indent=indent)


def _names(ranked: Sequence[Any]) -> list[str]:
    out = []
    for item in ranked:
        name = str(item[0] if isinstance(item, tuple | list) else getattr(item, "root", item))
        kind, sep, rest = name.partition(":")
        out.append(rest if sep and kind in ENTITY_KINDS else name)
    return out


def run_rca_bench(dirs: Sequence[str | Path], rankers: Mapping[str, RankerFn],
                  progress: bool = True) -> BenchResult:
    """Score every ranker on every case under each of ``dirs`` (see :func:`iter_cases`)."""
    folders = [str(d) for d in dirs]
    result = BenchResult(folders, list(rankers))
    todo = [(folder, p) for folder in folders for p in iter_cases(folder)]
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("rca bench", total=len(todo))
        for folder, path in todo:
            base = Path(folder).expanduser()
            rel = str(path.relative_to(base)) if path.is_relative_to(base) and path != base else path.name
            bar.update(task, description=f"{Path(folder).name}/{rel}")
            result.cases.append(_run_case(folder, rel, path, rankers))
            bar.advance(task)
    return result


def _run_case(folder: str, rel: str, path: Path, rankers: Mapping[str, RankerFn]) -> CaseResult:
    try:
        case = read_case(path)
        truths = case.root_causes
        if not truths:
            raise RcaError(f"{path}/label.json names no root_cause_service")
    except Exception as e:  # unreadable case: 0 for every ranker, reason kept
        res = CaseResult(folder, rel, [])
        for name in rankers:
            res.scores[name], res.errors[name] = dict(_ZERO), f"case: {e}"
        return res
    res = CaseResult(folder, rel, truths, str(case.label.get("fault") or ""))
    for name, fn in rankers.items():
        t0 = time.perf_counter()
        try:
            raw = list(fn(case))
            ranked = _names(raw)
            res.scores[name] = case_scores(ranked, truths)
            if raw and isinstance(raw[0], tuple | list) and len(raw[0]) >= 3 and raw[0][2] in CATEGORIES:
                res.category[name] = str(raw[0][2])
            res.top5[name] = ranked[:5]
        except Exception as e:  # a broken ranker scores 0 here; the bench goes on
            res.scores[name], res.errors[name] = dict(_ZERO), f"{type(e).__name__}: {e}"
        res.seconds[name] = round(time.perf_counter() - t0, 4)
    return res


def render_table(result: BenchResult) -> Table:
    """One row per folder and ranker: cases, AC@1, AC@3, AC@5, Avg@5, errors."""
    table = Table(title="rca bench — root-cause ranking")
    for col in ("set", "ranker", "cases", "AC@1", "AC@3", "AC@5", "Avg@5", "cat@1", "s/case", "errors"):
        table.add_column(col, justify="left" if col in ("set", "ranker") else "right")
    names = [Path(f).name or f for f in result.folders]
    show = dict(zip(result.folders, names if len(set(names)) == len(names) else result.folders, strict=True))
    for folder, per in result.summary().items():
        for i, (ranker, s) in enumerate(per.items()):
            table.add_row(show[folder] if i == 0 else "", ranker, str(int(s["cases"])),
                          *(f"{s[m]:.2f}" for m in ("AC@1", "AC@3", "AC@5", "Avg@5")),
                          f"{s['category@1']:.2f}" if "category@1" in s else "",
                          f"{s['seconds'] / max(s['cases'], 1):.3f}",
                          str(int(s["errors"])) if s["errors"] else "",
                          end_section=i == len(per) - 1)
    return table


def render_fault_table(result: BenchResult) -> Table:
    """AC@1 and Avg@5 per set and fault type, one column pair per ranker."""
    table = Table(title="per fault type — AC@1 / Avg@5")
    table.add_column("set", max_width=14)
    table.add_column("fault", no_wrap=True)
    table.add_column("cases", justify="right")
    for r in result.rankers:
        table.add_column(r, justify="right", no_wrap=True)
    for folder, faults in result.by_fault().items():
        for i, (fault, per) in enumerate(faults.items()):
            n = int(next(iter(per.values()))["cases"]) if per else 0
            table.add_row(Path(folder).name if i == 0 else "", fault or "?", str(n),
                          *(f"{per[r]['AC@1']:.2f}/{per[r]['Avg@5']:.2f}" for r in result.rankers),
                          end_section=i == len(faults) - 1)
    return table


def render_report(result: BenchResult) -> Group:
    """What ``rca bench rca`` prints: the summary, the per-fault table, the mean over sets."""
    line = "mean over sets: " + "; ".join(
        f"{r} AC@1 {v['AC@1']:.2f} AC@3 {v['AC@3']:.2f} Avg@5 {v['Avg@5']:.2f} ({v['mean_seconds_per_case']:.3f} s/case)"
        for r, v in result.overall().items())
    return Group(render_table(result), render_fault_table(result), line)
