"""The incident bot's inbound routes: Alertmanager webhooks and Slack button clicks.

``POST /v1/alerts/alertmanager`` (scope ``write``; Alertmanager sends the key with
``http_config.authorization``) checks the payload, stores it in the alert queue and answers
202 once the row is committed; the analysis happens on the bot's worker, never here.
``POST /v1/bot/slack/actions`` takes no API key: Slack signs it with the app's signing secret.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.body import read_body
from api.problems import ApiProblem
from api.routes_ops import PROBLEMS
from api.schemas import AlertAccepted
from rca.apikeys import ApiKey

__all__ = ["SLACK_ACTIONS_PATH", "router"]

router = APIRouter(prefix="/v1")
WriteKey = Annotated[ApiKey, Depends(require("write"))]
SLACK_ACTIONS_PATH = "/v1/bot/slack/actions"
_SLACK_MAX = 64 * 1024


@router.post("/alerts/alertmanager", status_code=202, response_model=AlertAccepted, tags=["bot"],
             responses={413: PROBLEMS[400], **PROBLEMS},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "description": "Alertmanager webhook payload, version 4"}}}}},
             summary="Alertmanager webhook receiver: queue an alert group for analysis")
async def alertmanager(request: Request, key: WriteKey) -> JSONResponse:
    from api.bot.alerts import dedup_key, parse_payload
    from api.bot.queue import AlertQueue

    state = request.app.state.rca
    doc = parse_payload(await read_body(request, state.settings.alert_max_body_bytes,
                                        fix="lower Alertmanager's max_alerts"))
    dk = dedup_key(doc)
    seq, created = await run_in_threadpool(AlertQueue(state.store.engine).enqueue, dk, doc["groupKey"], doc)
    worker = state.extras.get("bot_worker")
    if created and worker is not None:
        worker.wake()
    return JSONResponse({"queued": created, "duplicate": not created, "seq": seq, "dedup_key": dk},
                        status_code=202)


@router.post("/bot/slack/actions", tags=["bot"], include_in_schema=False,  # Slack's, not an API client's
             summary="Slack interactivity: Confirm / Wrong root cause buttons (Slack-signed, no API key)")
async def slack_actions(request: Request) -> dict:
    from api.bot.slack import feedback_of, parse_block_actions, verify_slack_signature

    state = request.app.state.rca
    secret = state.settings.slack_signing_secret
    if not secret:
        raise ApiProblem(503, "Slack actions not configured", "no Slack signing secret is configured",
                         kind="not-configured", fix="set RCA_SLACK_SIGNING_SECRET to the Slack app's signing secret")
    body = await read_body(request, _SLACK_MAX)
    verify_slack_signature(secret, request.headers.get("x-slack-request-timestamp"), body,
                           request.headers.get("x-slack-signature"))
    action = parse_block_actions(body)
    created = await run_in_threadpool(state.store.add_feedback, feedback_of(action))
    return {"ok": True, "incident_id": action.incident_id, "verdict": action.action, "recorded": created}
