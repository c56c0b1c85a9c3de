"""The incident bot's outbound side: notifiers (Slack, Teams, PagerDuty, generic webhook, null)
behind one ``Notifier`` protocol, the message built from an incident, delivery with retries and a
record of every attempt, and the dispatcher's one-message-per-incident rules. Inbound Slack
button clicks are verified and parsed by ``api.bot.slack``. Not wired into the app yet.
"""

from api.bot.notifiers import (
    Attempt,
    DeliveryLog,
    DeliveryRecord,
    Dispatcher,
    DispatchResult,
    HypothesisLine,
    IncidentMessage,
    MemoryDeliveryLog,
    Notifier,
    NullNotifier,
    RetryPolicy,
    message_from_incident,
    redact_target,
)
from api.bot.pagerduty import PagerDutyNotifier, pagerduty_payload
from api.bot.slack import (
    SlackAction,
    SlackNotifier,
    SlackSignatureError,
    feedback_of,
    parse_block_actions,
    slack_payload,
    verify_slack_signature,
)
from api.bot.teams import TeamsNotifier, teams_payload
from api.bot.webhook import WebhookNotifier, sign_webhook, webhook_payload

__all__ = ["Attempt", "DeliveryLog", "DeliveryRecord", "DispatchResult", "Dispatcher", "HypothesisLine",
           "IncidentMessage", "MemoryDeliveryLog", "Notifier", "NullNotifier", "PagerDutyNotifier", "RetryPolicy",
           "SlackAction", "SlackNotifier", "SlackSignatureError", "TeamsNotifier", "WebhookNotifier",
           "feedback_of", "message_from_incident", "pagerduty_payload", "parse_block_actions", "redact_target",
           "sign_webhook", "slack_payload", "teams_payload", "verify_slack_signature", "webhook_payload"]
