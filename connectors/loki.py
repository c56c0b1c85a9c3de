"""Grafana Loki as a log source (HTTP API of Loki 2.4+, telemetry reference §6.2).

``fetch`` runs one LogQL ``query_range`` (``direction=forward``, times in **ns**, ``end``
exclusive) and pages: when a page holds ``limit`` entries, the next request starts **at** the
last timestamp seen, and entries already read at that timestamp are skipped, so nothing is
lost when several lines share one nanosecond and nothing is read twice. A metric query
(``resultType: matrix``, e.g. ``sum by (pod) (count_over_time({job="x"} |= "error" [1m]))``)
becomes series named ``logql`` with the result's labels.

A stream's labels decide the log record (first match wins):

* entity: ``pod`` -> ``pod:<pod>``; else ``service`` / ``service_name`` / ``app`` / ``job``
  -> ``service:<value>``; else ``service:unknown``;
* severity: the ``level`` / ``detected_level`` / ``severity`` label, else the first level word in
  the line (``level=error``, ``"level":"warn"``, ``ERROR``, ``[WARN]`` …), else ``""``;
  normalised to upper case with ``WARNING`` -> ``WARN``, ``ERR``/``EROR`` -> ``ERROR``,
  ``CRIT``/``CRITICAL``/``PANIC`` -> ``FATAL``;
* trace id: ``traceID=`` / ``trace_id=`` / ``"traceId":`` in the line, else a ``trace_id`` /
  ``traceID`` label; lowercase hex, 64-bit ids left-padded to 32 characters;
* attributes: all stream labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

from connectors.http import HttpSource
from rca.errors import SourceError
from rca.types import EntityId, Health, LogRecord, MetricFrame, SeriesKey, Snapshot, Window

__all__ = ["LokiConnector", "entity_of_stream", "severity_of", "trace_id_of"]

NS = 1_000_000_000
_ENTITY_LABELS = ("service", "service_name", "app", "job")
_LEVEL_LABELS = ("level", "detected_level", "severity")
_LEVELS = {"trace": "TRACE", "debug": "DEBUG", "dbug": "DEBUG", "info": "INFO", "information": "INFO",
           "notice": "INFO", "warn": "WARN", "warning": "WARN", "error": "ERROR", "err": "ERROR",
           "eror": "ERROR", "fatal": "FATAL", "crit": "FATAL", "critical": "FATAL", "panic": "FATAL",
           "emerg": "FATAL", "alert": "FATAL"}
_LEVEL_KV = re.compile(r"""(?i)\b(?:level|lvl|severity|loglevel)["']?\s*[=:]\s*["']?([a-z]+)""")
_LEVEL_WORD = re.compile(r"\b(TRACE|DEBUG|INFO|WARNING|WARN|ERROR|FATAL|CRITICAL|PANIC)\b")
_TRACE_IN_LINE = re.compile(r"""(?i)\btrace[_-]?id["']?\s*[=:]\s*["']?([0-9a-f]{16,32})\b""")
_HEX = re.compile(r"[0-9a-fA-F]{16,32}")


def entity_of_stream(labels: Mapping[str, str]) -> EntityId:
    """The entity of a Loki stream (module docstring)."""
    if labels.get("pod"):
        return f"pod:{labels['pod']}"
    for k in _ENTITY_LABELS:
        if labels.get(k):
            return f"service:{labels[k]}"
    return "service:unknown"


def _norm_level(v: str) -> str:
    v = v.strip()
    return _LEVELS.get(v.lower(), v.upper())


def severity_of(labels: Mapping[str, str], line: str) -> str:
    """Severity from the stream labels, else from the line; ``""`` when neither says."""
    for k in _LEVEL_LABELS:
        if labels.get(k):
            return _norm_level(labels[k])
    m = _LEVEL_KV.search(line)
    if m and m.group(1).lower() in _LEVELS:
        return _LEVELS[m.group(1).lower()]
    m = _LEVEL_WORD.search(line)
    return _LEVELS[m.group(1).lower()] if m else ""


def trace_id_of(labels: Mapping[str, str], line: str) -> str | None:
    """A trace id in the line (``traceID=…``, ``trace_id=…``) or a label, as 32 lowercase hex."""
    m = _TRACE_IN_LINE.search(line)
    tid = m.group(1) if m else (labels.get("trace_id") or labels.get("traceID") or labels.get("traceId"))
    if not tid or not _HEX.fullmatch(tid):
        return None
    return tid.lower().zfill(32)


class LokiConnector:
    """Logs from Loki for one window (see the module docstring for the mapping).

    ``query`` is the default LogQL (``selector`` in :meth:`fetch` overrides it); ``limit`` is
    the page size (Loki caps it at ``max_entries_limit_per_query``, default 5000);
    ``max_pages`` bounds one fetch (a warning says when it stopped early). ``tenant`` is sent
    as ``X-Scope-OrgID``.
    """

    series_selector = True  # fetch(window, selector) takes a Prometheus-style {label="value"} selector

    def __init__(self, url: str, *, client: httpx.Client | None = None, name: str = "loki",
                 query: str = '{job=~".+"}', tenant: str | None = None, bearer_token: str | None = None,
                 basic_auth: tuple[str, str] | None = None, timeout_s: float = 10, retries: int = 3,
                 limit: int = 5000, max_pages: int = 100, backoff_s: float = 0.2) -> None:
        self.url = url
        self.name = name
        self.query = query
        self.limit = limit
        self.max_pages = max_pages
        self.http = HttpSource(name, url, client=client, tenant=tenant, bearer_token=bearer_token,
                               basic_auth=basic_auth, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)

    # ------------------------------------------------------------ API calls
    def _data(self, path: str, params: Mapping[str, Any]) -> Any:
        doc = self.http.get_json(path, params)
        if not isinstance(doc, Mapping) or "data" not in doc:
            raise SourceError(self.name, f"{path} answered without a 'data' field: {str(doc)[:120]!r}")
        if doc.get("status", "success") != "success":
            raise SourceError(self.name, f"{path}: status {doc.get('status')!r}: {doc.get('error', '')}")
        return doc["data"]

    def _range(self, query: str, start_ns: int, end_ns: int, step_s: int) -> Mapping[str, Any]:
        data = self._data("/loki/api/v1/query_range", {
            "query": query, "start": str(start_ns), "end": str(end_ns), "limit": str(self.limit),
            "direction": "forward", "step": f"{step_s}s"})
        if not isinstance(data, Mapping) or not isinstance(data.get("result"), list):
            raise SourceError(self.name, f"query_range answered an unexpected shape: {str(data)[:120]!r}")
        return data

    def labels(self, window: Window | None = None) -> list[str]:
        """Label names Loki knows (in ``window`` when given; Loki's default is the last 6 h)."""
        return self._strings("/loki/api/v1/labels", window)

    def label_values(self, name: str, window: Window | None = None) -> list[str]:
        """Values of label ``name``."""
        return self._strings(f"/loki/api/v1/label/{name}/values", window)

    def _strings(self, path: str, window: Window | None) -> list[str]:
        params = {} if window is None else {"start": str(window.start * NS), "end": str((window.end + 1) * NS)}
        data = self._data(path, params)
        if data is None:
            return []
        if not isinstance(data, list):
            raise SourceError(self.name, f"{path} answered {type(data).__name__}, not a list")
        return [str(x) for x in data]

    # ------------------------------------------------------------ Connector
    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        query = selector or self.query
        start, end = window.start * NS, (window.end + 1) * NS
        step = max(window.step, math.ceil(max(window.duration, 1) / 11_000))  # Loki's 11,000-point cap
        logs: list[LogRecord] = []
        warnings: list[str] = []
        boundary_ts, boundary_seen = -1, set()
        for _ in range(self.max_pages):
            data = self._range(query, start, end, step)
            if data.get("resultType") == "matrix":
                return Snapshot(window, self._matrix(data["result"]))
            entries = self._entries(data["result"])
            for ts, key, labels, line in entries:
                if ts == boundary_ts and (key, line) in boundary_seen:
                    continue
                logs.append(LogRecord(ts, entity_of_stream(labels), severity_of(labels, line), line,
                                      trace_id_of(labels, line), None, dict(labels)))
            if len(entries) < self.limit:
                break
            last = max(e[0] for e in entries)
            at_last = {(k, ln) for ts, k, _, ln in entries if ts == last}
            if last == boundary_ts:
                if at_last <= boundary_seen:  # more than `limit` lines share one nanosecond
                    warnings.append(f"{self.name}: {self.limit} or more lines share ns {last}; lines past the "
                                    f"first {self.limit} at that instant may be missing (raise limit)")
                    start, boundary_ts, boundary_seen = last + 1, -1, set()
                    continue
                at_last |= boundary_seen
            start, boundary_ts, boundary_seen = last, last, at_last
        else:
            warnings.append(f"{self.name}: stopped after {self.max_pages} pages of {self.limit} lines; "
                            f"logs after ns {start} are missing (narrow the query)")
        logs.sort(key=lambda r: r.ts_ns)
        return Snapshot(window, MetricFrame.empty(), logs=tuple(logs), warnings=tuple(warnings))

    def _entries(self, result: list[Any]) -> list[tuple[int, tuple, Mapping[str, str], str]]:
        out = []
        try:
            for stream in result:
                labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
                key = tuple(sorted(labels.items()))
                for ts, line, *_ in stream.get("values") or ():
                    out.append((int(ts), key, labels, str(line)))
        except (TypeError, ValueError, AttributeError) as e:
            raise SourceError(self.name, f"query_range returned a malformed stream ({e}); expected "
                                         '{"stream": {labels}, "values": [["<ns>", "<line>"], ...]}') from None
        return out

    def _matrix(self, result: list[Any]) -> MetricFrame:
        try:
            series = [(SeriesKey.of("logql", {str(k): str(v) for k, v in (r.get("metric") or {}).items()}),
                       [(int(round(float(t))), float(v)) for t, v in r.get("values") or ()]) for r in result]
        except (TypeError, ValueError, AttributeError) as e:
            raise SourceError(self.name, f"query_range returned a malformed matrix ({e})") from None
        if not series:
            return MetricFrame.empty()
        ts = np.unique(np.array([t for _, pts in series for t, _ in pts], dtype=np.int64))
        vals = np.full((len(series), len(ts)), np.nan)
        for i, (_, pts) in enumerate(series):
            if pts:
                t = np.array([p[0] for p in pts], dtype=np.int64)
                vals[i, np.searchsorted(ts, t)] = [p[1] for p in pts]
        return MetricFrame(tuple(k for k, _ in series), ts, vals)

    def check(self) -> Health:
        try:
            resp, dt = self.http.timed_get("/ready")
        except SourceError as e:
            return Health(self.name, "down", str(e))
        text = resp.text.strip()
        if resp.is_success and text.lower().startswith("ready"):
            return Health(self.name, "ok", "ready", dt)
        return Health(self.name, "degraded" if resp.status_code < 500 else "down",
                      f"HTTP {resp.status_code}: {text[:200]}", dt)
