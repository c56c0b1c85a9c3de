"""Telemetry files as a source: one ``Connector`` over a file or a folder of files.

Formats, told apart by extension and content:

=============================  ==============================================================
``*.csv`` wide                 ``time,<service>_<metric>,...`` (case-folder ``metrics.csv``;
                               ``connectors.files.read_metrics``)
``*.csv`` long                 ``timestamp,metric,value[,<label>...][,labels]`` — one sample a
                               row; ``time`` / ``name`` are accepted for the first two columns;
                               every other column is a label (an empty cell = no label);
                               ``labels`` holds a Prometheus label set ``{a="b",c="d"}``
                               (columns win over it). Times are unix **seconds** or RFC 3339.
``*.csv`` logs / traces        the case-folder ``logs.csv`` / ``traces.csv`` layouts
``*.parquet``                  the wide or long layout above (a ``time``/``timestamp`` column
                               may also be a timestamp type)
``*.om`` / ``*.prom`` / text   OpenMetrics 1.0 (ends with ``# EOF``; timestamps in **s**) or
                               Prometheus text 0.0.4 (timestamps in **ms**); every sample needs
                               a timestamp; exemplars are ignored. Series keep their sample
                               names (``x_total``, ``x_bucket{le=..}``) — what
                               ``rca.emit.openmetrics`` writes reads back equal.
``*.json`` / ``*.jsonl``       OTLP/JSON ``ExportTraceServiceRequest`` /
                               ``ExportLogsServiceRequest`` (one document, or one per line), and
                               JSON-lines log records as ``rca.emit.jsonl`` writes them
                               (``ts_ns`` or ``ts``, ``entity``, ``severity``, ``body``, …)
folder with a wide             a case folder (``connectors.files.read_case``)
``metrics.csv``
any other folder               every top-level file above read as one source (what
                               ``rca simulate --out DIR`` writes: ``metrics.om``,
                               ``traces.otlp.json``, ``logs.otlp.json``, ``logs.jsonl``); other
                               files and subfolders are skipped; a log record or span found in
                               two files is kept once
=============================  ==============================================================

Bad files raise ``BadInput`` naming the file, the line or column, and the fix. The exposition
parser is our own line reader (labels through ``prometheus_client.parser.parse_labels``):
``prometheus_client``'s OpenMetrics parser rejects histograms with several timestamps per
series, as backfill files have, and is too slow for files of millions of samples.
"""

from __future__ import annotations

import json
import os
import re
from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.parser import parse_labels

from connectors.files import (
    LOG_COLUMNS,
    TRACE_COLUMNS,
    edge_labels,
    read_case,
    read_logs,
    read_metrics,
    read_traces,
    split_column,
)
from rca.emit.otlp_json import read_otlp_logs, read_otlp_traces
from rca.errors import BadInput, NotFound
from rca.types import (
    Health,
    Inventory,
    LogRecord,
    MetricFrame,
    Relation,
    SeriesKey,
    Snapshot,
    Span,
    Window,
)

__all__ = ["FileConnector", "frame_from_long", "frame_from_wide", "read_exposition", "read_json_telemetry",
           "read_path", "read_table", "select"]

TEXT_SUFFIXES = (".om", ".prom", ".txt", ".openmetrics")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".parquet")
_LONG_TIME = ("timestamp", "time")
_LONG_NAME = ("metric", "name", "__name__")
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?')
_SAMPLE_LINE = re.compile(_SAMPLE.pattern + r"\s+[-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|Inf)\s+[0-9.]+\s*(?:#.*)?\Z")
_JSONL_FIXED = ("ts", "ts_ns", "entity", "severity", "body", "trace_id", "span_id")
_MAX_SECONDS = 1e11  # unix seconds stay below this until the year 5138


# ------------------------------------------------------------------ time columns
def _seconds(col: pd.Series, field: str, where: str) -> np.ndarray:
    """A time column (unix s, RFC 3339 text or a timestamp type) as int64 unix seconds."""
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = pd.to_datetime(col, utc=True)
        if ts.isna().any():
            raise BadInput(f"{where}: {field} has an empty value in row {int(np.flatnonzero(ts.isna())[0]) + 1}",
                           field=field, fix="give every row a time")
        return (ts.astype("int64") // 1_000_000_000).to_numpy(np.int64)
    num = pd.to_numeric(col, errors="coerce")
    if num.isna().any():
        text = col.astype(str)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = num.isna() & parsed.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise BadInput(f"{where} line {i + 2}: {field} {col.iloc[i]!r} is neither unix seconds nor RFC 3339",
                           field=field, fix="write unix seconds (1704067200) or 2024-01-01T00:00:00Z")
        secs = np.where(num.isna(), parsed.astype("int64") / 1e9, num.to_numpy(np.float64))
    else:
        secs = num.to_numpy(np.float64)
    if len(secs) and np.nanmax(np.abs(secs)) > _MAX_SECONDS:
        raise BadInput(f"{where}: {field} values like {secs[np.argmax(np.abs(secs))]:.0f} look like ms or ns",
                       field=field, fix="write unix seconds: divide milliseconds by 1000")
    return np.round(secs).astype(np.int64)


def _matrix(rows: np.ndarray, ts: np.ndarray, vals: np.ndarray, keys: list[SeriesKey]) -> MetricFrame:
    """Samples (row index, unix s, value) as a frame; for a repeated (row, time) the last wins."""
    if not len(keys):
        return MetricFrame.empty()
    uts = np.unique(ts)
    out = np.full((len(keys), len(uts)), np.nan)
    out[rows, np.searchsorted(uts, ts)] = vals
    return MetricFrame(tuple(keys), uts, out)


# ------------------------------------------------------------------ tables (CSV / Parquet)
def _label_set(text: str, where: str) -> dict[str, str]:
    t = text.strip()
    if not t or t == "{}":
        return {}
    if not (t.startswith("{") and t.endswith("}")):
        raise BadInput(f"{where}: labels {text!r} is not a label set", field="labels",
                       fix='write labels as {name="value",other="value"}')
    try:
        return parse_labels(t[1:-1], openmetrics=False)
    except ValueError:
        raise BadInput(f"{where}: labels {text!r} is not a valid label set", field="labels",
                       fix='quote every value: {name="value"}') from None


def _numbers(col: pd.Series) -> tuple[np.ndarray, int | None]:
    """Column as float64 (empty = NaN; ``NaN``/``+Inf``/``-Inf`` text as Go writes them) and the
    row of the first value that is not a number (``None`` when all are)."""
    v = pd.to_numeric(col, errors="coerce").to_numpy(np.float64, copy=True)
    if col.dtype != object:
        return v, None
    text = col.astype(str).str.strip()
    for i in np.flatnonzero(np.isnan(v) & col.notna().to_numpy() & (text != "").to_numpy()):
        try:
            v[i] = float(text.iloc[i])
        except ValueError:
            return v, int(i)
    return v, None


def frame_from_long(df: pd.DataFrame, where: str) -> MetricFrame:
    """A long table (module docstring) as a frame."""
    tcol = next(c for c in _LONG_TIME if c in df.columns)
    ncol = next(c for c in _LONG_NAME if c in df.columns)
    ts = _seconds(df[tcol], tcol, where)
    vals, bad = _numbers(df["value"])
    if bad is not None:
        raise BadInput(f"{where} line {bad + 2}: value {df['value'].iloc[bad]!r} is not a number", field="value",
                       fix="numeric values only (NaN, +Inf allowed); leave a missing value empty")
    names = df[ncol].fillna("").astype(str).str.strip()
    if (names == "").any():
        i = int(np.flatnonzero((names == "").to_numpy())[0])
        raise BadInput(f"{where} line {i + 2}: empty {ncol}", field=ncol, fix="name the metric on every row")
    label_cols = [c for c in df.columns if c not in (tcol, ncol, "value", "labels")]
    group = pd.concat([names, *(df[c].fillna("").astype(str) for c in label_cols),
                       *([df["labels"].fillna("").astype(str)] if "labels" in df.columns else [])], axis=1)
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(group))
    keys: list[SeriesKey] = []
    index: dict[SeriesKey, int] = {}
    remap = np.empty(len(uniq), dtype=np.int64)
    for g, tup in enumerate(uniq):
        labels = _label_set(tup[-1], where) if "labels" in df.columns else {}
        labels.update({c: v for c, v in zip(label_cols, tup[1:1 + len(label_cols)], strict=True) if v != ""})
        key = SeriesKey.of(tup[0], labels)
        remap[g] = index.setdefault(key, len(keys))
        if remap[g] == len(keys):
            keys.append(key)
    return _matrix(remap[codes], ts, vals, keys)


def frame_from_wide(df: pd.DataFrame, where: str) -> MetricFrame:
    """A wide table (``time`` then ``<service>_<metric>`` columns) as a frame, keyed like
    ``connectors.files.read_metrics``."""
    ts = _seconds(df["time"], "time", where)
    cols = [c for c in df.columns if c != "time" and not str(c).startswith("Unnamed:")]
    values = np.empty((len(cols), len(df)))
    for i, c in enumerate(cols):
        v, bad = _numbers(df[c])
        if bad is not None:
            raise BadInput(f"column {c!r} of {where} holds {df[c].iloc[bad]!r} (line {bad + 2}), not a number",
                           field=str(c), fix="numeric values only; leave a missing value empty")
        values[i] = v
    keys = list(edge_labels([split_column(str(c)) for c in cols]))
    rows = np.repeat(np.arange(len(cols)), len(df))
    return _matrix(rows, np.tile(ts, len(cols)), values.ravel(), keys)


def _layout(columns: Iterable[str]) -> str:
    cols = set(map(str, columns))
    if "value" in cols and cols & set(_LONG_TIME) and cols & set(_LONG_NAME):
        return "long"
    if "time" in cols:
        return "wide"
    if set(LOG_COLUMNS) <= cols:
        return "logs"
    if set(TRACE_COLUMNS) <= cols:
        return "traces"
    return "unknown"


def _unknown_layout(path: Path, columns: Iterable[str]) -> BadInput:
    return BadInput(f"{path}: columns {', '.join(map(str, list(columns)[:6]))} match no known layout",
                    field=path.name, fix="use wide 'time,<service>_<metric>,...', long "
                    "'timestamp,metric,value[,<label>...][,labels]', or the case-folder logs/traces columns")


def read_table(path: Path) -> tuple[MetricFrame, tuple[Span, ...], tuple[LogRecord, ...]]:
    """A CSV or Parquet file: metrics (wide or long), or case-folder logs / traces."""
    where = str(path)
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a bad file
            raise BadInput(f"{path} is not a readable Parquet file: {e}", field=path.name,
                           fix="write it with pandas.DataFrame.to_parquet or pyarrow") from None
        layout = _layout(df.columns)
        if layout == "long":
            return frame_from_long(df, where), (), ()
        if layout == "wide":
            return frame_from_wide(df, where), (), ()
        raise _unknown_layout(path, df.columns)
    try:
        header = pd.read_csv(path, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path} is empty", field=path.name, fix="write a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BadInput(f"{path} is not a readable CSV: {e}", field=path.name,
                       fix="write a comma-separated file with a header row") from None
    layout = _layout(header)
    if layout == "wide":
        return read_metrics(path), (), ()
    if layout == "logs":
        return MetricFrame.empty(), (), read_logs(path)
    if layout == "traces":
        return MetricFrame.empty(), read_traces(path), ()
    if layout == "long":
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise BadInput(f"{path} is not a readable CSV: {e}", field=path.name,
                           fix="one sample per row, the same number of columns on every row") from None
        return frame_from_long(df, where), (), ()
    raise _unknown_layout(path, header)


# ------------------------------------------------------------------ exposition text
def _is_openmetrics(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64))
        tail = fh.read().rstrip(b"\n")
    return tail.endswith(b"# EOF") and (len(tail) == 5 or tail[-6:-5] == b"\n")


def read_exposition(path: Path) -> MetricFrame:
    """OpenMetrics 1.0 (timestamps in s) or Prometheus text 0.0.4 (timestamps in ms) with a
    timestamp on every sample, as a frame. ``BadInput`` names the line."""
    om = _is_openmetrics(path)
    scale = 1.0 if om else 1e-3
    series: dict[str, int] = {}
    keys: list[SeriesKey] = []
    rows, ts, vals = array("q"), array("d"), array("d")
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for n, line in enumerate(fh, 1):
                if " # " not in line:  # fast path: a known series, value and timestamp
                    parts = line.rsplit(" ", 2)
                    i = series.get(parts[0]) if len(parts) == 3 else None
                    if i is not None:
                        try:
                            v, t = float(parts[1]), float(parts[2]) * scale
                        except ValueError:
                            pass
                        else:
                            rows.append(i)
                            ts.append(t)
                            vals.append(v)
                            continue
                if not line.strip() or line[0] == "#":
                    continue
                i, v, t = _slow_sample(line, n, path, series, keys)
                rows.append(i)
                ts.append(t * scale)
                vals.append(v)
        except UnicodeDecodeError as e:
            raise BadInput(f"{path} is not UTF-8 text: {e}", field=path.name, fix="save it as UTF-8") from None
    t = np.frombuffer(ts, dtype=np.float64)
    if len(t) and np.nanmax(np.abs(t)) > _MAX_SECONDS:
        raise BadInput(f"{path}: timestamps look like ms in OpenMetrics (s) or µs in 0.0.4 text (ms)", field="timestamp",
                       fix="OpenMetrics timestamps are seconds; drop the `# EOF` line for ms (0.0.4 text)")
    return _matrix(np.frombuffer(rows, dtype=np.int64), np.round(t).astype(np.int64),
                   np.frombuffer(vals, dtype=np.float64), keys)


def _slow_sample(line: str, n: int, path: Path, series: dict[str, int],
                 keys: list[SeriesKey]) -> tuple[int, float, float]:
    """Parse one sample line in full (new series, exemplars, odd spacing)."""
    m = _SAMPLE.match(line)
    if m is None:
        raise BadInput(f"{path} line {n}: {line.strip()[:80]!r} is not a sample", field=f"line {n}",
                       fix='write `name{label="v"} value timestamp`')
    text = m.group(0)
    i = series.get(text)
    if i is None:
        i = series[text] = len(keys)
        keys.append(_sample_key(m, path, n))
    parts = line[m.end():].split(" # ", 1)[0].split()
    if len(parts) < 2:
        raise BadInput(f"{path} line {n}: {text[:60]} has no timestamp", field="timestamp",
                       fix="add a timestamp to every sample (s in OpenMetrics, ms in 0.0.4 text)")
    try:
        return i, float(parts[0]), float(parts[1])
    except ValueError:
        raise BadInput(f"{path} line {n}: value/timestamp {' '.join(parts[:2])!r} is not a number",
                       field=f"line {n}", fix="`<value> <timestamp>` as Go floats") from None


def _sample_key(m: re.Match[str], path: Path, n: int) -> SeriesKey:
    inner = (m.group(2) or "{}")[1:-1]
    try:
        labels = parse_labels(inner, openmetrics=False) if inner.strip() else {}
    except ValueError:
        raise BadInput(f"{path} line {n}: bad label set {m.group(2)[:80]!r}", field=f"line {n}",
                       fix='write labels as {name="value"}, escaping \\ " and newlines') from None
    return SeriesKey.of(m.group(1), labels)


# ------------------------------------------------------------------ JSON files
def _jsonl_log(d: Mapping[str, Any], where: str) -> LogRecord:
    if "ts_ns" in d:
        ts = int(d["ts_ns"])
    elif "ts" in d:
        ts = int(pd.Timestamp(d["ts"]).value) if isinstance(d["ts"], str) else int(float(d["ts"]) * 1e9)
    else:
        raise BadInput(f"{where}: a log record needs ts_ns or ts", field="ts_ns", fix="add ts_ns (unix ns)")
    ent = d.get("entity") or (f"pod:{d['pod']}" if d.get("pod") else f"service:{d.get('service') or 'unknown'}")
    attrs = {k.removeprefix("attr.") if k.removeprefix("attr.") in _JSONL_FIXED else k: v
             for k, v in d.items() if k not in _JSONL_FIXED}
    return LogRecord(ts, str(ent), str(d.get("severity") or "").upper(), str(d.get("body", "")),
                     str(d["trace_id"]).lower() if d.get("trace_id") else None,
                     str(d["span_id"]).lower() if d.get("span_id") else None, attrs)


def _json_docs(path: Path) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path} is not UTF-8 text: {e}", field=path.name, fix="save it as UTF-8") from None
    try:
        return [(1, json.loads(text))]
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise BadInput(f"{path} line {e.lineno}: invalid JSON ({e.msg})", field=f"line {e.lineno}",
                           fix="one JSON document, or one JSON object per line") from None
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                docs.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise BadInput(f"{path} line {n}: invalid JSON ({e.msg})", field=f"line {n}",
                               fix="one JSON object per line") from None
    return docs


def read_json_telemetry(path: Path) -> tuple[list[Span], list[LogRecord]]:
    """Spans and log records of an OTLP/JSON or JSON-lines file (module docstring)."""
    spans: list[Span] = []
    logs: list[LogRecord] = []
    for n, doc in _json_docs(path):
        where = f"{path} line {n}"
        for d in doc if isinstance(doc, list) else [doc]:
            if not isinstance(d, Mapping):
                raise BadInput(f"{where}: expected a JSON object, got {type(d).__name__}", field=f"line {n}",
                               fix="write OTLP/JSON export requests or JSON-lines log records")
            try:
                if "resourceSpans" in d:
                    spans.extend(read_otlp_traces(d))
                elif "resourceLogs" in d:
                    logs.extend(read_otlp_logs(d))
                elif "body" in d or "ts_ns" in d:
                    logs.append(_jsonl_log(d, where))
                else:
                    raise BadInput(f"{where}: keys {', '.join(list(d)[:5])} are neither OTLP/JSON "
                                   "(resourceSpans / resourceLogs) nor a log record (ts_ns, body)",
                                   field=f"line {n}", fix="OTLP metrics are not read: use OpenMetrics text")
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                if isinstance(e, BadInput):
                    raise
                raise BadInput(f"{where}: malformed record ({type(e).__name__}: {e})", field=f"line {n}",
                               fix="check ids (hex), times (integer ns) and attribute values") from None
    return spans, logs


# ------------------------------------------------------------------ files and folders
def _read_file(path: Path) -> tuple[MetricFrame, list[Span], list[LogRecord]]:
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        f, s, lg = read_table(path)
        return f, list(s), list(lg)
    if suffix in JSON_SUFFIXES:
        s, lg = read_json_telemetry(path)
        return MetricFrame.empty(), s, lg
    if suffix in TEXT_SUFFIXES:
        return read_exposition(path), [], []
    raise BadInput(f"{path}: unknown file type {suffix or '(none)'}", field=path.name,
                   fix=f"use one of {', '.join(TABLE_SUFFIXES + JSON_SUFFIXES + TEXT_SUFFIXES)}, or a folder")


def _is_case(d: Path) -> bool:
    m = d / "metrics.csv"
    try:
        return m.is_file() and _layout(pd.read_csv(m, nrows=0).columns) == "wide"
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return True  # let read_case say what is wrong with it


def _readable(p: Path) -> bool:
    if not p.is_file() or p.name.startswith("."):
        return False
    suffix = p.suffix.lower()
    if suffix == ".txt":  # README.txt and friends: only exposition text counts
        with open(p, "rb") as fh:
            head = fh.read(256).lstrip()
        first = head.decode("utf-8", "replace").split("\n", 1)[0]
        return head.startswith((b"# TYPE", b"# HELP")) or _SAMPLE_LINE.match(first) is not None
    return suffix in TABLE_SUFFIXES + JSON_SUFFIXES + TEXT_SUFFIXES


def _inventory(spans: Iterable[Span], logs: Iterable[LogRecord]) -> Inventory:
    entities: dict[str, dict[str, str]] = {}
    relations = []
    for s in spans:
        entities.setdefault(f"service:{s.service}", {"service": s.service})
        pod = s.resource.get("k8s.pod.name")
        if pod:
            entities.setdefault(f"pod:{pod}", {"pod": str(pod)})
            relations.append(Relation(f"pod:{pod}", "member_of", f"service:{s.service}"))
    for r in logs:
        entities.setdefault(r.entity, {})
    return Inventory(entities, tuple(dict.fromkeys(relations)))


def _whole_window(metrics: MetricFrame, spans: list[Span], logs: list[LogRecord]) -> Window:
    times = [int(t) for t in metrics.timestamps[[0, -1]]] if len(metrics.timestamps) else []
    if spans:
        times += [min(s.start_ns for s in spans) // 10**9, max(s.end_ns for s in spans) // 10**9]
    if logs:
        times += [min(r.ts_ns for r in logs) // 10**9, max(r.ts_ns for r in logs) // 10**9]
    ts = metrics.timestamps
    step = int(round(float(np.median(np.diff(ts))))) if len(ts) > 1 else 15
    return Window(min(times), max(times), max(step, 1)) if times else Window(0, 0, 15)


def _merge_metrics(frames: list[MetricFrame]) -> MetricFrame:
    """Stack frames; a series found in several frames is one row (later files fill its gaps)."""
    merged = MetricFrame.concat(frames)
    if len(set(merged.keys)) == len(merged.keys):
        return merged
    first: dict[SeriesKey, int] = {}
    for i, k in enumerate(merged.keys):
        first.setdefault(k, i)
    vals = np.full((len(first), len(merged.timestamps)), np.nan)
    for i, k in enumerate(merged.keys):
        row = merged.values[i]
        j = first[k]
        vals[j] = np.where(np.isnan(row), vals[j], row)
    return MetricFrame(tuple(first), merged.timestamps, vals)


def read_path(path: str | os.PathLike[str]) -> Snapshot:
    """Everything in a file or folder (module docstring) as one snapshot over its whole time."""
    p = Path(path).expanduser()
    if not p.exists():
        raise NotFound(f"no file or folder {p}", field="path", fix="give an existing telemetry file or folder")
    if p.is_dir() and _is_case(p):
        return read_case(p).snapshot
    files = sorted(f for f in p.iterdir() if _readable(f)) if p.is_dir() else [p]
    if not files:
        raise BadInput(f"{p} holds no telemetry files", field="path",
                       fix="put .om/.prom, .csv, .parquet, .json or .jsonl files in it, or give a case folder")
    frames, spans, logs = [], [], []
    for f in files:
        m, s, lg = _read_file(f)
        frames.append(m)
        spans.extend(s)
        logs.extend(lg)
    spans = list({(s.trace_id, s.span_id): s for s in spans}.values())
    logs = list({(r.ts_ns, r.entity, r.severity, r.body, r.trace_id, r.span_id): r for r in logs}.values())
    spans.sort(key=lambda s: (s.start_ns, s.trace_id, s.span_id))
    logs.sort(key=lambda r: r.ts_ns)
    metrics = _merge_metrics(frames)
    return Snapshot(_whole_window(metrics, spans, logs), metrics, tuple(spans), tuple(logs),
                    _inventory(spans, logs))


# ------------------------------------------------------------------ selectors
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def select(frame: MetricFrame, selector: str | None) -> MetricFrame:
    """Rows matching a PromQL series selector ``name{label="v",l!="v",l=~"re",l!~"re"}``
    (either part optional); ``None`` or ``""`` keeps everything."""
    sel = (selector or "").strip()
    if not sel:
        return frame
    m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?", sel, re.S)
    if m is None:
        raise BadInput(f"selector {selector!r} is not a series selector", field="selector",
                       fix='write name{label="value"} (=, !=, =~, !~)')
    name, body = m.group(1), (m.group(2) or "")
    tests = []
    pos = 0
    while pos < len(body.strip()):
        mm = _MATCHER.match(body, pos)
        if mm is None:
            raise BadInput(f"selector {selector!r}: cannot read matcher at {body[pos:pos + 20]!r}",
                           field="selector", fix='write label="value" pairs separated by commas')
        label, op, value = mm.group(1), mm.group(2), json.loads(f'"{mm.group(3)}"')
        try:
            rx = re.compile(value) if op in ("=~", "!~") else None
        except re.error as e:
            raise BadInput(f"selector regex {value!r}: {e}", field="selector", fix="fix the regular expression") from None
        tests.append((label, op, value, rx))
        pos = mm.end()

    def ok(k: SeriesKey) -> bool:
        if name and k.name != name:
            return False
        for label, op, value, rx in tests:
            v = (k.name if label == "__name__" else k.label(label)) or ""
            if (op == "=" and v != value) or (op == "!=" and v == value):
                return False
            if rx is not None and (rx.fullmatch(v) is None) == (op == "=~"):
                return False
        return True

    return frame.select(ok)


# ------------------------------------------------------------------ the connector
class FileConnector:
    """A file or folder as a ``Connector``. Read on first use and again when a file changes
    (size or mtime); ``fetch`` slices to the window (metrics by their unix second, spans by
    start and logs by time in ``[start, end + 1)`` s) and filters metrics by ``selector``."""

    series_selector = True  # fetch(window, selector) takes a Prometheus-style {label="value"} selector

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = path
        self.name = name or f"file:{Path(path).name}"
        self._cache: tuple[tuple, Snapshot] | None = None

    def _signature(self) -> tuple:
        p = Path(self.path).expanduser()
        files = [p, *sorted(p.iterdir())] if p.is_dir() else [p]
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())

    def load(self) -> Snapshot:
        """The whole content (cached)."""
        sig = self._signature()
        if self._cache is None or self._cache[0] != sig:
            self._cache = (sig, read_path(self.path))
        return self._cache[1]

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        s = self.load()
        lo, hi = window.start * 1_000_000_000, (window.end + 1) * 1_000_000_000
        return Snapshot(window=window, metrics=select(s.metrics.between(window.start, window.end), selector),
                        spans=tuple(x for x in s.spans if lo <= x.start_ns < hi),
                        logs=tuple(x for x in s.logs if lo <= x.ts_ns < hi),
                        inventory=s.inventory, warnings=s.warnings)

    def check(self) -> Health:
        try:
            s = self.load()
        except BadInput as e:
            return Health(self.name, "down", str(e))
        except OSError as e:
            return Health(self.name, "down", f"{self.path}: {e}")
        n = (len(s.metrics), len(s.spans), len(s.logs))
        detail = f"{n[0]} series, {n[1]} spans, {n[2]} log records"
        return Health(self.name, "ok" if any(n) else "degraded", detail)
