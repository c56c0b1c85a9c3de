"""The durable store: incidents, their hypotheses and evidence, feedback, scans and API keys
(key logic in ``rca.apikeys``).

SQLAlchemy Core on any URL SQLAlchemy knows — an SQLite file by default, PostgreSQL for
several replicas. Structured values are JSON columns written through ``rca.serialize`` (never
pickle); times are unix seconds in BIGINT columns.

The schema (``rca.store_schema``) is versioned: ``MIGRATIONS`` is an ordered list, migration ``i`` brings the schema
from version ``i`` to ``i + 1``, and the ``schema_version`` table holds the version applied.
A database written by a newer ``rca`` (higher version than ``len(MIGRATIONS)``) is refused
with ``StoreError`` rather than corrupted. Add a migration by appending a function; never edit
one that has shipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from rca.errors import BadInput, NotFound, StoreError
from rca.serialize import candidate_from_jsonable, symptom_from_jsonable, to_jsonable, window_from_jsonable
from rca.store_models import RankerModels
from rca.store_schema import (  # noqa: F401 — tables are importable from here too
    MIGRATIONS,
    SCHEMA_VERSION,
    alert_queue,
    api_keys,
    candidate_pools,
    deliveries,
    evidence,
    feedback,
    hypotheses,
    incident_states,
    incidents,
    metadata,
    ranker_models,
    scans,
    schema_version,
)
from rca.types import Evidence, Feedback, Hypothesis, Incident

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqlStore", "default_database_url", "make_engine", "schema_lock"]


def default_database_url() -> str:
    """``$RCA_DATABASE_URL``, else an SQLite file under ``$XDG_DATA_HOME`` (``~/.local/share``)."""
    url = os.environ.get("RCA_DATABASE_URL")
    if url:
        return url
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'rca' / 'rca.db'}"


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (bad URL -> BadInput; cannot open -> StoreError). An
    in-memory SQLite database is one shared connection; a file's folder is created."""
    try:
        u = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as e:
        raise BadInput(f"not a database URL: {e}", field="database_url",
                       fix="use e.g. sqlite:////var/lib/rca/rca.db or postgresql+psycopg://...") from None
    kw: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db in ("", ":memory:"):
            kw.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif not db.startswith("file:"):
            try:
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder of {db}: {e}") from e
    try:
        return sa.create_engine(u, **kw)
    except (SQLAlchemyError, ImportError) as e:
        raise StoreError(f"cannot open {u.render_as_string(hide_password=True)}: {e}") from e


def schema_lock(conn: Connection) -> None:
    """On PostgreSQL, hold a lock until ``conn``'s transaction ends, so that replicas starting
    together create or migrate the schema one after the other (without it, concurrent
    ``CREATE TABLE`` collide). SQLite serialises writers itself."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))


_SCHEMA_LOCK_KEY = 0x7263615F736368  # "rca_sch"


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


class SqlStore(RankerModels):
    """``Store`` on SQLAlchemy Core. ``SqlStore(url)`` only keeps the URL; the engine is made
    (and the schema migrated) on first use, or eagerly with ``SqlStore.open(url)``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @classmethod
    def open(cls, url: str | None = None) -> SqlStore:
        store = cls(url or default_database_url())
        store.migrate()
        return store

    # ---- connection and schema ------------------------------------------------------------

    def _make_engine(self) -> Engine:
        return make_engine(self.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._make_engine()
            try:
                self._migrate(self._engine)
            except BaseException:
                self._engine.dispose()
                self._engine = None
                raise
        return self._engine

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version now applied."""
        return self._migrate(self.engine)

    def _migrate(self, engine: Engine) -> int:
        try:
            with engine.begin() as conn:
                schema_lock(conn)
                metadata.create_all(conn, tables=[schema_version])
                version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
                if version > SCHEMA_VERSION:
                    raise StoreError(f"database schema version {version} is newer than this rca "
                                     f"knows (version {SCHEMA_VERSION}); upgrade rca")
                for i in range(version, SCHEMA_VERSION):
                    MIGRATIONS[i](conn)
                    conn.execute(sa.delete(schema_version))
                    conn.execute(sa.insert(schema_version).values(version=i + 1))
            return SCHEMA_VERSION
        except SQLAlchemyError as e:
            raise StoreError(f"schema migration failed: {e}") from e

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ---- incidents --------------------------------------------------------------------------

    def save_incident(self, incident: Incident) -> str:
        """Store ``incident`` (replacing one with the same id); returns its id, generated
        (``inc-`` + 12 hex) when ``incident.id`` is empty."""
        iid = incident.id or f"inc-{uuid.uuid4().hex[:12]}"
        if len(iid) > 64:
            raise BadInput(f"incident id is {len(iid)} characters long", field="incident_id",
                           fix="use at most 64 characters, or leave it empty to get one")
        row = {"id": iid, "created_at": int(incident.created_at), "question": incident.question,
               "window": to_jsonable(incident.window), "symptom": to_jsonable(incident.symptom),
               "params": to_jsonable(incident.params), "summary": incident.summary,
               "checked": list(incident.checked), "no_data": list(incident.no_data)}
        hyps, evs = [], []
        for r, h in enumerate(incident.hypotheses, 1):
            hyps.append({"incident_id": iid, "rank": r, "root": h.root, "category": h.category,
                         "score": _f(h.score), "confidence": _f(h.confidence), "path": list(h.path),
                         "checked": list(h.checked), "no_data": list(h.no_data), "unknown": list(h.unknown)})
            evs.extend({"incident_id": iid, "hypothesis_rank": r, "n": n, "kind": e.kind, "entity": e.entity,
                        "summary": e.summary, "ref": to_jsonable(e.ref), "status": e.status,
                        "score": _f(e.score)} for n, e in enumerate(h.evidence, 1))
        with self._tx() as conn:
            conn.execute(sa.delete(evidence).where(evidence.c.incident_id == iid))
            conn.execute(sa.delete(hypotheses).where(hypotheses.c.incident_id == iid))
            conn.execute(sa.delete(candidate_pools).where(candidate_pools.c.incident_id == iid))
            if conn.execute(sa.select(incidents.c.seq).where(incidents.c.id == iid)).first():
                conn.execute(sa.update(incidents).where(incidents.c.id == iid).values(**row))
            else:
                conn.execute(sa.insert(incidents).values(**row))
            if hyps:
                conn.execute(sa.insert(hypotheses), hyps)
            if evs:
                conn.execute(sa.insert(evidence), evs)
            if incident.candidates:
                conn.execute(sa.insert(candidate_pools).values(
                    incident_id=iid, candidates=to_jsonable(list(incident.candidates))))
        return iid

    def get_incident(self, incident_id: str) -> Incident:
        with self._tx() as conn:
            found = self._load(conn, sa.select(incidents).where(incidents.c.id == incident_id))
        if not found:
            raise NotFound(f"no incident {incident_id!r}", field="incident_id",
                           fix="list incidents with GET /v1/incidents")
        return found[0]

    def get_incidents(self, incident_ids: list[str]) -> list[Incident]:
        """The stored incidents among ``incident_ids`` (unknown ids are left out), in that order."""
        found: dict[str, Incident] = {}
        with self._tx() as conn:
            for i in range(0, len(incident_ids), 500):
                chunk = incident_ids[i:i + 500]
                found.update((x.id, x) for x in self._load(conn, sa.select(incidents).where(incidents.c.id.in_(chunk))))
        return [found[i] for i in incident_ids if i in found]

    def list_incidents(self, limit: int = 50, before: str | None = None) -> list[Incident]:
        """Newest first (``created_at``, then insertion order); ``before`` is the id of the last
        incident of the previous page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadInput(f"limit must be a positive integer, got {limit!r}", field="limit", fix="use e.g. 50")
        q = sa.select(incidents)
        with self._tx() as conn:
            if before is not None:
                cur = conn.execute(sa.select(incidents.c.created_at, incidents.c.seq)
                                   .where(incidents.c.id == before)).first()
                if cur is None:
                    raise NotFound(f"no incident {before!r}", field="before",
                                   fix="pass the id of an incident from the previous page")
                q = q.where(sa.or_(incidents.c.created_at < cur.created_at,
                                   sa.and_(incidents.c.created_at == cur.created_at,
                                           incidents.c.seq < cur.seq)))
            q = q.order_by(incidents.c.created_at.desc(), incidents.c.seq.desc()).limit(limit)
            return self._load(conn, q)

    def _load(self, conn: Connection, query: sa.Select) -> list[Incident]:
        rows = conn.execute(query).mappings().all()
        ids = [r["id"] for r in rows]
        if not ids:
            return []
        ev: dict[tuple[str, int], list[Evidence]] = {}
        for e in conn.execute(sa.select(evidence).where(evidence.c.incident_id.in_(ids))
                              .order_by(evidence.c.n)).mappings():
            ev.setdefault((e["incident_id"], e["hypothesis_rank"]), []).append(
                Evidence(e["kind"], e["entity"], e["summary"], e["ref"] or {}, e["status"], _nan(e["score"])))
        hy: dict[str, list[Hypothesis]] = {}
        for h in conn.execute(sa.select(hypotheses).where(hypotheses.c.incident_id.in_(ids))
                              .order_by(hypotheses.c.rank)).mappings():
            hy.setdefault(h["incident_id"], []).append(Hypothesis(
                h["root"], h["category"], _nan(h["score"]), _nan(h["confidence"]), tuple(h["path"]),
                tuple(ev.get((h["incident_id"], h["rank"]), ())), tuple(h["checked"]),
                tuple(h["no_data"]), tuple(h["unknown"])))
        pools = {r["incident_id"]: tuple(candidate_from_jsonable(c) for c in r["candidates"])
                 for r in conn.execute(sa.select(candidate_pools).where(candidate_pools.c.incident_id.in_(ids)))
                 .mappings()}
        return [Incident(id=r["id"], question=r["question"], window=window_from_jsonable(r["window"]),
                         symptom=symptom_from_jsonable(r["symptom"]), hypotheses=tuple(hy.get(r["id"], ())),
                         params=r["params"] or {}, checked=tuple(r["checked"]), no_data=tuple(r["no_data"]),
                         summary=r["summary"], created_at=r["created_at"], candidates=pools.get(r["id"], ()))
                for r in rows]

    # ---- feedback ---------------------------------------------------------------------------

    def add_feedback(self, fb: Feedback) -> bool:
        """Store a verdict once: the same (incident, verdict, rank, root, category, author)
        again returns ``False`` and changes nothing. An unknown incident is ``NotFound`` (before
        anything else is checked), a rank beyond its hypotheses ``BadInput``."""
        key = hashlib.sha256(json.dumps([fb.incident_id, fb.verdict, fb.hypothesis_rank, fb.correct_root,
                                         fb.correct_category, fb.author]).encode()).hexdigest()
        row = {"incident_id": fb.incident_id, "verdict": fb.verdict, "hypothesis_rank": fb.hypothesis_rank,
               "correct_root": fb.correct_root, "correct_category": fb.correct_category,
               "note": fb.note, "author": fb.author, "at": int(fb.at), "idempotency_key": key}
        try:
            with self.engine.begin() as conn:
                if not conn.execute(sa.select(incidents.c.seq).where(incidents.c.id == fb.incident_id)).first():
                    raise NotFound(f"no incident {fb.incident_id!r}", field="incident_id",
                                   fix="give feedback on a stored incident")
                _check_feedback(fb)
                if fb.hypothesis_rank is not None:
                    n = conn.execute(sa.select(sa.func.count()).select_from(hypotheses)
                                     .where(hypotheses.c.incident_id == fb.incident_id)).scalar() or 0
                    if fb.hypothesis_rank > n:
                        raise BadInput(f"incident {fb.incident_id!r} has {n} hypotheses, not {fb.hypothesis_rank}",
                                       field="hypothesis_rank", fix=f"give a rank from 1 to {n}, or name the "
                                       "right root with verdict 'correct' and correct_root")
                if conn.execute(sa.select(feedback.c.seq).where(feedback.c.idempotency_key == key)).first():
                    return False
                conn.execute(sa.insert(feedback).values(**row))
        except IntegrityError:  # a concurrent writer stored the same verdict first
            return False
        except DataError as e:
            raise _bad_value(e) from None
        except SQLAlchemyError as e:
            raise StoreError(f"store failed: {e}") from e
        return True

    def list_feedback(self, incident_id: str | None = None) -> list[Feedback]:
        """Oldest first (``at``, then insertion order)."""
        q = sa.select(feedback).order_by(feedback.c.at, feedback.c.seq)
        if incident_id is not None:
            q = q.where(feedback.c.incident_id == incident_id)
        with self._tx() as conn:
            rows = conn.execute(q).mappings().all()
        return [Feedback(r["incident_id"], r["verdict"], r["hypothesis_rank"], r["correct_root"],
                         r["correct_category"], r["note"], r["author"], r["at"]) for r in rows]

    # ---- scans ------------------------------------------------------------------------------

    def save_scan(self, scan: dict[str, Any]) -> str:
        """Insert or update a scan record: ``id``, ``job``, ``status``, ``started_at``,
        ``finished_at``, ``params``, ``result`` (JSON-able). Returns its id."""
        row = {k: scan.get(k) for k in ("id", "job", "status", "started_at", "finished_at")}
        row["id"] = row["id"] or f"scan-{uuid.uuid4().hex[:12]}"
        row["params"] = to_jsonable(scan.get("params") or {})
        row["result"] = to_jsonable(scan.get("result") or {})
        with self._tx() as conn:
            if conn.execute(sa.select(scans.c.seq).where(scans.c.id == row["id"])).first():
                conn.execute(sa.update(scans).where(scans.c.id == row["id"]).values(**row))
            else:
                conn.execute(sa.insert(scans).values(**row))
        return row["id"]

    def get_scan(self, scan_id: str) -> dict[str, Any]:
        with self._tx() as conn:
            r = conn.execute(sa.select(scans).where(scans.c.id == scan_id)).mappings().first()
        if r is None:
            raise NotFound(f"no scan {scan_id!r}", field="scan_id", fix="list scans with GET /v1/scans")
        return _scan(r)

    def list_scans(self, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``before`` is the id of the last scan of the previous page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadInput(f"limit must be a positive integer, got {limit!r}", field="limit", fix="use e.g. 50")
        q = sa.select(scans).order_by(scans.c.seq.desc()).limit(limit)
        with self._tx() as conn:
            if before is not None:
                cur = conn.execute(sa.select(scans.c.seq).where(scans.c.id == before)).first()
                if cur is None:
                    raise NotFound(f"no scan {before!r}", field="cursor",
                                   fix="pass the cursor of the previous page")
                q = q.where(scans.c.seq < cur.seq)
            return [_scan(r) for r in conn.execute(q).mappings()]

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers a trivial query."""
        with self._tx() as conn:
            conn.execute(sa.select(1))

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction; database failures surface as ``StoreError``."""
        engine = self.engine
        try:
            with engine.begin() as conn:
                yield conn
        except DataError as e:
            raise _bad_value(e) from None
        except SQLAlchemyError as e:
            raise StoreError(f"store failed: {e}") from e


def _bad_value(e: DataError) -> BadInput:
    # the database refused one value (PostgreSQL: NUL in text, a number out of range): retrying
    # cannot help, so it is the input's fault, not the store's
    return BadInput(f"the database cannot hold a value: {e.orig}",
                    fix="remove NUL characters (\\x00) from the text; keep integers within 64 bits")


def _scan(r: Any) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "job", "status", "started_at", "finished_at", "params", "result")}


def _check_feedback(fb: Feedback) -> None:
    if fb.verdict not in ("confirm", "reject", "correct"):
        raise BadInput(f"unknown verdict {fb.verdict!r}", field="verdict", fix="use confirm, reject or correct")
    if fb.verdict in ("confirm", "reject") and (fb.hypothesis_rank is None or fb.hypothesis_rank < 1):
        raise BadInput(f"{fb.verdict} needs the 1-based rank of a hypothesis", field="hypothesis_rank",
                       fix="give hypothesis_rank, e.g. 1 for the top hypothesis")
    if fb.verdict == "correct" and not fb.correct_root:
        raise BadInput("correct needs the right root cause", field="correct_root",
                       fix="give correct_root as kind:name, e.g. service:checkout")

