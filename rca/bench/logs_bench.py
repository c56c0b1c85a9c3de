"""``rca bench logs DIR``: grouping accuracy of the template miner on loghub-style folders.

A system is a folder ``<S>/`` holding ``<S>_2k.log`` (raw lines) and
``<S>_2k.log_structured_corrected.csv`` (``LineId, …, Content, EventId, EventTemplate``; the
plain ``_structured.csv`` is used when no corrected file exists). Systems are discovered by
globbing ``*/*_2k.log``, so any folder in that layout is scored the same way.

Two numbers per system, one miner configuration for all:

* ``ga_raw`` (headline): raw lines -> ``split_header`` -> miner, as ``rca logs parse`` does;
* ``ga_content``: the ground truth's ``Content`` column -> miner, comparable to published
  Drain numbers (those use a per-system header regex and per-system masking).

Grouping accuracy follows logparser's ``evaluator.get_accuracy``: a parsed group is correct
when its set of lines is exactly the set of lines of one ground-truth group; GA is the share
of lines in correct groups. Lines whose ground-truth EventId is empty are left out, as there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from models.log_header import split_header
from models.log_masking import MASK_RULES
from models.log_templates import LogTemplateMiner
from rca.errors import BadInput

__all__ = ["grouping_accuracy", "render_table", "run_logs_bench"]


def grouping_accuracy(truth: Sequence[Any], parsed: Sequence[Any]) -> float:
    """logparser's grouping accuracy of ``parsed`` group labels against ``truth`` labels.

    Vectorised: a parsed group P is correct iff the pair count ``|P ∩ G|`` equals both ``|P|``
    and ``|G|`` for its (then only) ground-truth group G.
    """
    t = pd.Series(list(truth), dtype=object)
    p = pd.Series(list(parsed), dtype=object)
    if len(t) != len(p):
        raise BadInput(f"{len(t)} truth labels but {len(p)} parsed labels", field="parsed",
                       fix="give one parsed label per ground-truth line")
    keep = t.notna().to_numpy()
    t, p = t[keep], p[keep]
    if len(t) == 0:
        return float("nan")
    df = pd.DataFrame({"t": t.astype(str).to_numpy(), "p": p.astype(str).to_numpy()})
    pair = df.groupby(["p", "t"], sort=False).size().rename("n").reset_index()
    pair["np"] = pair["p"].map(df["p"].value_counts())
    pair["nt"] = pair["t"].map(df["t"].value_counts())
    ok = (pair["n"] == pair["np"]) & (pair["n"] == pair["nt"])
    return float(pair.loc[ok, "n"].sum() / len(df))


def _truth_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}_structured_corrected.csv", f"{stem}_structured.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def _score_system(log_file: Path, miner: LogTemplateMiner) -> dict[str, Any] | None:
    truth_path = _truth_file(log_file.parent, log_file.name)
    if truth_path is None:
        return None
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False, na_values=[""])
    raw = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    n = min(len(raw), len(truth))
    truth, raw = truth.iloc[:n], raw[:n]
    t0 = time.perf_counter()
    raw_templates = miner.fit_transform([split_header(line)[1] for line in raw])
    t_raw = time.perf_counter() - t0
    content = truth["Content"].fillna("").astype(str).tolist()
    content_templates = miner.fit_transform(content)
    ids = truth["EventId"]
    return {
        "lines": n,
        "ga_raw": round(grouping_accuracy(ids, raw_templates), 4),
        "ga_content": round(grouping_accuracy(ids, content_templates), 4),
        "templates_expected": int(ids.dropna().nunique()),
        "templates_raw": len(set(raw_templates)),
        "templates_content": len(set(content_templates)),
        "seconds_raw": round(t_raw, 3),
    }


def run_logs_bench(root: Path, progress: bool = True) -> dict[str, Any]:
    """Score every ``<S>/<S>_2k.log`` under ``root``; JSON-able result with averages."""
    files = sorted(Path(root).glob("*/*_2k.log"))
    if not files:
        raise BadInput(f"no */*_2k.log under {root}", field="DIR",
                       fix="pass a loghub-2k style folder: <S>/<S>_2k.log + structured CSVs")
    miner = LogTemplateMiner()
    systems: dict[str, Any] = {}
    for f in files:
        res = _score_system(f, miner)
        if res is None:
            continue
        systems[f.parent.name] = res
        if progress:
            print(f"  {f.parent.name:<12} GA raw {res['ga_raw']:.3f}  content {res['ga_content']:.3f}", flush=True)
    avg = {k: round(float(np.mean([s[k] for s in systems.values()])), 4) if systems else float("nan")
           for k in ("ga_raw", "ga_content")}
    return {"root": str(root), "systems": systems, "average": avg,
            "config": {"miner": miner.get_params(), "masking": [name for name, _, _ in MASK_RULES],
                       "header": "models.log_header.split_header (generic rules)"}}


def render_table(res: dict[str, Any]) -> Table:
    t = Table(title=f"rca bench logs — grouping accuracy ({res['root']})")
    for col in ("system", "GA raw (header split)", "GA content", "templates raw/content/expected", "s"):
        t.add_column(col, justify="left" if col == "system" else "right")
    for name, s in res["systems"].items():
        t.add_row(name, f"{s['ga_raw']:.3f}", f"{s['ga_content']:.3f}",
                  f"{s['templates_raw']}/{s['templates_content']}/{s['templates_expected']}",
                  f"{s['seconds_raw']:.2f}")
    avg = res["average"]
    t.add_row("[bold]average[/bold]", f"[bold]{avg['ga_raw']:.3f}[/bold]", f"[bold]{avg['ga_content']:.3f}[/bold]",
              "", "")
    return t
