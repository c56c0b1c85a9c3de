"""Microsoft Teams through a Workflows webhook: an Adaptive Card (1.4) in a ``message``.

The workflow answers 202 with an empty body and posts asynchronously, so "delivered" means "the
workflow accepted it"; a card cannot be edited through it, so an update is a new card headed
"Update" / "Resolved" (reference §8.2).
"""

from __future__ import annotations

from typing import Any

from api.bot.notifiers import (
    DeliveryRecord,
    IncidentMessage,
)
from api.bot.posting import UrlNotifier

__all__ = ["ADAPTIVE_CARD", "TeamsNotifier", "teams_payload"]

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_TITLES = {"open": "", "updated": "Update: ", "resolved": "Resolved: "}


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_payload(msg: IncidentMessage, previous: DeliveryRecord | None = None) -> dict[str, Any]:
    """``{"type": "message", "attachments": [{contentType, contentUrl, content: AdaptiveCard}]}``."""
    body: list[dict[str, Any]] = [_text(_TITLES[msg.status] + msg.headline, weight="Bolder", size="Medium")]
    if msg.summary:
        body.append(_text(msg.summary))
    for h in msg.hypotheses:
        conf = f"{h.confidence:.0%}" if h.confidence == h.confidence else "n/a"
        body.append(_text(f"{h.rank}. {h.root}", weight="Bolder", separator=True))
        body.append({"type": "FactSet", "facts": [{"title": "category", "value": h.category},
                                                  {"title": "confidence", "value": conf}]})
        if h.evidence:
            body.append(_text("\n".join(f"- {e}" for e in h.evidence)))
        if h.plot_urls:
            body.append(_text(" · ".join(f"[plot {i}]({u})" for i, u in enumerate(h.plot_urls, 1))))
    body.append({"type": "FactSet", "facts": [{"title": "incident", "value": msg.incident_id},
                                              {"title": "status", "value": msg.status},
                                              {"title": "severity", "value": msg.severity}]})
    card = {"$schema": _SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body,
            "actions": [{"type": "Action.OpenUrl", "title": "Open incident", "url": msg.incident_url}]}
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


class TeamsNotifier(UrlNotifier):
    """Posts :func:`teams_payload` to a Workflows webhook URL (a secret: it carries a signature)."""

    default_name = "teams"

    def payload(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> dict[str, Any]:
        return teams_payload(msg, previous)
