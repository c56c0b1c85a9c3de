"""Log records as JSON Lines, the shape log shippers (Vector, Fluent Bit, Promtail) pick up.

One object per line, keys in this order::

    {"ts": "2026-11-20T19:52:00.123456789Z", "ts_ns": 1795204320123456789, "entity": "pod:x",
     "severity": "ERROR", "body": "...", "trace_id": "..." | null, "span_id": "..." | null,
     **attributes}

An attribute whose key collides with one of the fixed keys is written as ``attr.<key>``.
Non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no
such numbers); values JSON cannot hold are written with ``str``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from os import PathLike
from typing import Any

from rca.types import LogRecord

__all__ = ["jsonl_line", "rfc3339_ns", "write_jsonl_logs"]

_FIXED = ("ts", "ts_ns", "entity", "severity", "body", "trace_id", "span_id")


def rfc3339_ns(ts_ns: int) -> str:
    """Unix ns -> ``2026-11-20T19:52:00.123456789Z`` (always nine fraction digits, UTC)."""
    s, ns = divmod(int(ts_ns), 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def jsonl_line(r: LogRecord) -> str:
    """One record as a JSON object (no trailing newline)."""
    d: dict[str, Any] = {"ts": rfc3339_ns(r.ts_ns), "ts_ns": int(r.ts_ns), "entity": r.entity,
                         "severity": r.severity, "body": r.body, "trace_id": r.trace_id, "span_id": r.span_id}
    for k, v in r.attributes.items():
        d[f"attr.{k}" if k in _FIXED else str(k)] = _plain(v)
    return json.dumps(d, ensure_ascii=False, default=str, allow_nan=False)


def write_jsonl_logs(logs: Iterable[LogRecord], path: str | PathLike[str]) -> int:
    """Write one JSON line per record; returns the number of lines."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in logs:
            fh.write(jsonl_line(r))
            fh.write("\n")
            n += 1
    return n
