"""SMD / ASD benchmark: multivariate detection and interpretation (``rca bench detect --format smd``).

Layout (InterFusion's data, see shared/data/README.md): any folder under ``root`` that holds
``train.csv[.gz]``, ``test.csv[.gz]`` and ``test_label.csv`` is an entity; its dataset is the
first folder below ``root`` (``smd/machine-1-6`` -> ``smd``). Columns other than
``timestamp`` are the dims, in file order. ``interpretation_label.txt`` (optional) holds one
``start-end:d1,d2,...`` line per anomalous segment: 0-based inclusive test rows, 1-based dims.

Every detector is fitted on train and scores test; nothing is tuned per dataset or entity.
Metrics per entity (oracle thresholds, see ``rca.bench.ad_metrics``), then the mean over the
entities of each dataset:

* ``point_f1`` — best point-wise F1 (the headline);
* ``event_f1`` — best composite F1 of Garg et al. 2021: point-wise precision, event-wise
  recall (share of labelled segments with >= 1 flagged point), at its own best threshold;
* ``pa_f1`` — best point-adjusted F1, inflated by construction, shown apart;
* ``hr100`` / ``hr150`` — interpretation HitRate@100% / @150%: dims ranked by the detector's
  per-dim score averaged over the segment's rows.

Detectors: ``robust_pca_ensemble`` (ours, the default), ``max_z`` (max |z| over dims with
train mean/std — the reference baseline of the data README), and IF / LOF / PCA alone.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from threadpoolctl import threadpool_limits

from models.base import as_matrix
from models.multivariate import IsolationForestScore, LOFScore, PCAReconstruction, RobustPCAEnsemble
from rca.bench.ad_metrics import best_composite_f1, best_f1, best_pa_f1, hit_rate
from rca.errors import BadInput

__all__ = ["DEFAULT", "MaxZBaseline", "detectors", "discover_entities", "load_entity", "render_table",
           "run_smd_bench", "score_entity"]

DEFAULT = "robust_pca_ensemble"
BASELINE = "max_z"
METRICS = ("point_f1", "event_f1", "pa_f1", "hr100", "hr150")
NOTES = {
    "point_f1": "best point-wise F1 over thresholds (oracle), mean over entities",
    "event_f1": "composite F1 (Garg et al. 2021): point precision x event recall, at its best threshold",
    "pa_f1": "point-adjusted F1 (a segment counts whole if any point is flagged) - inflated, for reference",
    "hr100": "HitRate@100%: dims ranked by the per-dim score averaged over each labelled segment",
    "hr150": "HitRate@150%: as hr100 with the top floor(1.5*|G|) dims",
}


class MaxZBaseline:
    """max |x - mean_train| / std_train over dims (std floored at 1e-8); per-dim |z| attributes."""

    def fit(self, X: np.ndarray) -> MaxZBaseline:
        X = as_matrix(X)
        self.mean_ = np.nanmean(X, axis=1)
        self.std_ = np.maximum(np.nanstd(X, axis=1), 1e-8)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return np.abs(as_matrix(X) - self.mean_[:, None]) / self.std_[:, None]

    def time_score(self, X: np.ndarray) -> np.ndarray:
        return np.nanmax(self.anomaly_score(X), axis=0)


def detectors() -> dict[str, Any]:
    """Fresh instances of every detector the bench compares (ours first), default parameters."""
    return {DEFAULT: RobustPCAEnsemble(), BASELINE: MaxZBaseline(), "isolation_forest": IsolationForestScore(),
            "lof": LOFScore(), "pca_reconstruction": PCAReconstruction()}


@dataclass
class Entity:
    dataset: str
    name: str
    train: np.ndarray  # [n_dims, n_train]
    test: np.ndarray  # [n_dims, n_test]
    labels: np.ndarray  # [n_test] bool
    interpretation: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (start, end excl, dims 0-b.)


def _find(d: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (d / name).is_file():
            return d / name
    return None


def _natural(p: Path) -> list[Any]:
    """Sort key that puts omi-2 before omi-10."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(p))]


def discover_entities(root: Path) -> list[tuple[str, str, Path]]:
    """``[(dataset, entity, folder), ...]`` sorted, from the folder layout alone."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory", field="DIR", fix="pass the smd-asd folder")
    found = []
    for lab in sorted(root.rglob("test_label.csv"), key=_natural):
        d = lab.parent
        if _find(d, "train") and _find(d, "test"):
            rel = d.relative_to(root).parts
            found.append((rel[0] if len(rel) > 1 else root.name, d.name, d))
    if not found:
        raise BadInput(f"no entity folders under {root}", field="DIR",
                       fix="each entity folder needs train.csv[.gz], test.csv[.gz] and test_label.csv")
    return found


def _matrix(path: Path) -> np.ndarray:
    frame = pd.read_csv(path)
    frame = frame.drop(columns=[c for c in frame.columns if c == "timestamp"])
    return frame.to_numpy(dtype=np.float64).T


def _interpretation(path: Path, n_test: int, n_dims: int) -> list[tuple[int, int, list[int]]]:
    out = []
    if not path.is_file():
        return out
    for k, line in enumerate(path.read_text().split(), 1):
        try:
            span, dims = line.split(":")
            a, b = (int(v) for v in span.split("-"))
            g = sorted({int(v) - 1 for v in dims.split(",") if v.strip()})
        except ValueError as e:
            raise BadInput(f"{path}:{k}: cannot read {line!r} ({e})", field="interpretation_label.txt",
                           fix="write one start-end:d1,d2,... line per segment") from e
        a, b = max(a, 0), min(b + 1, n_test)
        g = [d for d in g if 0 <= d < n_dims]
        if b > a and g:
            out.append((a, b, g))
    return out


def load_entity(dataset: str, name: str, folder: Path) -> Entity:
    """Read one entity folder (see the module docstring)."""
    train, test = _matrix(_find(folder, "train")), _matrix(_find(folder, "test"))  # type: ignore[arg-type]
    labels = pd.read_csv(folder / "test_label.csv")["label"].to_numpy() > 0
    if train.shape[0] != test.shape[0] or labels.size != test.shape[1]:
        raise BadInput(f"{folder}: train has {train.shape[0]} dims, test {test.shape[0]} dims and "
                       f"{test.shape[1]} rows for {labels.size} labels", field=str(folder),
                       fix="train/test need the same columns and test_label.csv one row per test row")
    interp = _interpretation(folder / "interpretation_label.txt", test.shape[1], test.shape[0])
    return Entity(dataset, name, train, test, labels, interp)


def score_entity(ent: Entity, det: Any) -> dict[str, float]:
    """Fit ``det`` on train, score test, return the five metrics and the seconds taken."""
    t0 = time.perf_counter()
    det.fit(ent.train)
    per_dim = det.anomaly_score(ent.test)
    per_time = det.time_score(ent.test)
    secs = time.perf_counter() - t0
    res = {"point_f1": best_f1(per_time, ent.labels)[0], "event_f1": best_composite_f1(per_time, ent.labels)[0],
           "pa_f1": best_pa_f1(per_time, ent.labels)[0]}
    if ent.interpretation:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN dim over a segment ranks last
            seg = np.stack([np.nanmean(per_dim[:, a:b], axis=1) for a, b, _ in ent.interpretation])
        truth = [g for *_, g in ent.interpretation]
        res["hr100"], res["hr150"] = hit_rate(seg, truth, 1.0), hit_rate(seg, truth, 1.5)
    else:
        res["hr100"] = res["hr150"] = float("nan")
    res["seconds"] = secs
    return {k: _num(v) for k, v in res.items()}


def _num(v: float) -> float | None:
    """Rounded for JSON; NaN (e.g. no interpretation labels) becomes ``None``."""
    return None if np.isnan(v) else round(float(v), 4)


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def run_smd_bench(root: Path, progress: bool = True) -> dict:
    """Fit on train, score test, for every entity under ``root`` and every detector; JSON-ready dict."""
    found = discover_entities(Path(root))
    rows: list[dict[str, Any]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    t_all = time.perf_counter()
    # small matrices: BLAS threads only contend (100x slower matmuls seen on a busy 2-core box)
    with Progress(*columns, disable=not progress, transient=True) as bar, threadpool_limits(1):
        task = bar.add_task("smd bench", total=len(found))
        for dataset, name, folder in found:
            bar.update(task, description=f"{dataset}/{name}")
            try:
                ent = load_entity(dataset, name, folder)
            except Exception as e:  # an unreadable entity is reported, the bench goes on
                rows.append({"dataset": dataset, "entity": name, "detector": "*", "error": f"{e}"})
                bar.advance(task)
                continue
            for det_name, det in detectors().items():
                row: dict[str, Any] = {"dataset": dataset, "entity": name, "detector": det_name}
                try:
                    row.update(score_entity(ent, det))
                except Exception as e:  # a broken detector scores nothing here
                    row["error"] = f"{type(e).__name__}: {e}"
                rows.append(row)
            bar.advance(task)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        summary[dataset] = {}
        for det_name in detectors():
            mine = [r for r in rows if r["dataset"] == dataset and r["detector"] == det_name and "error" not in r]
            summary[dataset][det_name] = {"entities": len(mine), **{m: _mean(mine, m) for m in METRICS},
                                          "seconds": round(sum(r["seconds"] for r in mine), 2)}
    beats = {ds: {m: bool((s[DEFAULT][m] or 0.0) > (s[BASELINE][m] or 0.0)) for m in ("point_f1", "event_f1")}
             for ds, s in summary.items()}
    return {"root": str(root), "default": DEFAULT, "baseline": BASELINE,
            "params": {DEFAULT: RobustPCAEnsemble().get_params()}, "notes": NOTES,
            "summary": summary, "beats_baseline": beats, "entities": rows,
            "errors": [r for r in rows if "error" in r], "seconds": round(time.perf_counter() - t_all, 2)}


def _fmt(v: float | None) -> str:
    return "-" if v is None or np.isnan(v) else f"{v:.3f}"


_SHORT = {DEFAULT: "ours: robust z+PCA", BASELINE: "max|z| (baseline)", "isolation_forest": "IForest",
          "lof": "LOF", "pca_reconstruction": "PCA residual"}


def render_table(res: dict) -> Group:
    """Per dataset and detector (ours first), then per entity: ours vs the max-|z| baseline."""
    main = Table(title="rca bench detect: SMD / ASD (fit on train, score test, one configuration; "
                       "set (entities))",
                 caption="pt-F1 (headline) = best point-wise F1, oracle threshold per entity, mean over "
                         "entities. ev-F1 = composite F1 of Garg et al. 2021 (point precision, event recall) "
                         "at its best threshold. HR = interpretation HitRate@100%/150%, per-dim score averaged "
                         "over each labelled segment. PA-F1* = point-adjusted F1, inflated, for reference only.")
    for col in ("set", "detector", "pt-F1", "ev-F1", "HR100", "HR150", "PA-F1*", "sec"):
        main.add_column(col, justify="left" if col in ("set", "detector") else "right", no_wrap=True)
    for ds, per in res["summary"].items():
        names = list(per)
        for i, name in enumerate(names):
            s = per[name]
            main.add_row(f"{ds} ({s['entities']})" if i == 0 else "", _SHORT.get(name, name),
                         *(_fmt(s[m]) for m in ("point_f1", "event_f1", "hr100", "hr150", "pa_f1")),
                         f"{s['seconds']:.1f}", end_section=i == len(names) - 1,
                         style="bold" if name == res["default"] else None)
    per_ent = Table(title=f"per entity: ours ({res['default']}) vs baseline ({res['baseline']})")
    for col in ("set", "entity", "pt-F1", "base", "ev-F1", "base", "HR100", "base"):
        per_ent.add_column(col, justify="left" if col in ("set", "entity") else "right", no_wrap=True)
    by = {(r["dataset"], r["entity"], r["detector"]): r for r in res["entities"] if "error" not in r}
    for (ds, ent, det), r in by.items():
        if det != res["default"]:
            continue
        b = by.get((ds, ent, res["baseline"]), {})
        per_ent.add_row(ds, ent, *(x for m in ("point_f1", "event_f1", "hr100")
                                   for x in (_fmt(r[m]), _fmt(b.get(m)))))
    parts: list[Any] = [main, per_ent]
    if res["errors"]:
        err = Table(title="errors")
        for col in ("set", "entity", "detector", "error"):
            err.add_column(col)
        for r in res["errors"]:
            err.add_row(r["dataset"], r["entity"], r["detector"], r["error"])
        parts.append(err)
    return Group(*parts)
