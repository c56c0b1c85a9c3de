"""The durable alert queue on the store's ``alert_queue`` table.

States: ``queued`` (waiting, or waiting for a retry), ``running`` (claimed by a worker; its
``updated_at`` is the claim time), ``done``, ``failed`` (gave up after the maximum attempts).
A claim is a conditional UPDATE, so several API processes on one store never take the same
item, and one alert group is worked on by one worker at a time, oldest item first. Items left
``running`` by a process that died are queued again by :meth:`AlertQueue.requeue_stale`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rca.store_schema import alert_queue

__all__ = ["AlertQueue", "QueueItem"]


@dataclass(frozen=True)
class QueueItem:
    seq: int
    dedup_key: str
    group_key: str
    received_at: int
    state: str
    attempts: int
    payload: dict[str, Any]
    incident_id: str | None = None
    error: str | None = None


def _item(r: Any) -> QueueItem:
    return QueueItem(r.seq, r.dedup_key, r.group_key, r.received_at, r.state, r.attempts, r.payload,
                     r.incident_id, r.error)


class AlertQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def enqueue(self, dedup_key: str, group_key: str, payload: dict[str, Any]) -> tuple[int, bool]:
        """Store ``payload`` (committed when this returns): ``(seq, created)``; ``created`` is
        False when the same ``dedup_key`` was queued before (nothing is stored again)."""
        now = int(time.time())
        try:
            with self.engine.begin() as c:
                seq = c.execute(alert_queue.insert().values(
                    dedup_key=dedup_key, group_key=group_key, received_at=now, state="queued", attempts=0,
                    payload=payload, updated_at=now)).inserted_primary_key[0]
            return int(seq), True
        except IntegrityError:
            with self.engine.connect() as c:
                seq = c.execute(sa.select(alert_queue.c.seq).where(alert_queue.c.dedup_key == dedup_key)).scalar()
            if seq is None:
                raise
            return int(seq), False

    def get(self, seq: int) -> QueueItem | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(alert_queue).where(alert_queue.c.seq == seq)).first()
        return _item(r) if r else None

    def items(self, state: str | None = None) -> list[QueueItem]:
        q = sa.select(alert_queue).order_by(alert_queue.c.seq)
        if state:
            q = q.where(alert_queue.c.state == state)
        with self.engine.connect() as c:
            return [_item(r) for r in c.execute(q)]

    def requeue_stale(self, older_than_s: float) -> int:
        """Queue again the items claimed more than ``older_than_s`` ago (their worker died)."""
        limit = int(time.time() - older_than_s)
        with self.engine.begin() as c:
            return c.execute(alert_queue.update().where(alert_queue.c.state == "running",
                                                        alert_queue.c.updated_at <= limit)
                             .values(state="queued")).rowcount

    def claim(self, not_before: dict[int, float] | None = None) -> QueueItem | None:
        """The oldest queued item whose group has nothing running (and whose retry time, if in
        ``not_before`` (seq -> unix time), has come), now ``running``; None if there is none."""
        not_before = not_before or {}
        running = sa.select(alert_queue.c.group_key).where(alert_queue.c.state == "running")
        q = (sa.select(alert_queue.c.seq, alert_queue.c.group_key).where(
            alert_queue.c.state == "queued", alert_queue.c.group_key.not_in(running)).order_by(alert_queue.c.seq))
        now = time.time()
        with self.engine.connect() as c:
            cands = c.execute(q.limit(200)).all()
        seen: set[str] = set()
        for seq, group in cands:
            if group in seen:
                continue  # an older item of this group waits for its retry: keep the order
            seen.add(group)
            if not_before.get(seq, 0) > now:
                continue
            with self.engine.begin() as c:
                got = c.execute(alert_queue.update().where(alert_queue.c.seq == seq, alert_queue.c.state == "queued")
                                .values(state="running", attempts=alert_queue.c.attempts + 1,
                                        updated_at=int(now))).rowcount
            if got == 1:
                return self.get(seq)
        return None

    def finish(self, seq: int, state: str, incident_id: str | None = None, error: str | None = None) -> None:
        """``state``: ``done`` | ``failed`` | ``queued`` (retry later)."""
        with self.engine.begin() as c:
            c.execute(alert_queue.update().where(alert_queue.c.seq == seq).values(
                state=state, incident_id=incident_id, error=error[:2000] if error else None,
                updated_at=int(time.time())))
