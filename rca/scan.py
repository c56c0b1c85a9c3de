"""One anomaly scan over every series of a snapshot (``rca scan``; the scheduler reuses it).

The last ``window_s`` seconds are judged against everything before them (the baseline),
with ``rca.detect.detect``: the domain rules and the fleet scanner over the whole derived
matrix at once. The result lists flagged anomalies (component faults), input drift and log
findings separately, plus what was scanned.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rca.detect import LEVEL, Detection, detect
from rca.entities import aliases_from_inventory
from rca.errors import BadInput
from rca.signals import derive
from rca.types import Snapshot, Window

__all__ = ["parse_duration", "scan_snapshot"]

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.I)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, field: str = "--window") -> int:
    """``"1h"``, ``"30m"``, ``"900"`` (seconds) -> seconds."""
    m = _DUR.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise BadInput(f"cannot read duration {text!r}", field=field, fix="use e.g. 900s, 30m, 1h or 1d")
    return int(float(m.group(1)) * _UNIT[(m.group(2) or "s").lower()])


def scan_snapshot(snapshot: Snapshot, window_s: int, min_level: float = LEVEL) -> tuple[Detection, dict[str, Any]]:
    """Detect over the last ``window_s`` of ``snapshot``; returns the detection and a JSON summary."""
    w = snapshot.window
    if window_s >= w.end - w.start:
        raise BadInput(f"scan window {window_s}s leaves no baseline in {w.end - w.start}s of data",
                       field="--window", fix="use a shorter window or give more history")
    t0 = time.perf_counter()
    inc = Window(w.end - window_s, w.end, w.step)
    base = Window(w.start, inc.start - w.step, w.step)
    signals = derive(snapshot.metrics, aliases_from_inventory(snapshot.inventory))
    det = detect(signals, snapshot, base, inc, min_level=min_level)
    summary = {
        "baseline": [base.start, base.end], "window": [inc.start, inc.end],
        "series_scanned": len(snapshot.metrics), "signals_scanned": det.series_scanned,
        "elapsed_s": round(time.perf_counter() - t0, 3), "min_level": min_level,
        "anomalies": [{"entity": a.entity, "kind": a.kind, "series": str(a.series), "onset": a.onset,
                       "peak": a.peak, "level": round(a.level, 4), "score": round(a.score, 3),
                       "direction": a.direction, "baseline": a.baseline, "observed": a.observed,
                       "detector": a.detector} for a in det.anomalies],
        "drift": [_plain(d) for d in det.drift],
        "logs": [_plain(f) for f in det.logs],
        "notes": list(det.notes),
    }
    return det, summary


def _plain(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) else obj
