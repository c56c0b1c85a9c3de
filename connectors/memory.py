"""A connector over a snapshot already in memory (the simulator, tests, replays)."""

from __future__ import annotations

from rca.types import Health, Snapshot, Window

__all__ = ["StaticConnector"]


class StaticConnector:
    """Serves the part of ``snapshot`` that falls in the asked window."""

    def __init__(self, snapshot: Snapshot, name: str = "static") -> None:
        self.snapshot = snapshot
        self.name = name

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        s = self.snapshot
        lo, hi = window.start * 1_000_000_000, (window.end + 1) * 1_000_000_000
        return Snapshot(window=window, metrics=s.metrics.between(window.start, window.end),
                        spans=tuple(x for x in s.spans if lo <= x.start_ns < hi),
                        logs=tuple(x for x in s.logs if lo <= x.ts_ns < hi),
                        inventory=s.inventory, warnings=s.warnings)

    def check(self) -> Health:
        return Health(self.name, "ok" if len(self.snapshot.metrics) else "degraded",
                      f"{len(self.snapshot.metrics)} series in memory")
