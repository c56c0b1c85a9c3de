"""The incident bot's worker: alert groups from the queue -> analyses -> incidents -> messages.

One thread per API process (started in the app's lifespan). On start it queues again what a
dead process left claimed, then works off everything still ``queued`` (so a crash between the
202 and the analysis loses nothing), oldest first. For each item:

* firing, no open incident for the group -> analyse (on the API's analysis pool), open the
  incident state (``fingerprint = sha256(groupKey)[:32]``, source ``alert``) and notify when the
  top hypothesis is confident enough (``notify_min_confidence``);
* firing while the group's incident is open -> the state is touched (same fingerprint, no new
  analysis, no new message);
* resolved -> the state is resolved and, if the opening went out (or was held or failed), a
  resolve message follows to the notifiers that had a record for the incident.

Messages go where ``api.bot.routing`` routes them (labels: the group's common labels, ``source:
alert`` and the severity). Every ``notify_redeliver_s`` the worker also runs :meth:`BotWorker.redeliver`:
for each incident whose newest delivery record for a notifier is not delivered (failed, or held by
quiet hours) and is younger than ``notify_redeliver_max_age_s``, the incident's current message is
routed and dispatched again to that notifier — the dispatcher's content check keeps it to one copy.

A failed analysis is retried with exponential backoff (``bot_retry_base_s``) up to
``bot_max_attempts`` attempts, then the item is ``failed`` with its error. Bad input (e.g. a
window the engine refuses) fails at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import sqlalchemy as sa

from api.bot.alerts import firing_alerts, group_fingerprint, request_of_alerts
from api.bot.delivery_log import SqlDeliveryLog
from api.bot.notifiers import (
    SEVERITIES,
    Dispatcher,
    Notifier,
    NullNotifier,
    RetryPolicy,
    message_from_incident,
)
from api.bot.queue import AlertQueue, QueueItem
from api.bot.routing import Router, dispatch_routed, scan_labels
from rca.errors import BadInput
from rca.settings import Settings
from rca.store_schema import deliveries, incident_states

__all__ = ["BotWorker", "build_notifiers", "public_base_url"]

log = logging.getLogger("rca.bot")


def public_base_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") or f"http://{settings.host}:{settings.port}"


def build_notifiers(settings: Settings, client: httpx.Client, policy: RetryPolicy | None = None) -> list[Notifier]:
    """The notifiers the settings configure; ``[NullNotifier()]`` when none is."""
    from api.bot.pagerduty import PagerDutyNotifier
    from api.bot.slack import SlackNotifier
    from api.bot.teams import TeamsNotifier
    from api.bot.webhook import WebhookNotifier

    policy = policy or RetryPolicy(attempts=settings.notify_retry_attempts, base_s=settings.notify_retry_base_s,
                                   max_s=max(settings.notify_retry_base_s, 30.0))
    out: list[Notifier] = []
    if settings.slack_webhook_url:
        out.append(SlackNotifier(settings.slack_webhook_url, client, policy))
    if settings.teams_webhook_url:
        out.append(TeamsNotifier(settings.teams_webhook_url, client, policy))
    if settings.pagerduty_routing_key:
        out.append(PagerDutyNotifier(settings.pagerduty_routing_key, client, policy))
    if settings.webhook_url:
        out.append(WebhookNotifier(settings.webhook_url, client, policy, secret=settings.webhook_secret or None))
    return out or [NullNotifier()]


def _severity(doc: dict[str, Any]) -> str:
    sev = str((doc.get("commonLabels") or {}).get("severity", "")).lower()
    return {"page": "critical", "warn": "warning"}.get(sev, sev) if sev else "error"


def _common(alerts: list[dict[str, Any]]) -> dict[str, str]:
    if not alerts:
        return {}
    first = {str(k): str(v) for k, v in alerts[0].items()}
    return {k: v for k, v in first.items() if all(str(a.get(k)) == v for a in alerts[1:])}


class BotWorker:
    def __init__(self, service: Any, settings: Settings, notifiers: Sequence[Notifier],
                 router: Router | None = None, dispatcher: Dispatcher | None = None) -> None:
        self.service = service
        self.settings = settings
        self.store = service.engine.store
        self.queue = AlertQueue(self.store.engine)
        self.deliveries = SqlDeliveryLog(self.store.engine)
        self.dispatcher = dispatcher or Dispatcher(list(notifiers), self.deliveries, settings.notify_min_interval_s)
        self.router = router or Router((), {n.name: n for n in notifiers}, settings.notify_min_confidence)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at: dict[int, float] = {}
        self._current: int | None = None
        self.processed = 0

    # ---- life --------------------------------------------------------------------------------

    @property
    def stale_s(self) -> float:
        return 2 * self.settings.analysis_timeout_s + 60

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rca-bot", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout_s)
            seq = self._current
            if t.is_alive() and seq is not None:  # still analysing: leave it for the next start
                self.queue.finish(seq, "queued", error="interrupted by shutdown")

    def _loop(self) -> None:
        try:
            n = self.queue.requeue_stale(self.stale_s)
            pending = len(self.queue.items("queued"))
            if n or pending:
                log.info("bot: replaying %d queued alert group(s) (%d reclaimed from a dead worker)", pending, n)
        except Exception as e:  # noqa: BLE001 — a store hiccup at start must not kill the thread
            log.warning("bot: replay check failed: %s", e)
        last_sweep = last_redeliver = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > 60:
                    self.queue.requeue_stale(self.stale_s)
                    last_sweep = time.monotonic()
                if time.monotonic() - last_redeliver >= self.settings.notify_redeliver_s:
                    last_redeliver = time.monotonic()
                    self.redeliver()
                item = self.queue.claim(self._retry_at)
            except Exception as e:  # noqa: BLE001
                log.warning("bot: queue unavailable: %s", e)
                item = None
            if item is None:
                self._wake.wait(self.settings.bot_poll_s)
                self._wake.clear()
                continue
            self._run(item)

    # ---- one item ----------------------------------------------------------------------------

    def _run(self, item: QueueItem) -> None:
        self._current = item.seq
        try:
            incident_id = self.process(item)
        except BadInput as e:
            log.warning("bot: alert group %s cannot be analysed: %s", item.seq, e)
            self.queue.finish(item.seq, "failed", error=f"BadInput: {e}")
        except Exception as e:  # noqa: BLE001 — retried, then recorded as failed
            err = f"{type(e).__name__}: {e}"
            if self._stop.is_set():
                self.queue.finish(item.seq, "queued", error=err)
            elif item.attempts >= self.settings.bot_max_attempts:
                log.error("bot: alert group %s failed after %d attempts: %s", item.seq, item.attempts, err)
                self.queue.finish(item.seq, "failed", error=err)
            else:
                wait = min(300.0, self.settings.bot_retry_base_s * 2 ** (item.attempts - 1))
                self._retry_at[item.seq] = time.time() + wait
                log.warning("bot: alert group %s attempt %d failed (%s); retrying in %.1f s", item.seq,
                            item.attempts, err, wait)
                self.queue.finish(item.seq, "queued", error=err)
        else:
            self._retry_at.pop(item.seq, None)
            self.queue.finish(item.seq, "done", incident_id=incident_id)
            self.processed += 1
        finally:
            self._current = None

    def _state(self, fingerprint: str) -> Any:
        with self.store.engine.connect() as c:
            return c.execute(sa.select(incident_states).where(incident_states.c.fingerprint == fingerprint)).first()

    def _analyze(self, doc: dict[str, Any]) -> tuple[Any, Any]:
        """The incident behind a payload's firing alerts, analysed on the shared pool."""
        req = request_of_alerts(doc, self.service.catalog(), self.settings.timezone)
        fut = self.service.submit(self.service.engine.analyze, req)
        return fut.result(timeout=self.settings.analysis_timeout_s), req

    def _still_firing(self, item: QueueItem, row: Any, fp: str, labels: list, firing: list[str], now: int) -> str:
        """An open group fires again. The same alerts (a repeat): note it, nothing else. New
        alerts joined: analyse again, keep the incident id, and send an update (rate-limited)."""
        detail = {**row.detail, "alerts": labels, "last_seq": item.seq, "firing": firing}
        joined = set(firing) - set(row.detail.get("firing", firing))
        if not joined:
            with self.store.engine.begin() as c:
                c.execute(incident_states.update().where(incident_states.c.fingerprint == fp)
                          .values(updated_at=now, detail=detail))
            return row.incident_id
        fresh, _ = self._analyze(item.payload)
        incident = dataclasses.replace(fresh, id=row.incident_id)
        self.store.save_incident(incident)
        top = incident.hypotheses[0] if incident.hypotheses else None
        detail.update(root=top.root if top else None, category=top.category if top else None)
        with self.store.engine.begin() as c:
            c.execute(incident_states.update().where(incident_states.c.fingerprint == fp).values(
                updated_at=now, detail=detail, window_start=min(row.window_start, incident.window.start),
                window_end=max(row.window_end, incident.window.end)))
        msg = message_from_incident(incident, public_base_url(self.settings), fp, "updated",
                                    detail.get("severity", "error"))
        route_labels = detail.get("route_labels") or {**_common(labels), "source": "alert"}
        dispatch_routed(self.dispatcher, self.router, msg, route_labels,
                        float(top.confidence) if top else math.nan)
        return row.incident_id

    def process(self, item: QueueItem) -> str | None:
        """Handle one queued payload; the incident id it concerns (None: nothing to do)."""
        doc = item.payload
        fp = group_fingerprint(item.group_key)
        row = self._state(fp)
        now = int(time.time())
        labels = [a.get("labels") or {} for a in doc["alerts"]]
        if firing_alerts(doc):
            firing = sorted({str(a.get("fingerprint")) for a in firing_alerts(doc)})
            if row is not None and row.status == "open":
                return self._still_firing(item, row, fp, labels, firing, now)
            incident, req = self._analyze(doc)
            top = incident.hypotheses[0] if incident.hypotheses else None
            detail = {"group_key": item.group_key, "alerts": labels, "scope": list(req.scope),
                      "signal": req.signal, "statistic": req.statistic, "root": top.root if top else None,
                      "category": top.category if top else None, "last_seq": item.seq, "notified": False,
                      "firing": firing}
            values = dict(incident_id=incident.id, source="alert", status="open", opened_at=now, updated_at=now,
                          resolved_at=None, window_start=incident.window.start, window_end=incident.window.end,
                          detail=detail)
            with self.store.engine.begin() as c:
                if row is None:
                    c.execute(incident_states.insert().values(fingerprint=fp, **values))
                else:  # resolved earlier, firing again: a new life of the same fingerprint
                    c.execute(incident_states.update().where(incident_states.c.fingerprint == fp).values(**values))
            conf = float(top.confidence) if top else float("nan")
            sev = _severity(doc)
            sev = sev if sev in SEVERITIES else "error"
            route_labels = {**_common(labels), "source": "alert"}
            detail = {**detail, "severity": sev, "route_labels": route_labels}
            msg = message_from_incident(incident, public_base_url(self.settings), fp, "open", sev)
            results, reason = dispatch_routed(self.dispatcher, self.router, msg, route_labels, conf)
            sent = any(r.outcome in ("sent", "duplicate", "rate_limited", "quiet") for r in results)
            detail = {**detail, "notified": sent}
            with self.store.engine.begin() as c:
                c.execute(incident_states.update().where(incident_states.c.fingerprint == fp).values(detail=detail))
            for r in results:
                if r.outcome == "failed":
                    log.error("bot: %s could not deliver incident %s (redelivery will retry)", r.notifier,
                              incident.id)
            if not results:
                log.info("bot: incident %s not notified (%s)", incident.id, reason)
            return incident.id
        # resolved
        if row is None or row.status == "resolved":
            return row.incident_id if row else None
        with self.store.engine.begin() as c:
            c.execute(incident_states.update().where(incident_states.c.fingerprint == fp)
                      .values(status="resolved", resolved_at=now, updated_at=now,
                              detail={**row.detail, "alerts": labels, "last_seq": item.seq}))
        told = {r.notifier for r in self.deliveries.records(row.incident_id)}
        if told:
            incident = self.store.get_incident(row.incident_id)
            detail = row.detail or {}
            sev = _severity(doc)
            msg = message_from_incident(incident, public_base_url(self.settings), fp, "resolved",
                                        sev if sev in SEVERITIES else detail.get("severity", "error"))
            route_labels = detail.get("route_labels") or {**_common(labels), "source": "alert"}
            dispatch_routed(self.dispatcher, self.router, msg, route_labels, math.nan, only=told)
        return row.incident_id

    # ---- never lost ----------------------------------------------------------------------------

    def pending(self, now: float | None = None) -> dict[str, set[str]]:
        """Incident id -> notifiers whose newest record (younger than ``notify_redeliver_max_age_s``)
        is not delivered."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.notify_redeliver_max_age_s
        newest = (sa.select(sa.func.max(deliveries.c.seq).label("seq")).where(deliveries.c.at >= cutoff)
                  .group_by(deliveries.c.incident_id, deliveries.c.notifier).subquery())
        q = (sa.select(deliveries.c.incident_id, deliveries.c.notifier)
             .join(newest, deliveries.c.seq == newest.c.seq).where(deliveries.c.delivered.is_(False)))
        out: dict[str, set[str]] = {}
        with self.store.engine.connect() as c:
            for r in c.execute(q):
                out.setdefault(r.incident_id, set()).add(r.notifier)
        return out

    def redeliver(self, now: float | None = None) -> int:
        """Dispatch the current message of every :meth:`pending` incident again to the notifiers
        still owed it (if routing still sends there now); how many deliveries succeeded."""
        now = time.time() if now is None else now
        done = 0
        try:
            owed = self.pending(now)
        except Exception as e:  # noqa: BLE001 — a store hiccup waits for the next pass
            log.warning("bot: redelivery check failed: %s", e)
            return 0
        for incident_id, names in owed.items():
            try:
                done += self._redeliver_one(incident_id, names, now)
            except Exception as e:  # noqa: BLE001 — one bad incident must not block the others
                log.warning("bot: redelivery of %s failed: %s", incident_id, e)
        return done

    def _redeliver_one(self, incident_id: str, names: set[str], now: float) -> int:
        with self.store.engine.connect() as c:
            row = c.execute(sa.select(incident_states).where(incident_states.c.incident_id == incident_id)
                            .order_by(incident_states.c.updated_at.desc()).limit(1)).first()
        if row is None:
            return 0
        detail = row.detail or {}
        recs = [r for r in self.deliveries.records(incident_id) if r.notifier in names]
        status = "resolved" if row.status == "resolved" else (recs[-1].status if recs else "open")
        incident = self.store.get_incident(incident_id)
        if row.source == "alert":
            labels = detail.get("route_labels") or {"source": "alert"}
            sev = detail.get("severity", "error")
        else:
            labels, sev = scan_labels(detail.get("root"), detail.get("category")), "error"
        top = incident.hypotheses[0] if incident.hypotheses else None
        conf = float(top.confidence) if top else math.nan
        msg = message_from_incident(incident, public_base_url(self.settings), row.fingerprint, status,
                                    sev if sev in SEVERITIES else "error")
        results, _ = dispatch_routed(self.dispatcher, self.router, msg, labels, conf, now, only=names)
        sent = sum(r.outcome == "sent" for r in results)
        if sent:
            log.info("bot: redelivered incident %s to %s", incident_id,
                     ", ".join(r.notifier for r in results if r.outcome == "sent"))
        return sent
