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

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.files import Case, iter_cases, read_case
from rca.bench.metrics import METRIC_NAMES, aggregate, case_scores
from rca.errors import RcaError
from rca.types import ENTITY_KINDS

__all__ = ["BenchResult", "CaseResult", "render_table", "run_rca_bench"]

RankerFn = Callable[[Case], Sequence[Any]]
_ZERO = dict.fromkeys(METRIC_NAMES, 0.0)


@dataclass
class CaseResult:
    """One case under every ranker: scores, top 5 and errors (by ranker name)."""

    folder: str
    case: str
    truths: list[str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    top5: dict[str, list[str]] = field(default_factory=dict)
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
                agg["seconds"] = round(sum(c.seconds.get(r, 0.0) for c in rows), 3)
                out[folder][r] = agg
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"folders": self.folders, "rankers": self.rankers, "summary": self.summary(),
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
    res = CaseResult(folder, rel, truths)
    for name, fn in rankers.items():
        t0 = time.perf_counter()
        try:
            ranked = _names(fn(case))
            res.scores[name] = case_scores(ranked, truths)
            res.top5[name] = ranked[:5]
        except Exception as e:  # a broken ranker scores 0 here; the bench goes on
            res.scores[name], res.errors[name] = dict(_ZERO), f"{type(e).__name__}: {e}"
        res.seconds[name] = round(time.perf_counter() - t0, 4)
    return res


def render_table(result: BenchResult) -> Table:
    """One row per folder and ranker: cases, AC@1, AC@3, AC@5, Avg@5, errors."""
    table = Table(title="rca bench — root-cause ranking")
    for col in ("set", "ranker", "cases", "AC@1", "AC@3", "AC@5", "Avg@5", "errors"):
        table.add_column(col, justify="left" if col in ("set", "ranker") else "right")
    names = [Path(f).name or f for f in result.folders]
    show = dict(zip(result.folders, names if len(set(names)) == len(names) else result.folders, strict=True))
    for folder, per in result.summary().items():
        for i, (ranker, s) in enumerate(per.items()):
            table.add_row(show[folder] if i == 0 else "", ranker, str(int(s["cases"])),
                          *(f"{s[m]:.2f}" for m in ("AC@1", "AC@3", "AC@5", "Avg@5")),
                          str(int(s["errors"])) if s["errors"] else "",
                          end_section=i == len(per) - 1)
    return table
