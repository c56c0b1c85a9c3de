"""What "now" is for a question: ``--now`` / ``now=`` when given, else the sources' clock.

A simulated or replayed source (one that serves a snapshot held in memory) lives in its own
time, so a question asked of it is answered as of the end of its data; any live source means
the wall clock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from rca.errors import BadInput
from rca.serialize import parse_rfc3339

__all__ = ["EARLIEST", "LATEST", "check_time", "parse_now", "sources_now"]

EARLIEST = 0                # 1970-01-01
LATEST = 7_258_118_400      # 2200-01-01: beyond it no telemetry exists and datetime maths overflows
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def check_time(ts: int | float, field: str) -> int:
    """``ts`` (unix s) when it lies between 1970 and 2200, else ``BadInput`` naming ``field``."""
    if not (EARLIEST <= ts < LATEST):
        raise BadInput(f"{ts!r} is outside 1970–2200", field=field, fix="use e.g. 2026-11-20T19:30:00Z")
    return int(ts)


def parse_now(text: str | None, field: str = "now") -> int | None:
    """RFC 3339 (``2026-11-20T19:30:00Z``), unix seconds, or a dateparser phrase
    (``"2026-11-20 19:30"``, ``"yesterday 18:00"``; UTC unless it names a zone) -> unix s."""
    if text is None or not str(text).strip():
        return None
    s = str(text).strip()
    if _NUMBER.fullmatch(s):  # unix seconds (ASCII digits only: "²".isdigit() is true)
        return check_time(float(s), field)
    try:
        return check_time(parse_rfc3339(s, field=field), field)
    except BadInput:
        pass
    except (ValueError, OverflowError):  # a valid stamp whose offset leaves the datetime range
        raise BadInput(f"{s!r} is out of range", field=field, fix="use e.g. 2026-11-20T19:30:00Z") from None
    import dateparser

    when = None if not s.isascii() else dateparser.parse(s, settings={"TIMEZONE": "UTC", "RETURN_AS_TIMEZONE_AWARE": True})
    if when is None:
        raise BadInput(f"{s!r} is not a time", field=field, fix="use e.g. 2026-11-20T19:30:00Z")
    return check_time(when.timestamp(), field)


def sources_now(connectors: Sequence[object]) -> int:
    """The end of the in-memory sources' data when every source is one, else the wall clock."""
    ends = [c.snapshot.window.end for c in connectors if hasattr(c, "snapshot")]
    return max(ends) if ends and len(ends) == len(connectors) else int(time.time())
