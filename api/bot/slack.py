"""Slack: an incoming-webhook notifier (Block Kit), request-signature checks, button actions.

Incoming webhooks cannot edit a message and answer a plain ``ok`` (no ``ts``), so an update is a
new message headed "Update" / "Resolved" that names when the previous message went out.
The *Confirm* / *Wrong root cause* buttons carry ``{"incident": id, "rank": n}`` as their value;
Slack posts clicks to the app's interactivity URL (``POST /v1/bot/slack/actions``) as a form field
``payload``, signed with the app's signing secret (v0 HMAC-SHA256 over ``v0:{ts}:{body}``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from api.bot.notifiers import (
    DeliveryRecord,
    IncidentMessage,
)
from api.bot.posting import UrlNotifier
from rca.errors import BadInput
from rca.types import Feedback

__all__ = ["ACTION_CONFIRM", "ACTION_WRONG", "SlackAction", "SlackNotifier", "SlackSignatureError",
           "feedback_of", "mrkdwn_escape", "parse_block_actions", "slack_payload", "verify_slack_signature"]

ACTION_CONFIRM = "rca_confirm"
ACTION_WRONG = "rca_wrong"
_HEADER_MAX, _TEXT_MAX, _BLOCKS_MAX = 150, 3000, 50
_TITLES = {"open": "", "updated": "Update: ", "resolved": "Resolved: "}


def mrkdwn_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` (Slack's only control characters in mrkdwn text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _button(text: str, action_id: str, incident_id: str, rank: int, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text},
                         "action_id": action_id,
                         "value": json.dumps({"incident": incident_id, "rank": rank}, separators=(",", ":"))}
    if style:
        b["style"] = style
    return b


def slack_payload(msg: IncidentMessage, previous: DeliveryRecord | None = None) -> dict[str, Any]:
    """The webhook body: ``text`` (fallback/notification) and ``blocks`` (reference §8.1)."""
    title = _TITLES[msg.status] + msg.headline
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX)}}]
    if previous is not None:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn_escape(
            f"{msg.status} of incident {msg.incident_id}; previous message {_when(previous.at)}")}]})
    if msg.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn_escape(msg.summary),
                                                                                 _TEXT_MAX)}})
    for h in msg.hypotheses:
        conf = f"{h.confidence:.0%}" if h.confidence == h.confidence else "n/a"
        lines = [f"*{h.rank}. {mrkdwn_escape(h.root)}* — {mrkdwn_escape(h.category)}, confidence {conf}"]
        lines += [f"• {mrkdwn_escape(e)}" for e in h.evidence]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), _TEXT_MAX)}})
        if h.plot_urls:
            links = " · ".join(f"<{u}|plot {i}>" for i, u in enumerate(h.plot_urls, 1))
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"<{msg.incident_url}|incident {mrkdwn_escape(msg.incident_id)}> · severity {msg.severity}")}]})
    if msg.hypotheses and msg.status != "resolved":
        blocks.append({"type": "divider"})
        buttons = [_button(f"Confirm #{h.rank}" if h.rank > 1 else "Confirm", f"{ACTION_CONFIRM}_{h.rank}",
                           msg.incident_id, h.rank, "primary" if h.rank == 1 else None) for h in msg.hypotheses]
        buttons.append(_button("Wrong root cause", ACTION_WRONG, msg.incident_id, 1, "danger"))
        blocks.append({"type": "actions", "block_id": f"rca_feedback:{msg.incident_id}"[:255], "elements": buttons})
    return {"text": _cut(title, _TEXT_MAX), "blocks": blocks[:_BLOCKS_MAX]}


class SlackNotifier(UrlNotifier):
    """Posts :func:`slack_payload` to an incoming-webhook URL (a secret)."""

    default_name = "slack"

    def payload(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> dict[str, Any]:
        return slack_payload(msg, previous)


# --- inbound: signatures and actions --------------------------------------------------------------

class SlackSignatureError(BadInput):
    """The request is not provably from Slack (the route answers 401)."""

    status = 401


def verify_slack_signature(signing_secret: str, timestamp: str | None, body: bytes, signature: str | None,
                           now: float | None = None, tolerance_s: float = 300) -> None:
    """Check ``X-Slack-Signature`` against ``X-Slack-Request-Timestamp`` and the raw ``body``;
    raise :class:`SlackSignatureError` unless it matches and the timestamp is within
    ``tolerance_s`` of ``now`` (replay window)."""
    if not signing_secret:
        raise SlackSignatureError("no signing secret configured", field="signing_secret",
                                  fix="set the Slack app's signing secret")
    if not timestamp or not signature:
        raise SlackSignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header",
                                  field="headers")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SlackSignatureError("X-Slack-Request-Timestamp is not an integer", field="headers") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SlackSignatureError(f"request timestamp is {abs(now - ts):.0f} s away from now (possible replay)",
                                  field="headers", fix="check the server clock")
    base = b"v0:" + str(ts).encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SlackSignatureError("signature does not match", field="headers")


@dataclass(frozen=True)
class SlackAction:
    """A click on one of our buttons: ``action`` ``confirm`` | ``wrong`` on hypothesis ``rank``."""

    incident_id: str
    action: Literal["confirm", "wrong"]
    rank: int
    user: str
    response_url: str | None = None


def parse_block_actions(body: bytes | str) -> SlackAction:
    """Parse Slack's form-encoded ``payload=<json>`` of type ``block_actions`` (the first of our
    actions in it). Raise ``BadInput`` on anything else."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    raw = parse_qs(text).get("payload")
    if not raw:
        raise BadInput("no 'payload' form field", field="payload", fix="post Slack's interactivity payload")
    try:
        doc = json.loads(raw[0])
    except ValueError:
        raise BadInput("payload is not JSON", field="payload") from None
    if not isinstance(doc, dict) or doc.get("type") != "block_actions":
        raise BadInput("not a block_actions payload", field="payload.type")
    for a in doc.get("actions") or []:
        aid = str(a.get("action_id", "")) if isinstance(a, dict) else ""
        if not (aid.startswith(ACTION_CONFIRM) or aid == ACTION_WRONG):
            continue
        try:
            value = json.loads(a.get("value") or "")
            incident_id, rank = str(value["incident"]), int(value["rank"])
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"action {aid} has a malformed value", field="payload.actions") from None
        if not incident_id or rank < 1:
            raise BadInput(f"action {aid} has a malformed value", field="payload.actions")
        user = doc.get("user") or {}
        name = str(user.get("username") or user.get("name") or user.get("id") or "") if isinstance(user, dict) else ""
        return SlackAction(incident_id, "confirm" if aid.startswith(ACTION_CONFIRM) else "wrong", rank,
                           name, doc.get("response_url"))
    raise BadInput("no Confirm / Wrong root cause action in payload", field="payload.actions")


def feedback_of(action: SlackAction, at: int | None = None) -> Feedback:
    """The store's ``Feedback`` for a click (``wrong`` rejects the hypothesis)."""
    return Feedback(action.incident_id, "confirm" if action.action == "confirm" else "reject", action.rank,
                    author=f"slack:{action.user}" if action.user else "slack",
                    at=int(time.time()) if at is None else at)
