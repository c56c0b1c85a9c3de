"""The notifiers that POST a JSON payload to a secret URL (Slack, Teams): one class, the
payload differs."""

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

__all__ = ["UrlNotifier"]


class UrlNotifier:
    """Posts ``payload(msg, previous)`` to ``url``; the URL is a secret (it carries the token),
    so only its redacted form reaches ``repr``, logs and delivery records."""

    default_name = "url"

    def __init__(self, url: str, client: httpx.Client, policy: RetryPolicy | None = None,
                 name: str | None = None) -> None:
        self._url = url
        self.client = client
        self.policy = policy or RetryPolicy()
        self.name = name or self.default_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_target(self._url)!r}, name={self.name!r})"

    def payload(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        attempts, resp = post_json(self.client, self._url, self.payload(msg, previous), self.policy)
        return record_of(self.name, msg, redact_target(self._url), attempts, resp)
