"""The incident bot's worker: alert groups from the queue -> analyses -> incidents -> messages.

One thread per API process (started in the app's lifespan). On start it queues again what a
dead process left claimed, then works off everything still ``queued`` (so a crash between the
202 and the analysis loses nothing), oldest first. For each item:

* firing, no open incident for the group -> analyse (on the API's analysis pool), open the
  incident state (``fingerprint = sha256(groupKey)[:32]``, source ``alert``) and notify when the
  top hypothesis is confident enough (``notify_min_confidence``);
* firing while the group's incident is open -> the state is touched (same fingerprint, no new
  analysis, no new message);
* resolved -> the state is resolved and, if the opening went out, a resolve message follows.

A failed analysis is retried with exponential backoff (``bot_retry_base_s``) up to
``bot_max_attempts`` attempts, then the item is ``failed`` with its error. Bad input (e.g. a
window the engine refuses) fails at once.
"""

from __future__ import annotations

import logging
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
from rca.errors import BadInput
from rca.settings import Settings
from rca.store_schema import incident_states

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


class BotWorker:
    def __init__(self, service: Any, settings: Settings, notifiers: Sequence[Notifier]) -> None:
        self.service = service
        self.settings = settings
        self.store = service.engine.store
        self.queue = AlertQueue(self.store.engine)
        self.deliveries = SqlDeliveryLog(self.store.engine)
        self.dispatcher = Dispatcher(list(notifiers), self.deliveries, settings.notify_min_interval_s)
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
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > 60:
                    self.queue.requeue_stale(self.stale_s)
                    last_sweep = time.monotonic()
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

    def process(self, item: QueueItem) -> str | None:
        """Handle one queued payload; the incident id it concerns (None: nothing to do)."""
        doc = item.payload
        fp = group_fingerprint(item.group_key)
        row = self._state(fp)
        now = int(time.time())
        labels = [a.get("labels") or {} for a in doc["alerts"]]
        if firing_alerts(doc):
            if row is not None and row.status == "open":
                detail = {**row.detail, "alerts": labels, "last_seq": item.seq}
                with self.store.engine.begin() as c:
                    c.execute(incident_states.update().where(incident_states.c.fingerprint == fp)
                              .values(updated_at=now, detail=detail))
                return row.incident_id
            catalog = self.service.catalog()
            req = request_of_alerts(doc, catalog, self.settings.timezone)
            fut = self.service.submit(self.service.engine.analyze, req)
            incident = fut.result(timeout=self.settings.analysis_timeout_s)
            top = incident.hypotheses[0] if incident.hypotheses else None
            detail = {"group_key": item.group_key, "alerts": labels, "scope": list(req.scope),
                      "signal": req.signal, "statistic": req.statistic, "root": top.root if top else None,
                      "category": top.category if top else None, "last_seq": item.seq, "notified": False}
            values = dict(incident_id=incident.id, source="alert", status="open", opened_at=now, updated_at=now,
                          resolved_at=None, window_start=incident.window.start, window_end=incident.window.end,
                          detail=detail)
            with self.store.engine.begin() as c:
                if row is None:
                    c.execute(incident_states.insert().values(fingerprint=fp, **values))
                else:  # resolved earlier, firing again: a new life of the same fingerprint
                    c.execute(incident_states.update().where(incident_states.c.fingerprint == fp).values(**values))
            conf = float(top.confidence) if top else float("nan")
            if top is not None and conf >= self.settings.notify_min_confidence:
                sev = _severity(doc)
                msg = message_from_incident(incident, public_base_url(self.settings), fp, "open",
                                            sev if sev in SEVERITIES else "error")
                results = self.dispatcher.dispatch(msg)
                sent = any(r.outcome in ("sent", "duplicate", "rate_limited") for r in results)
                if sent or any(r.outcome == "skipped" for r in results):
                    detail = {**detail, "notified": sent or detail["notified"]}
                    with self.store.engine.begin() as c:
                        c.execute(incident_states.update().where(incident_states.c.fingerprint == fp)
                                  .values(detail=detail))
                for r in results:
                    if r.outcome == "failed":
                        log.error("bot: %s could not deliver incident %s", r.notifier, incident.id)
            else:
                log.info("bot: incident %s not notified (top confidence %.2f < %.2f)", incident.id, conf,
                         self.settings.notify_min_confidence)
            return incident.id
        # resolved
        if row is None or row.status == "resolved":
            return row.incident_id if row else None
        with self.store.engine.begin() as c:
            c.execute(incident_states.update().where(incident_states.c.fingerprint == fp)
                      .values(status="resolved", resolved_at=now, updated_at=now,
                              detail={**row.detail, "alerts": labels, "last_seq": item.seq}))
        if (row.detail or {}).get("notified"):
            incident = self.store.get_incident(row.incident_id)
            sev = _severity(doc)
            msg = message_from_incident(incident, public_base_url(self.settings), fp, "resolved",
                                        sev if sev in SEVERITIES else "error")
            self.dispatcher.dispatch(msg)
        return row.incident_id
