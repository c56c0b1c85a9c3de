"""Durable store of spans and log records pushed over OTLP, and the ``Connector`` that reads it.

SQLAlchemy Core on any URL (an SQLite file by default: ``rca.store.default_database_url()``,
the same database as the incident store, in tables of its own). Tables:

* ``otlp_spans`` — primary key ``(trace_id, span_id)``, index on ``start_ns``; times are unix
  ns in BIGINT columns; ``attributes`` and ``resource`` are JSON text.
* ``otlp_logs`` — an autoincrement ``seq`` key, indexes on ``ts_ns`` and ``trace_id``.

Writes: one ``executemany`` per table in one transaction, committed before ``add_*`` returns, so
a caller that acknowledges after it returns acknowledges only what is durable. SQLite runs in WAL
mode (readers never block the writer) with ``synchronous=FULL`` (a commit survives power loss);
writes from several threads are serialised in-process rather than failing with "database is
locked". **Duplicates**: a span whose ``(trace_id, span_id)`` is already stored is ignored
(``INSERT … ON CONFLICT DO NOTHING``): OTLP clients retry, the first copy wins and ``add_spans``
counts only the new rows. Log records have no identity and are appended as they come.

Reads take a ``Window`` (unix seconds) and return what started in ``[start, end + 1)`` s, oldest
first. ``purge(older_than_s)`` deletes by age of the data (span start / log time), for retention.
JSON values that JSON cannot hold: bytes are stored as base64 text, NaN/Infinity as the
``NaN``/``Infinity`` tokens Python's ``json`` reads back.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from rca.errors import BadInput, SourceError, StoreError
from rca.store import default_database_url, make_engine, schema_lock
from rca.types import Health, LogRecord, MetricFrame, Snapshot, Span, Window

__all__ = ["OtlpStore", "OtlpStoreConnector"]

_NS = 1_000_000_000

metadata = sa.MetaData()

otlp_spans = sa.Table(
    "otlp_spans", metadata,
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("span_id", sa.String(16), primary_key=True),
    sa.Column("parent", sa.String(16)),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status_message", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Index("ix_otlp_spans_start_ns", "start_ns"),
)

otlp_logs = sa.Table(
    "otlp_logs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("span_id", sa.String(16)),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Index("ix_otlp_logs_ts_ns", "ts_ns"),
    sa.Index("ix_otlp_logs_trace_id", "trace_id"),
)

def _json_default(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


_dumps = json.JSONEncoder(default=_json_default, separators=(",", ":")).encode  # ASCII: lone surrogates survive


def _window_ns(window: Window) -> tuple[int, int]:
    return window.start * _NS, (window.end + 1) * _NS


class OtlpStore:
    """Spans and log records on SQLAlchemy Core. ``OtlpStore(url_or_engine)`` only keeps its
    argument (a URL, an ``Engine``, or ``None`` for ``default_database_url()``); the engine and
    tables are made on first use, or eagerly with ``OtlpStore.open(...)``."""

    def __init__(self, url_or_engine: str | Engine | None = None) -> None:
        self.url_or_engine = url_or_engine
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._serial_reads = False
        self._compiled: dict[tuple[str, tuple[str, ...]], Any] = {}

    @classmethod
    def open(cls, url_or_engine: str | Engine | None = None) -> OtlpStore:
        store = cls(url_or_engine)
        _ = store.engine
        return store

    # ---- engine and schema -----------------------------------------------------------------

    def _make_engine(self) -> Engine:
        src = self.url_or_engine
        if isinstance(src, Engine):
            return src
        return make_engine(src or default_database_url())

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._init_lock:
                if self._engine is None:
                    self._engine = self._setup(self._make_engine())
        return self._engine

    def _setup(self, engine: Engine) -> Engine:
        try:
            if engine.dialect.name == "sqlite":
                if isinstance(engine.pool, StaticPool):
                    self._serial_reads = True  # one shared connection: reads must not interleave writes
                elif not sa.event.contains(engine, "connect", _sqlite_pragmas):
                    sa.event.listen(engine, "connect", _sqlite_pragmas)
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # persistent for the file
            with engine.begin() as conn:
                schema_lock(conn)
                metadata.create_all(conn)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot create the OTLP tables: {e}") from e
        return engine

    def close(self) -> None:
        """Dispose of an engine this store made (one passed in is left to its owner)."""
        if self._engine is not None and not isinstance(self.url_or_engine, Engine):
            self._engine.dispose()
        self._engine = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        engine = self.engine
        try:
            with self._lock, engine.begin() as conn:
                yield conn
        except sa.exc.DataError as e:  # the database's checks (PostgreSQL: NUL in text, bigint range)
            raise BadInput(f"a record holds a value the store cannot keep: {e.orig}", field="body",
                           fix="send UTF-8 text without NUL characters and integers within 64 bits") from None
        except SQLAlchemyError as e:
            raise StoreError(f"OTLP store write failed: {e}") from e
        except (UnicodeEncodeError, OverflowError) as e:  # the driver's own checks on one value
            raise BadInput(f"a record holds a value the store cannot keep: {e}", field="body",
                           fix="send UTF-8 text and integers within 64 bits") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        engine = self.engine
        try:
            if self._serial_reads:
                with self._lock, engine.connect() as conn:
                    yield conn
            else:
                with engine.connect() as conn:
                    yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"OTLP store read failed: {e}") from e

    def _insert_ignore(self, table: sa.Table) -> Any:
        name = self.engine.dialect.name
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
            return insert(table).on_conflict_do_nothing()
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            return pg_insert(table).on_conflict_do_nothing()
        if name in ("mysql", "mariadb"):
            return sa.insert(table).prefix_with("IGNORE")
        return sa.insert(table)

    # ---- writes ------------------------------------------------------------------------------

    def add_spans(self, spans: Iterable[Span]) -> int:
        """Store ``spans`` in one transaction; returns how many were new (duplicates of a stored
        ``(trace_id, span_id)`` are ignored)."""
        rows = self._span_rows(spans)
        if not rows:
            return 0
        with self._write() as conn:
            res = self._executemany(conn, self._insert_ignore(otlp_spans), rows)
        n = res.rowcount
        return int(n) if n is not None and n >= 0 else len(rows)

    def _executemany(self, conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> Any:
        """``executemany`` straight to the driver with the statement compiled once: SQLAlchemy's
        per-row parameter processing costs as much as SQLite's insert itself. Plain column
        types only (no bind processors), which holds for both tables."""
        keys = list(rows[0])
        cache_key = (stmt.table.name, tuple(keys))
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            compiled = self._compiled[cache_key] = stmt.compile(dialect=conn.dialect, column_keys=keys)
        if compiled.positional:
            order = compiled.positiontup
            return conn.exec_driver_sql(str(compiled), [tuple(r[k] for k in order) for r in rows])
        return conn.exec_driver_sql(str(compiled), rows)

    def add_logs(self, logs: Iterable[LogRecord]) -> int:
        """Append ``logs`` in one transaction; returns how many were stored."""
        rows = [{"ts_ns": int(r.ts_ns), "entity": r.entity, "severity": r.severity, "body": r.body,
                 "trace_id": r.trace_id, "span_id": r.span_id, "attributes": _dumps(dict(r.attributes))}
                for r in logs]
        if not rows:
            return 0
        with self._write() as conn:
            self._executemany(conn, sa.insert(otlp_logs), rows)
        return len(rows)

    @staticmethod
    def _span_rows(spans: Iterable[Span]) -> list[dict[str, Any]]:
        res_json: dict[int, str] = {}  # spans of one request share their resource mapping
        rows = []
        for s in spans:
            rj = res_json.get(id(s.resource))
            if rj is None:
                rj = res_json[id(s.resource)] = _dumps(dict(s.resource))
            rows.append({"trace_id": s.trace_id, "span_id": s.span_id, "parent": s.parent, "service": s.service,
                         "name": s.name, "start_ns": s.start_ns, "end_ns": s.end_ns, "status": s.status,
                         "kind": s.kind, "status_message": s.status_message,
                         "attributes": _dumps(dict(s.attributes)) if s.attributes else "{}", "resource": rj})
        return rows

    def purge(self, older_than_s: float, now: float | None = None) -> dict[str, int]:
        """Delete spans that started and logs written more than ``older_than_s`` seconds before
        ``now`` (default: the current time); returns ``{"spans": n, "logs": m}`` deleted."""
        if not older_than_s >= 0:
            raise BadInput(f"retention must be >= 0 s, got {older_than_s}", field="older_than_s",
                           fix="give an age in seconds, e.g. 604800 for a week")
        cutoff = int(((time.time() if now is None else now) - older_than_s) * _NS)
        with self._write() as conn:
            ns = conn.execute(sa.delete(otlp_spans).where(otlp_spans.c.start_ns < cutoff)).rowcount
            nl = conn.execute(sa.delete(otlp_logs).where(otlp_logs.c.ts_ns < cutoff)).rowcount
        return {"spans": int(ns or 0), "logs": int(nl or 0)}

    # ---- reads -------------------------------------------------------------------------------

    def spans(self, window: Window, service: str | None = None, trace_id: str | None = None,
              limit: int | None = None) -> list[Span]:
        """Spans that started in ``window``, oldest first, optionally of one ``service`` or trace."""
        lo, hi = _window_ns(window)
        q = sa.select(otlp_spans).where(otlp_spans.c.start_ns >= lo, otlp_spans.c.start_ns < hi)
        if service is not None:
            q = q.where(otlp_spans.c.service == service)
        if trace_id is not None:
            q = q.where(otlp_spans.c.trace_id == trace_id.lower())
        return self._spans(q.order_by(otlp_spans.c.start_ns, otlp_spans.c.span_id), limit)

    def trace(self, trace_id: str) -> list[Span]:
        """Every stored span of one trace, oldest first (empty when none is stored)."""
        q = sa.select(otlp_spans).where(otlp_spans.c.trace_id == trace_id.lower())
        return self._spans(q.order_by(otlp_spans.c.start_ns, otlp_spans.c.span_id), None)

    def logs(self, window: Window, entity: str | None = None, trace_id: str | None = None,
             severity: str | None = None, limit: int | None = None) -> list[LogRecord]:
        """Log records written in ``window``, oldest first (then in arrival order), optionally of
        one ``entity``, trace or ``severity`` (upper-case text)."""
        lo, hi = _window_ns(window)
        c = otlp_logs.c
        q = sa.select(otlp_logs).where(c.ts_ns >= lo, c.ts_ns < hi)
        if entity is not None:
            q = q.where(c.entity == entity)
        if trace_id is not None:
            q = q.where(c.trace_id == trace_id.lower())
        if severity is not None:
            q = q.where(c.severity == severity.upper())
        q = q.order_by(c.ts_ns, c.seq)
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            rows = conn.execute(q).all()
        loads = json.loads
        return [LogRecord(r.ts_ns, r.entity, r.severity, r.body, r.trace_id, r.span_id, loads(r.attributes))
                for r in rows]

    def counts(self) -> dict[str, int]:
        """``{"spans": n, "logs": m}`` stored."""
        with self._read() as conn:
            ns = conn.execute(sa.select(sa.func.count()).select_from(otlp_spans)).scalar_one()
            nl = conn.execute(sa.select(sa.func.count()).select_from(otlp_logs)).scalar_one()
        return {"spans": int(ns), "logs": int(nl)}

    def _spans(self, q: sa.Select, limit: int | None) -> list[Span]:
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            rows = conn.execute(q).all()
        loads = json.loads
        resources: dict[str, dict[str, Any]] = {}  # one dict per distinct resource, shared
        out = []
        for r in rows:
            res = resources.get(r.resource)
            if res is None:
                res = resources[r.resource] = loads(r.resource)
            out.append(Span(r.trace_id, r.span_id, r.parent, r.service, r.name, r.start_ns, r.end_ns,
                            r.status, r.kind, loads(r.attributes), res, r.status_message))
        return out


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class OtlpStoreConnector:
    """``Connector`` over an ``OtlpStore``: spans and logs of the window, no metrics.

    ``selector`` selects metric series, and this source has none, so it is ignored. At most
    ``max_spans`` spans and ``max_logs`` log records are returned (the oldest); when a window
    holds more, the snapshot carries a warning saying so. A store that fails raises
    ``SourceError``.
    """

    def __init__(self, store: OtlpStore, name: str = "otlp", max_spans: int = 500_000,
                 max_logs: int = 500_000) -> None:
        self.store = store
        self.name = name
        self.max_spans = max_spans
        self.max_logs = max_logs

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        try:
            spans = self.store.spans(window, limit=self.max_spans + 1)
            logs = self.store.logs(window, limit=self.max_logs + 1)
        except (StoreError, SQLAlchemyError) as e:
            raise SourceError(self.name, f"cannot read the OTLP store: {e}") from e
        warnings: list[str] = []
        for what, items, cap in (("spans", spans, self.max_spans), ("log records", logs, self.max_logs)):
            if len(items) > cap:
                del items[cap:]
                warnings.append(f"{self.name}: more than {cap} {what} in the window; only the oldest {cap} read")
        return Snapshot(window=window, metrics=MetricFrame.empty(), spans=tuple(spans),
                        logs=tuple(logs), warnings=tuple(warnings))

    def check(self) -> Health:
        t0 = time.perf_counter()
        try:
            n = self.store.counts()
        except (StoreError, SQLAlchemyError, BadInput) as e:
            return Health(self.name, "down", str(e), time.perf_counter() - t0)
        return Health(self.name, "ok", f"{n['spans']} spans, {n['logs']} log records stored",
                      time.perf_counter() - t0)
