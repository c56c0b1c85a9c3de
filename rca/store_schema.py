"""The store's schema: every table, and the ordered migrations that build it.

Migration ``i`` brings the schema from version ``i`` to ``i + 1``; the ``schema_version``
table holds the version applied (see ``rca.store``). Add a migration by appending a function;
never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "alert_queue", "api_keys", "candidate_pools", "deliveries", "evidence",
           "feedback", "hypotheses", "incident_states", "incidents", "metadata", "ranker_models", "scans",
           "schema_version"]

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # insertion order, ties
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("question", sa.Text),
    sa.Column("window", sa.JSON, nullable=False),
    sa.Column("symptom", sa.JSON),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("checked", sa.JSON, nullable=False),
    sa.Column("no_data", sa.JSON, nullable=False),
)

hypotheses = sa.Table(
    "hypotheses", metadata,
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True),  # 1-based
    sa.Column("root", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("confidence", sa.Float),
    sa.Column("path", sa.JSON, nullable=False),
    sa.Column("checked", sa.JSON, nullable=False),
    sa.Column("no_data", sa.JSON, nullable=False),
    sa.Column("unknown", sa.JSON, nullable=False),
)

evidence = sa.Table(
    "evidence", metadata,
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("hypothesis_rank", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),  # 1-based position in the hypothesis
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("ref", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("score", sa.Float),
)

feedback = sa.Table(
    "feedback", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), nullable=False, index=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("hypothesis_rank", sa.Integer),
    sa.Column("correct_root", sa.Text),
    sa.Column("correct_category", sa.Text),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
)


api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # public part of the key, shown in lists
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
)

scans = sa.Table(
    "scans", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("job", sa.Text, nullable=False),  # schedule job name, or "adhoc"
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | partial | failed
    sa.Column("started_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("finished_at", sa.BigInteger),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),  # series scanned, anomalies, drift, warnings
)


incident_states = sa.Table(
    # the life of an incident the bot or a scan opened: one row per fingerprint (root entity +
    # category, or an Alertmanager group), updated while it lasts, resolved when it clears
    "incident_states", metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),  # scan | alert
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("opened_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("window_end", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),  # root, category, labels, group key ...
)

alert_queue = sa.Table(
    # Alertmanager webhooks, stored before the 202 and worked off by the bot; replayed on start
    "alert_queue", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(64), nullable=False, unique=True),  # groupKey + alert fingerprints/statuses
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # queued | done | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("incident_id", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

deliveries = sa.Table(
    # every notifier delivery attempt (targets redacted; see api.bot.notifiers.DeliveryRecord)
    "deliveries", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notifier", sa.String(64), nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("attempts", sa.JSON, nullable=False),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("external_id", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
)


candidate_pools = sa.Table(
    # the ranker's candidates with their features, per incident (Incident.candidates): what a
    # learned re-ranker trains on once feedback names the true root
    "candidate_pools", metadata,
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("candidates", sa.JSON, nullable=False),
)

ranker_models = sa.Table(
    # learned re-ranker weights (JSON), one row per trained version; at most one is active
    "ranker_models", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # candidate | active | retired | rejected
    sa.Column("weights", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),  # held-back AC@1 base vs learned, counts
    sa.Column("activated_at", sa.BigInteger),
    sa.Column("note", sa.Text, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[incidents, hypotheses, evidence, feedback])


def _v2_keys_and_scans(conn: Connection) -> None:
    metadata.create_all(conn, tables=[api_keys, scans])


def _v3_bot(conn: Connection) -> None:
    metadata.create_all(conn, tables=[incident_states, alert_queue, deliveries])


def _v4_learning(conn: Connection) -> None:
    metadata.create_all(conn, tables=[candidate_pools, ranker_models])


MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_keys_and_scans, _v3_bot, _v4_learning]
SCHEMA_VERSION = len(MIGRATIONS)
