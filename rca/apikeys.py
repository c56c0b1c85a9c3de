"""API keys: created once, stored hashed, checked in constant time, revoked for good.

A key reads ``rca_<id>_<secret>``: ``id`` (8 hex) is public — it names the key in lists,
logs and revocations — and ``secret`` carries 256 bits from ``secrets``. The store keeps only
SHA-256 of the whole key (a slow password hash buys nothing for random 256-bit secrets; it is
what GitHub and Stripe tokens do). The plain key is returned once, at creation.

Scopes nest: ``admin`` ⊇ ``write`` ⊇ ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from rca.errors import BadInput, NotFound
from rca.store import SqlStore, api_keys

__all__ = ["SCOPES", "ApiKey", "create_key", "key_id_of", "list_keys", "revoke_key", "verify_key"]

SCOPES = ("read", "write", "admin")
_KEY = re.compile(r"^rca_([0-9a-f]{8})_([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: int
    last_used_at: int | None = None
    revoked_at: int | None = None

    def allows(self, scope: str) -> bool:
        """True when the key's highest scope is at least ``scope``."""
        have = max((SCOPES.index(s) for s in self.scopes if s in SCOPES), default=-1)
        return self.revoked_at is None and have >= SCOPES.index(scope)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key (for logs), else None."""
    m = _KEY.match(key or "")
    return m.group(1) if m else None


def create_key(store: SqlStore, scope: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key with ``scope`` (read | write | admin); returns it and the plain key (shown once)."""
    if scope not in SCOPES:
        raise BadInput(f"unknown scope {scope!r}", field="scope", fix=f"use one of {', '.join(SCOPES)}")
    now = int(time.time())
    with store.engine.begin() as conn:
        while True:  # 8 hex ids: retry the rare collision
            kid = secrets.token_hex(4)
            if not conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == kid)).first():
                break
        plain = f"rca_{kid}_{secrets.token_urlsafe(32)}"
        row = ApiKey(kid, name or f"{scope}-key", (scope,), now)
        conn.execute(sa.insert(api_keys).values(id=kid, name=row.name, secret_sha256=_digest(plain),
                                                scopes=list(row.scopes), created_at=now))
    return row, plain


def _row(r) -> ApiKey:
    return ApiKey(r["id"], r["name"], tuple(r["scopes"]), r["created_at"], r["last_used_at"], r["revoked_at"])


def verify_key(store: SqlStore, key: str, touch: bool = True) -> ApiKey | None:
    """The stored key for ``key`` when it is well formed, known and not revoked; else None.
    ``touch`` records the use (at most once a minute per key, to spare the database)."""
    m = _KEY.match(key or "")
    if not m:
        return None
    with store.engine.connect() as conn:
        r = conn.execute(sa.select(api_keys).where(api_keys.c.id == m.group(1))).mappings().first()
    if r is None or not hmac.compare_digest(r["secret_sha256"], _digest(key)) or r["revoked_at"] is not None:
        return None
    now = int(time.time())
    if touch and (r["last_used_at"] or 0) < now - 60:
        with store.engine.begin() as conn:
            conn.execute(sa.update(api_keys).where(api_keys.c.id == r["id"]).values(last_used_at=now))
    return _row(r)


def list_keys(store: SqlStore, include_revoked: bool = True) -> list[ApiKey]:
    q = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    with store.engine.connect() as conn:
        return [_row(r) for r in conn.execute(q).mappings()]


def revoke_key(store: SqlStore, key_id: str) -> ApiKey:
    """Revoke by public id (or by the whole key); revoking twice keeps the first time."""
    kid = key_id_of(key_id) or key_id
    with store.engine.begin() as conn:
        r = conn.execute(sa.select(api_keys).where(api_keys.c.id == kid)).mappings().first()
        if r is None:
            raise NotFound(f"no API key {kid!r}", field="key_id", fix="see `rca keys list` for the ids")
        if r["revoked_at"] is None:
            conn.execute(sa.update(api_keys).where(api_keys.c.id == kid).values(revoked_at=int(time.time())))
        r = conn.execute(sa.select(api_keys).where(api_keys.c.id == kid)).mappings().first()
    return _row(r)
