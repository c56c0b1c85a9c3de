"""Shared helpers for the REST API tests: a small snapshot, an app over it, keys, problem checks.

``small_snapshot()`` slices the ``kv_cache_exhaustion`` simulation (seed 0) to a few hundred
series (no histogram buckets but the gateway's, two DCGM gauges, no spans or logs), so one
analysis costs ~0.3 s instead of ~0.5-1 s and a fuzz run over every operation stays fast. It
still holds the fault, so an analysis at ``QUESTION_AT`` gives ranked hypotheses with metric
evidence (plots, feedback).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api import create_app
from connectors.memory import StaticConnector
from rca.apikeys import create_key
from rca.serialize import rfc3339
from rca.settings import Settings
from rca.types import SeriesKey, Snapshot
from rca.wiring import build_engine

__all__ = ["ApiApp", "PROBLEM", "assert_problem", "header", "make_app", "question_at", "small_snapshot"]

PROBLEM = "application/problem+json"
_SCENARIO, _SEED = "kv_cache_exhaustion", 0


def _keep(k: SeriesKey) -> bool:
    labels = dict(k.labels)
    if k.name.endswith("_bucket"):
        return k.name.startswith("http_") and labels.get("service") == "api-gateway"
    if k.name.startswith("DCGM_"):
        return k.name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED")
    return True


@functools.lru_cache(maxsize=1)
def _sim():
    from rca.sim import simulate

    return simulate(_SCENARIO, _SEED)


@functools.lru_cache(maxsize=1)
def small_snapshot() -> Snapshot:
    s = _sim().snapshot
    return Snapshot(window=s.window, metrics=s.metrics.select(_keep), spans=(), logs=(),
                    inventory=s.inventory, warnings=s.warnings)


def question_at() -> int:
    """The simulated incident's question time (unix s)."""
    return _sim().question_time


@dataclass
class ApiApp:
    app: Any
    engine: Any
    settings: Settings
    db_url: str
    keys: dict[str, str]  # scope -> plain key
    extras: dict[str, Any] = field(default_factory=dict)  # per-test scratch (e.g. a seeded incident id)

    @property
    def store(self):
        return self.engine.store

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    @property
    def now(self) -> str:
        """RFC 3339 end of the simulated data (answers are asked "as of" it)."""
        return rfc3339(small_snapshot().window.end)

    @property
    def at(self) -> str:
        return rfc3339(question_at())


def make_app(tmp: Path, *, auth: bool = True, **settings: Any) -> ApiApp:
    """An app over ``small_snapshot()`` with a fresh SQLite store in ``tmp`` and one key per scope."""
    db_url = f"sqlite:///{tmp}/rca.db"
    s = Settings(database_url=db_url, **settings)
    eng = build_engine(s, [StaticConnector(small_snapshot(), name="sim")])
    app = create_app(eng, s, auth=auth)
    keys = {scope: create_key(eng.store, scope, f"test-{scope}")[1] for scope in ("read", "write", "admin")}
    return ApiApp(app, eng, s, db_url, keys)


def header(resp: Any, name: str) -> str:
    """A response header from httpx/requests (str values) or schemathesis (list values), or ""."""
    value = resp.headers.get(name.lower(), resp.headers.get(name, ""))
    if isinstance(value, list):
        value = ", ".join(value)
    return value or ""


def assert_problem(resp: Any, status: int | None = None, field: str | None = None) -> dict:
    """``resp`` (httpx, requests or schemathesis response) is an RFC 9457 problem; returns its body."""
    req = resp.request
    where = f"{req.method} {req.url} -> {resp.status_code}: {resp.text[:500]}"
    if status is not None:
        assert resp.status_code == status, where
    assert 400 <= resp.status_code < 600, where
    assert header(resp, "content-type").split(";")[0].strip() == PROBLEM, where
    body = resp.json()
    for k in ("type", "title", "status", "detail"):
        assert k in body, f"problem without {k!r}: {where}"
    assert body["status"] == resp.status_code, where
    assert isinstance(body["detail"], str) and body["detail"], where
    assert body["type"].startswith("https://"), where
    if field is not None:
        assert body.get("field") == field, where
    return body
