"""A generic JSON webhook: the message as JSON, optionally signed.

Body: ``{"version": "1", "event": "incident.<status>", "incident": IncidentMessage.to_json(),
"previous": {"status", "at", "external_id"} | null}``. With a ``secret`` the request carries
``X-RCA-Timestamp`` and ``X-RCA-Signature: v1=<hex hmac-sha256 of "v1:{ts}:{body}">``; the
receiver should reject timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
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

__all__ = ["WebhookNotifier", "sign_webhook", "webhook_payload"]


def webhook_payload(msg: IncidentMessage, previous: DeliveryRecord | None = None) -> dict[str, Any]:
    prev = None if previous is None else {"status": previous.status, "at": previous.at,
                                          "external_id": previous.external_id}
    return {"version": "1", "event": f"incident.{msg.status}", "incident": msg.to_json(), "previous": prev}


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``v1:{timestamp}:{body}`` under ``secret``."""
    base = b"v1:" + str(int(timestamp)).encode() + b":" + body
    return "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs :func:`webhook_payload` to ``url``. ``headers`` (e.g. ``Authorization``) and ``secret``
    are never logged or recorded."""

    def __init__(self, url: str, client: httpx.Client, policy: RetryPolicy | None = None, *,
                 secret: str | None = None, headers: Mapping[str, str] | None = None,
                 name: str = "webhook") -> None:
        self._url = url
        self.client = client
        self.policy = policy or RetryPolicy()
        self._secret = secret
        self._headers = dict(headers or {})
        self.name = name

    def __repr__(self) -> str:
        return f"WebhookNotifier({redact_target(self._url)!r}, name={self.name!r})"

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        payload = webhook_payload(msg, previous)
        headers = dict(self._headers)
        if self._secret:
            ts = int(self.policy.clock())
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers["X-RCA-Timestamp"] = str(ts)
            headers["X-RCA-Signature"] = sign_webhook(self._secret, ts, body)
        attempts, resp = post_json(self.client, self._url, payload, self.policy, headers=headers,
                                   secrets=tuple(self._headers.values()))
        return record_of(self.name, msg, redact_target(self._url), attempts, resp)
