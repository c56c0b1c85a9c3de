"""The question path and incidents: ask, analyse a window, list, get, plots, feedback."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.routes_ops import PROBLEMS
from api.schemas import (
    AnswerPublic,
    FeedbackCreate,
    FeedbackPublic,
    IncidentCreate,
    IncidentPage,
    IncidentPublic,
)
from api.service import require_window
from api.shape import PLOTTABLE, answer_public, evidence_at, feedback_public, incident_summary, page
from rca.answer import interpreted_of, request_of
from rca.apikeys import ApiKey
from rca.engine import AnalysisRequest
from rca.errors import BadInput, NotFound
from rca.serialize import rfc3339
from rca.types import Feedback, Window

__all__ = ["router"]

router = APIRouter(prefix="/v1")
ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
IncidentId = Annotated[str, Path(max_length=64, examples=["inc-3f2a9c0d1b2e"])]
_ASK_EXAMPLE = "why was p99 slow at 20:00?"


def _ts(d: datetime | None) -> int | None:
    """A schema ``Time`` (aware, 1970–2200) -> unix seconds."""
    return None if d is None else int(d.timestamp())


async def _question(state, text: str, now: int, tz: str | None):
    """Parse ``text`` against the live entity catalogue (off the event loop)."""
    from rca.ask import parse_question

    svc = state.service
    catalog = await run_in_threadpool(svc.catalog, now)  # cached; a refresh must not queue behind analyses

    def parse():
        return parse_question(text, now, tz=tz, default_tz=state.settings.timezone, catalog=catalog,
                              matcher=svc.matcher(catalog))

    return await run_in_threadpool(parse)


@router.get("/ask", response_model=AnswerPublic, tags=["ask"], responses=PROBLEMS,
            summary="Answer a question such as “why was p99 slow at 20:00?”")
async def ask(request: Request, key: ReadKey,
              q: Annotated[str, Query(min_length=1, max_length=2000, examples=[_ASK_EXAMPLE],
                                      description="the question, in plain words")],
              now: Annotated[str | None, Query(max_length=64, description="answer as if asked at this "
                                               "time (RFC 3339); default: now")] = None,
              tz: Annotated[str | None, Query(max_length=64, description="time zone for times in the "
                                              "question, e.g. Europe/Paris")] = None) -> dict:
    from rca.clock import parse_now

    state = request.app.state.rca
    at_now = parse_now(now, field="now") or state.service.now()
    question = await _question(state, q, at_now, tz)
    try:
        incident = await state.service.analyze(request_of(question))
    except BadInput as e:
        if e.field == "window":  # the window came from the question's words
            raise BadInput(e.message, field="q", fix="ask about a shorter range, e.g. "
                           "“between 19:00 and 20:00”") from None
        raise
    return answer_public(incident, interpreted_of(question))


@router.post("/incidents", response_model=IncidentPublic, status_code=201, tags=["incidents"],
             responses=PROBLEMS, summary="Analyse a window (or a question) and store the incident")
async def create_incident(request: Request, body: IncidentCreate, key: WriteKey) -> JSONResponse:
    state = request.app.state.rca
    now = _ts(body.now) or state.service.now()
    window = require_window(_ts(body.start), _ts(body.end))
    at = _ts(body.at)
    interpreted: dict[str, Any] = {}
    if body.question:
        q = await _question(state, body.question, now, body.tz)
        req = request_of(q)
        interpreted = interpreted_of(q)
    elif window is None and at is None:
        raise BadInput("nothing to analyse", field="at", fix="give `at`, `start` and `end`, or a `question`")
    else:
        req = AnalysisRequest(at=at)
    overrides: dict[str, Any] = {k: v for k, v in (("signal", body.signal), ("statistic", body.statistic),
                                                   ("metric", body.metric)) if v}
    if body.scope:
        overrides["scope"] = tuple(body.scope)
    if body.selector:
        overrides["selector"] = body.selector
    if body.tz and not body.question:  # a question resolved its zone already
        from rca.ask import load_zone

        overrides["tz"] = str(load_zone(body.tz))
    if window is not None:
        overrides.update(window=window, at=at or window.end)
    elif at is not None:
        overrides.update(at=at, window=None)
    req = AnalysisRequest(**{**req.__dict__, **overrides})
    incident = await state.service.analyze(req)
    body_out = {**answer_public(incident, interpreted), "created_at": rfc3339(incident.created_at), "feedback": []}
    return JSONResponse(body_out, status_code=201, headers={"Location": f"/v1/incidents/{incident.id}"})


@router.get("/incidents", response_model=IncidentPage, tags=["incidents"], responses=PROBLEMS,
            summary="Incidents, newest first; page with `cursor`")
async def list_incidents(request: Request, key: ReadKey, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                         cursor: Annotated[str | None, Query(max_length=64)] = None) -> dict:
    return await page(request.app.state.rca.store.list_incidents, limit, cursor, incident_summary)


@router.get("/incidents/{incident_id}", response_model=IncidentPublic, tags=["incidents"], responses=PROBLEMS)
async def get_incident(request: Request, incident_id: IncidentId, key: ReadKey) -> dict:
    store = request.app.state.rca.store
    incident = await run_in_threadpool(store.get_incident, incident_id)
    fbs = await run_in_threadpool(store.list_feedback, incident_id)
    return {**answer_public(incident), "created_at": rfc3339(incident.created_at),
            "feedback": [feedback_public(f) for f in fbs]}


@router.get("/incidents/{incident_id}/evidence/{n}/plot.png", tags=["incidents"], response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "series, baseline band, onset"},
                       **PROBLEMS}, summary="A PNG plot of evidence item `n` (numbered across the incident)")
async def evidence_plot(request: Request, incident_id: IncidentId, n: Annotated[int, Path(ge=1, le=100000)],
                        key: ReadKey) -> Response:
    state = request.app.state.rca
    incident = await run_in_threadpool(state.store.get_incident, incident_id)
    rank, pos = evidence_at(incident, n)
    if not rank:
        total = sum(len(h.evidence) for h in incident.hypotheses)
        raise NotFound(f"incident {incident_id} has {total} evidence items, not {n}", field="n",
                       fix=f"use 1..{total}")
    if incident.hypotheses[rank - 1].evidence[pos - 1].kind not in PLOTTABLE:
        raise NotFound(f"evidence {n} is a {incident.hypotheses[rank - 1].evidence[pos - 1].kind} finding "
                       "with no series to plot", field="n", fix="plot a metric, log or trace item")
    png = await state.service.run(_plot, state, incident, rank, pos)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


def _plot(state, incident, rank: int, pos: int) -> bytes:
    from api.plots import render_png
    from rca.evidence_data import evidence_series

    base = incident.params.get("baseline") or [incident.window.start - state.engine.baseline_s,
                                               incident.window.start]
    snap = state.engine.fetch(Window(int(base[0]), incident.window.end, incident.window.step))
    return render_png(evidence_series(incident, rank, pos, snap))


@router.post("/incidents/{incident_id}/feedback", response_model=FeedbackPublic, status_code=201,
             tags=["incidents"], responses={200: {"model": FeedbackPublic, "description": "already recorded"},
                                            **PROBLEMS},
             summary="Confirm or reject a hypothesis, or name the right root cause")
async def add_feedback(request: Request, incident_id: IncidentId, body: FeedbackCreate, key: WriteKey) -> JSONResponse:
    store = request.app.state.rca.store  # the store checks the incident and the rank
    fb = Feedback(incident_id, body.verdict, body.hypothesis_rank, body.correct_root, body.correct_category,
                  body.note, body.author or key.name, int(time.time()))
    created = await run_in_threadpool(store.add_feedback, fb)
    return JSONResponse(feedback_public(fb, created), status_code=201 if created else 200)


@router.get("/incidents/{incident_id}/feedback", response_model=list[FeedbackPublic], tags=["incidents"],
            responses=PROBLEMS, summary="Feedback on an incident, oldest first")
async def list_feedback(request: Request, incident_id: IncidentId, key: ReadKey) -> list[dict]:
    store = request.app.state.rca.store
    await run_in_threadpool(store.get_incident, incident_id)
    return [feedback_public(f) for f in await run_in_threadpool(store.list_feedback, incident_id)]
