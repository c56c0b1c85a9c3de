"""Question parsing, first cut: time, signal and statistic from questions like
"why was p99 slow at 20:00?". No LLM. Bare times resolve to the most recent past occurrence
relative to ``now``. (The full parser — scopes, ranges, time zones — grows here.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rca.errors import BadInput

__all__ = ["Question", "parse_question"]

_TIME = re.compile(r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b", re.I)
_QUANT = re.compile(r"\bp(\d{2}(?:\.\d+)?)\b", re.I)
_SIGNALS = (
    (re.compile(r"\b(errors?|5xx|fail(ures|ing)?|error rate)\b", re.I), "errors", "error_ratio"),
    (re.compile(r"\b(throughput|tokens per second|tokens/s)\b", re.I), "token_throughput", "rate"),
    (re.compile(r"\b(slow|latency|p\d\d|ttft|tpot|median)\b", re.I), "latency", "p99"),
)


@dataclass(frozen=True)
class Question:
    text: str
    at: int
    signal: str
    statistic: str
    tz: str = "UTC"
    scope: tuple[str, ...] = field(default_factory=tuple)


def parse_question(text: str, now: int) -> Question:
    if not text or not text.strip():
        raise BadInput("the question is empty", field="q", fix='ask e.g. "why was p99 slow at 20:00?"')
    signal, stat = "latency", "p99"
    for rx, sig, st in _SIGNALS:
        if rx.search(text):
            signal, stat = sig, st
            break
    q = _QUANT.search(text)
    if q and signal == "latency":
        stat = f"p{q.group(1)}"
    elif re.search(r"\bmedian\b", text, re.I) and signal == "latency":
        stat = "p50"
    at = now
    for m in _TIME.finditer(text):
        if not (m.group(2) or m.group(3)) or text[max(0, m.start() - 1):m.start()].lower() == "p":
            continue
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if m.group(3):
            hour = hour % 12 + (12 if m.group(3).lower() == "pm" else 0)
        if hour > 23 or minute > 59:
            raise BadInput(f"{m.group(0).strip()!r} is not a time of day", field="q",
                           fix="write times as HH:MM, e.g. 20:00 or 8pm")
        now_dt = datetime.fromtimestamp(now, tz=UTC)
        cand = now_dt.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if cand > now_dt:
            cand -= timedelta(days=1)
        at = int(cand.timestamp())
        break
    return Question(text=text.strip(), at=at, signal=signal, statistic=stat)
