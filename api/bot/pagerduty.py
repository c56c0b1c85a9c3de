"""PagerDuty Events API v2: trigger (open/updated) and resolve, ``dedup_key`` = fingerprint.

A re-trigger with the same ``dedup_key`` updates the open PagerDuty incident instead of paging
again, so delivery is idempotent and read timeouts are retried too (reference §8.3).
"""

from __future__ import annotations

from typing import Any

import httpx

from api.bot.notifiers import (
    DeliveryRecord,
    IncidentMessage,
    RetryPolicy,
    post_json,
    record_of,
    redact_target,
)
from rca.serialize import rfc3339

__all__ = ["EVENTS_URL", "PagerDutyNotifier", "pagerduty_payload"]

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def pagerduty_payload(msg: IncidentMessage, routing_key: str, source: str = "rca") -> dict[str, Any]:
    """A ``trigger`` event for open/updated, a ``resolve`` event for resolved."""
    dedup = msg.fingerprint[:255]
    if msg.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup}
    top = msg.hypotheses[0] if msg.hypotheses else None
    payload: dict[str, Any] = {
        "summary": msg.headline[:1024], "source": source, "severity": msg.severity,
        "custom_details": {"incident_id": msg.incident_id, "status": msg.status, "summary": msg.summary,
                           "hypotheses": [{"rank": h.rank, "root": h.root, "category": h.category,
                                           "confidence": h.confidence if h.confidence == h.confidence else None,
                                           "evidence": list(h.evidence)} for h in msg.hypotheses]}}
    if msg.created_at:
        payload["timestamp"] = rfc3339(msg.created_at)
    if top is not None:
        payload["component"], payload["class"] = top.root, top.category
    links = [{"href": msg.incident_url, "text": f"incident {msg.incident_id}"}]
    links += [{"href": u, "text": f"plot: {h.root}"} for h in msg.hypotheses[:1] for u in h.plot_urls]
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup, "payload": payload,
            "links": links, "client": "rca", "client_url": msg.incident_url}


class PagerDutyNotifier:
    """Sends events with ``routing_key`` (a secret: it never leaves the request body)."""

    def __init__(self, routing_key: str, client: httpx.Client, policy: RetryPolicy | None = None,
                 url: str = EVENTS_URL, source: str = "rca", name: str = "pagerduty") -> None:
        self._key = routing_key
        self.client = client
        self.policy = policy or RetryPolicy()
        self.url = url
        self.source = source
        self.name = name

    def __repr__(self) -> str:
        return f"PagerDutyNotifier({redact_target(self.url, self._key)!r}, name={self.name!r})"

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        body = pagerduty_payload(msg, self._key, self.source)
        attempts, resp = post_json(self.client, self.url, body, self.policy, idempotent=True, secrets=(self._key,))
        external = body["dedup_key"]
        if resp is not None:
            try:
                doc = resp.json()
                external = str(doc.get("dedup_key") or external) if isinstance(doc, dict) else external
            except ValueError:
                pass
        return record_of(self.name, msg, redact_target(self.url, self._key), attempts, resp, external)
