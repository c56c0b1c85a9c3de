"""Case folders (RCAEval-compatible, see the data README) read into one ``Snapshot``.

A case is a directory holding ``label.json``; next to it ``metrics.csv`` (wide: ``time`` in
unix seconds, then ``<service>_<metric>`` columns), optionally ``inject_time.txt``,
``logs.csv`` and ``traces.csv``. The service dependency graph comes from ``dependency.csv``
(``caller, callee``) or ``graph.csv`` (``cause, effect[, weight]``) in the case folder or one of
its three nearest ancestors (the closest wins; ``dependency.csv`` before ``graph.csv``).

Column ``<service>_<metric>`` becomes ``SeriesKey.of(<metric>, service=<service>)``; the
service is the text before the first ``_`` (a column without ``_`` is metric ``value`` of
the service named like the column, as CIRCA/PyRCA ``X1_value`` already are).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rca.errors import BadInput, NotFound
from rca.types import Inventory, LogRecord, MetricFrame, Relation, SeriesKey, Snapshot, Span, Window

__all__ = ["Case", "column_name", "edge_labels", "iter_cases", "read_case", "read_dependencies", "read_logs",
           "read_metrics", "read_traces", "split_column"]

LOG_COLUMNS = ("timestamp", "service", "level", "message")
TRACE_COLUMNS = ("traceID", "spanID", "parentSpanID", "serviceName", "operationName",
                 "startTime", "duration", "statusCode")
_ERROR_CODES = {"2", "error", "status_code_error"}
_UNSET_CODES = {"", "0", "unset", "status_code_unset"}


@dataclass(frozen=True, eq=False)
class Case:
    """One case folder. ``dependency`` holds ``(dependent, dependency)`` service-name pairs
    ("a depends on b": a calls b, or b is a cause of a in ``graph.csv``); ``None`` when the
    folder and its ancestors have no graph file. ``inject_time`` is unix s or ``None``."""

    path: Path
    snapshot: Snapshot
    inject_time: int | None
    label: dict[str, Any] = field(default_factory=dict)
    dependency: list[tuple[str, str]] | None = None

    @property
    def services(self) -> list[str]:
        """Services with at least one metric column, sorted."""
        return sorted({k.label("service") or "" for k in self.snapshot.metrics.keys})

    @property
    def root_causes(self) -> list[str]:
        """Ground-truth services from the label (all of them for multi-root cases)."""
        roots = self.label.get("root_cause_services") or [self.label.get("root_cause_service")]
        return [str(r) for r in roots if r]


def column_name(key: SeriesKey) -> str:
    """The case-folder column of a series read by :func:`read_metrics`."""
    return f"{key.label('service')}_{key.name}"


def split_column(col: str) -> tuple[str, str]:
    svc, _, metric = col.partition("_")
    return (svc, metric) if metric else (col, "value")


_EDGE = re.compile(r"^edge_.+_(to|from)_([^_]+)$")


def edge_labels(pairs: list[tuple[str, str]]) -> tuple[SeriesKey, ...]:
    """Keys for ``<service>_<metric>`` columns. A call-edge column (``a_edge_..._to_b``
    measured by the caller, ``b_edge_..._from_a`` by the callee) also names the ``peer`` at the
    other end and the ``side`` it was measured on, so the ranker can tell a slow link or callee
    from a slow caller."""
    services = {s for s, _ in pairs}
    keys = []
    for s, m in pairs:
        hit = _EDGE.match(m)
        if hit and hit.group(2) in services and hit.group(2) != s:
            keys.append(SeriesKey.of(m, service=s, peer=hit.group(2),
                                     side="client" if hit.group(1) == "to" else "server"))
        else:
            keys.append(SeriesKey.of(m, service=s))
    return tuple(keys)


def read_metrics(path: Path) -> MetricFrame:
    """``metrics.csv`` -> ``MetricFrame`` (sorted by time; for a repeated time the last row wins)."""
    where = path.name
    try:
        df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path} is empty", field=where, fix="write a header row: time,<service>_<metric>,...") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BadInput(f"{path} is not a readable CSV: {e}", field=where,
                       fix="write a comma-separated file with a header row") from None
    if "time" not in df.columns:
        raise BadInput(f"{path} has no 'time' column (columns: {', '.join(map(str, df.columns[:5]))} ...)",
                       field="time", fix="name the unix-seconds column 'time'")
    df = df.loc[:, [c for c in df.columns if not str(c).startswith("Unnamed:")]]
    if df.empty:
        raise BadInput(f"{path} has no rows", field=where, fix="add at least one row of samples")
    t = pd.to_numeric(df["time"], errors="coerce")
    if t.isna().any():
        bad = df["time"][t.isna()].iloc[0]
        raise BadInput(f"time value {bad!r} in {path} is not a number", field="time",
                       fix="use integer unix seconds in the time column")
    cols = [c for c in df.columns if c != "time"]
    for c in cols:
        if df[c].dtype == object:
            num = pd.to_numeric(df[c].str.strip().replace("", np.nan), errors="coerce")
            bad = df[c][num.isna() & df[c].notna() & (df[c].str.strip() != "")]
            if len(bad):
                raise BadInput(f"column {c!r} of {path} holds {bad.iloc[0]!r}, not a number",
                               field=str(c), fix="numeric values only; leave a missing value empty")
            df[c] = num
    df = df.assign(time=np.round(t.to_numpy(dtype=np.float64)).astype(np.int64))
    df = df.sort_values("time", kind="stable").drop_duplicates("time", keep="last")
    keys = edge_labels([split_column(str(c)) for c in cols])
    values = np.ascontiguousarray(df[cols].to_numpy(dtype=np.float64).T)
    return MetricFrame(keys, df["time"].to_numpy(), values.reshape(len(cols), len(df)))


def _read_inject_time(path: Path) -> int | None:
    if not path.is_file():
        return None
    text = path.read_text().strip()
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise BadInput(f"{path} holds {text[:40]!r}, not unix seconds", field="inject_time",
                       fix="write one integer: the unix second the fault started")
    return int(v)


def _read_label(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        label = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path} is not valid JSON: {e}", field="label.json", fix="fix the JSON syntax") from None
    if not isinstance(label, dict):
        raise BadInput(f"{path} must hold a JSON object", field="label.json",
                       fix='write {"root_cause_service": "...", ...}')
    return label


def _graph_file(case_dir: Path) -> Path | None:
    here = case_dir.resolve()
    for d in [here, *here.parents[:3]]:
        for name in ("dependency.csv", "graph.csv"):
            if (d / name).is_file():
                return d / name
    return None


def read_dependencies(path: Path) -> list[tuple[str, str]]:
    """``dependency.csv`` or ``graph.csv`` -> ``(dependent, dependency)`` service pairs."""
    cols = ("caller", "callee") if path.name == "dependency.csv" else ("cause", "effect")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise BadInput(f"{path} is not a readable CSV: {e}", field=path.name,
                       fix=f"write a header {','.join(cols)} and one edge per row") from None
    if not set(cols) <= set(df.columns):
        raise BadInput(f"{path} needs columns {', '.join(cols)}", field=path.name,
                       fix=f"write a header {','.join(cols)}")
    a, b = (df[c].str.strip() for c in cols)
    pairs = zip(a, b, strict=True) if cols[0] == "caller" else zip(b, a, strict=True)
    return list(dict.fromkeys((x, y) for x, y in pairs if x and y and x != y))


def read_logs(path: Path) -> tuple[LogRecord, ...]:
    df = _read_str_csv(path, LOG_COLUMNS)
    ts = _int_column(df, "timestamp", path)
    extra = [c for c in ("pod", "container") if c in df.columns]
    tids = df["traceID"] if "traceID" in df.columns else [""] * len(df)
    sids = df["spanID"] if "spanID" in df.columns else [""] * len(df)
    attrs = df[extra].to_dict("records") if extra else [{}] * len(df)
    return tuple(
        LogRecord(int(t), f"service:{svc or 'unknown'}", lvl.strip().upper(), msg, tid.lower() or None,
                  sid.lower() or None, {k: v for k, v in at.items() if v})
        for t, svc, lvl, msg, tid, sid, at in zip(ts, df["service"].str.strip(), df["level"], df["message"],
                                                  tids, sids, attrs, strict=True))


def _status(code: str) -> str:
    c = code.strip().lower()
    if c in _UNSET_CODES:
        return "unset"
    if c in _ERROR_CODES or (c.isdigit() and int(c) >= 500):
        return "error"
    return "ok"


def read_traces(path: Path) -> tuple[Span, ...]:
    df = _read_str_csv(path, TRACE_COLUMNS)
    start = _int_column(df, "startTime", path) * 1000
    end = start + _int_column(df, "duration", path) * 1000
    pods = df["pod"].str.strip() if "pod" in df.columns else [""] * len(df)
    out = []
    for tid, sid, parent, svc, op, s, e, code, pod in zip(
            df["traceID"].str.strip().str.lower(), df["spanID"].str.strip().str.lower(),
            df["parentSpanID"].str.strip().str.lower(), df["serviceName"].str.strip(), df["operationName"],
            start, end, df["statusCode"], pods, strict=True):
        resource = {"service.name": svc, "k8s.pod.name": pod} if pod else {"service.name": svc}
        out.append(Span(tid, sid, parent or None, svc, op, int(s), int(e), _status(code),  # type: ignore[arg-type]
                        resource=resource))
    return tuple(out)


def _read_str_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BadInput(f"{path} is not a readable CSV: {e}", field=path.name,
                       fix=f"write a header {','.join(required)}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BadInput(f"{path} lacks columns {', '.join(missing)}", field=path.name,
                       fix=f"write a header starting {','.join(required)}")
    return df


def _int_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    v = pd.to_numeric(df[col].str.strip(), errors="coerce")
    if v.isna().any():
        bad = df[col][v.isna()].iloc[0]
        raise BadInput(f"{col} value {bad!r} in {path} is not an integer", field=col,
                       fix=f"write {col} as an integer")
    return np.round(v.to_numpy(dtype=np.float64)).astype(np.int64)


def read_case(path: str | Path) -> Case:
    """Read one case folder. Bad input raises ``BadInput`` / ``NotFound`` naming the file."""
    case_dir = Path(path).expanduser()
    if not case_dir.exists():
        raise NotFound(f"no case folder {case_dir}", field="path", fix="give an existing case folder")
    if not case_dir.is_dir():
        raise BadInput(f"{case_dir} is not a folder", field="path", fix="give the case folder, not a file in it")
    mpath = case_dir / "metrics.csv"
    if not mpath.is_file():
        raise NotFound(f"{case_dir} has no metrics.csv", field="metrics.csv",
                       fix="a case folder holds metrics.csv (time,<service>_<metric>,...) and label.json")
    metrics = read_metrics(mpath)
    ts = metrics.timestamps
    step = int(round(float(np.median(np.diff(ts))))) if len(ts) > 1 else 1
    window = Window(int(ts[0]), int(ts[-1]), max(step, 1))
    logs = read_logs(case_dir / "logs.csv") if (case_dir / "logs.csv").is_file() else ()
    spans = read_traces(case_dir / "traces.csv") if (case_dir / "traces.csv").is_file() else ()
    gfile = _graph_file(case_dir)
    deps = read_dependencies(gfile) if gfile else None

    services = {k.label("service") or "" for k in metrics.keys}
    services.update(s.service for s in spans if s.service)
    services.update(r.entity.split(":", 1)[1] for r in logs)
    for a, b in deps or ():
        services.update((a, b))
    entities: dict[str, dict[str, str]] = {f"service:{s}": {"service": s} for s in sorted(services) if s}
    relations = [Relation(f"service:{a}", "calls", f"service:{b}") for a, b in deps or ()]
    for s in spans:
        pod = s.resource.get("k8s.pod.name")
        if pod:
            entities.setdefault(f"pod:{pod}", {"pod": pod})
            relations.append(Relation(f"pod:{pod}", "member_of", f"service:{s.service}"))
    inventory = Inventory(entities, tuple(dict.fromkeys(relations)))
    snapshot = Snapshot(window, metrics, spans, logs, inventory)
    return Case(case_dir, snapshot, _read_inject_time(case_dir / "inject_time.txt"),
                _read_label(case_dir / "label.json"), deps)


def iter_cases(root: str | Path) -> list[Path]:
    """Every folder under ``root`` holding ``label.json``, sorted; ``[root]`` if it is a case."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise NotFound(f"no folder {base}", field="path", fix="give a folder of case folders")
    if (base / "label.json").is_file():
        return [base]
    return sorted(p.parent for p in base.rglob("label.json") if p.is_file())
