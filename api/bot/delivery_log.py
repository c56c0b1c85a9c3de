"""``SqlDeliveryLog``: the ``DeliveryLog`` protocol on the store's ``deliveries`` table."""

from __future__ import annotations

import sqlalchemy as sa

from api.bot.notifiers import Attempt, DeliveryRecord
from rca.store_schema import deliveries

__all__ = ["SqlDeliveryLog"]


def _record(r) -> DeliveryRecord:
    return DeliveryRecord(r.notifier, r.incident_id, r.fingerprint, r.status, r.target,
                          tuple(Attempt(float(a[0]), a[1]) for a in (r.attempts or [])), bool(r.delivered),
                          r.content_hash or "", r.external_id)


class SqlDeliveryLog:
    """Every delivery record, one row each (targets are already redacted by the notifiers)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def last(self, incident_id: str, notifier: str) -> DeliveryRecord | None:
        q = (sa.select(deliveries).where(deliveries.c.incident_id == incident_id, deliveries.c.notifier == notifier,
                                         deliveries.c.delivered.is_(True))
             .order_by(deliveries.c.seq.desc()).limit(1))
        with self.engine.connect() as c:
            r = c.execute(q).first()
        return _record(r) if r else None

    def record(self, rec: DeliveryRecord) -> None:
        with self.engine.begin() as c:
            c.execute(deliveries.insert().values(
                notifier=rec.notifier, incident_id=rec.incident_id, fingerprint=rec.fingerprint, status=rec.status,
                target=rec.target, attempts=[[a[0], a[1]] for a in rec.attempts], delivered=rec.delivered,
                content_hash=rec.content_hash, external_id=rec.external_id, at=rec.at))

    def records(self, incident_id: str | None = None) -> list[DeliveryRecord]:
        q = sa.select(deliveries).order_by(deliveries.c.seq)
        if incident_id:
            q = q.where(deliveries.c.incident_id == incident_id)
        with self.engine.connect() as c:
            return [_record(r) for r in c.execute(q)]
