"""Versioned weights of learned re-rankers in the store (table ``ranker_models``).

Every ``rca train ranker`` run adds a version, whether or not it is activated: its held-back
metrics say why. At most one version is ``active``; activating another retires it, and
``activate_model(None)`` returns to the base ranker. The weights are JSON (never pickle).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rca.errors import NotFound
from rca.store_schema import ranker_models

__all__ = ["MODEL_STATUSES", "RankerModels"]

MODEL_STATUSES = ("candidate", "active", "retired", "rejected")


class RankerModels:
    """Mixed into ``SqlStore``: needs its ``_tx()``."""

    def _tx(self) -> AbstractContextManager[Connection]:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    def save_model(self, kind: str, weights: Mapping[str, Any], metrics: Mapping[str, Any], *,
                   activate: bool, note: str = "", at: int | None = None) -> int:
        """Store a trained version (``rejected`` unless ``activate``); returns its version."""
        now = int(time.time() if at is None else at)
        with self._tx() as conn:
            if activate:
                self._retire_active(conn)
            res = conn.execute(sa.insert(ranker_models).values(
                created_at=now, kind=kind, status="active" if activate else "rejected", weights=dict(weights),
                metrics=dict(metrics), activated_at=now if activate else None, note=note))
            return int(res.inserted_primary_key[0])

    def list_models(self) -> list[dict[str, Any]]:
        """Every version, newest first, without the weights."""
        cols = [c for c in ranker_models.c if c.name != "weights"]
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(sa.select(*cols).order_by(ranker_models.c.version.desc()))
                    .mappings()]

    def get_model(self, version: int) -> dict[str, Any]:
        with self._tx() as conn:
            r = conn.execute(sa.select(ranker_models).where(ranker_models.c.version == version)).mappings().first()
        if r is None:
            raise NotFound(f"no ranker model version {version}", field="version",
                           fix="list the versions with `rca train list`")
        return dict(r)

    def active_model(self) -> dict[str, Any] | None:
        with self._tx() as conn:
            r = conn.execute(sa.select(ranker_models).where(ranker_models.c.status == "active")
                             .order_by(ranker_models.c.version.desc())).mappings().first()
        return dict(r) if r is not None else None

    def activate_model(self, version: int | None) -> int | None:
        """Make ``version`` the active one (rollback or roll forward); ``None`` deactivates every
        version (the base ranker alone). Returns the version that was active before."""
        with self._tx() as conn:
            before = conn.execute(sa.select(ranker_models.c.version).where(
                ranker_models.c.status == "active")).scalar()
            if version is not None and not conn.execute(
                    sa.select(ranker_models.c.version).where(ranker_models.c.version == version)).first():
                raise NotFound(f"no ranker model version {version}", field="version",
                               fix="list the versions with `rca train list`")
            self._retire_active(conn)
            if version is not None:
                conn.execute(sa.update(ranker_models).where(ranker_models.c.version == version)
                             .values(status="active", activated_at=int(time.time())))
        return before

    @staticmethod
    def _retire_active(conn: Connection) -> None:
        conn.execute(sa.update(ranker_models).where(ranker_models.c.status == "active").values(status="retired"))

