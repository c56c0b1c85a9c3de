"""Operational routes: health, readiness, the API's own metrics, and scans."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.schemas import HealthPublic, Problem, ScanCreate, ScanJobStatus, ScanPage, ScanPublic
from api.shape import page, scan_public
from rca.apikeys import ApiKey
from rca.errors import BadInput, RcaError

__all__ = ["router"]

router = APIRouter()
ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}} for s in (400, 401, 403, 404, 422)}
_READY_CACHE_S = 10.0
_MAX_BASELINE_S = 30 * 86400


@router.get("/healthz", response_model=HealthPublic, tags=["ops"], summary="Liveness: the process answers")
async def healthz() -> dict:
    return {"status": "ok", "checks": []}


@router.get("/readyz", response_model=HealthPublic, tags=["ops"], responses={503: {"model": HealthPublic}},
            summary="Readiness: the store answers (503 if not); each source's health")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state.rca
    cached = state.extras.get("ready")
    if cached and time.monotonic() - cached[0] < _READY_CACHE_S:
        body = cached[1]
    else:
        body = await run_in_threadpool(_readiness, state)
        state.extras["ready"] = (time.monotonic(), body)
    return JSONResponse(body, status_code=503 if body["status"] == "down" else 200)


def _readiness(state) -> dict:
    from connectors.sources import check_sources

    checks = []
    try:
        state.store.ping()
        checks.append({"name": "store", "status": "ok", "detail": "incident store answers"})
    except RcaError as e:
        checks.append({"name": "store", "status": "down", "detail": str(e)})
    for h in check_sources(state.engine.connectors):
        checks.append({"name": f"source:{h.name}", "status": h.status, "detail": h.detail,
                       "latency_s": None if h.latency_s != h.latency_s else round(h.latency_s, 3)})
    if not state.engine.connectors:
        checks.append({"name": "sources", "status": "degraded", "detail": "no source configured"})
    status = "down" if checks[0]["status"] == "down" else (
        "ok" if all(c["status"] == "ok" for c in checks) else "degraded")
    return {"status": status, "checks": checks}


@router.get("/metrics", tags=["ops"], response_class=Response, summary="The API's own Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}}, **PROBLEMS})
async def metrics(request: Request, key: ReadKey) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.rca.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/scans", response_model=ScanPublic, status_code=201, tags=["scans"], responses=PROBLEMS,
             summary="Run one anomaly scan over every series now; stored")
async def create_scan(request: Request, body: ScanCreate, key: WriteKey) -> JSONResponse:

    state = request.app.state.rca
    window_s = _bounded_duration(body.window, "window", state.engine.max_window_s)
    baseline_s = _bounded_duration(body.baseline, "baseline", _MAX_BASELINE_S)
    now = int(body.now.timestamp()) if body.now else state.service.now()
    scan = await state.service.run(_run_scan, state, now, window_s, baseline_s, body.min_level, body.selector)
    return JSONResponse(scan_public(scan), status_code=201, headers={"Location": f"/v1/scans/{scan['id']}"})


def _bounded_duration(text: str, field: str, limit_s: int) -> int:
    from rca.scan import parse_duration

    try:
        seconds = parse_duration(text, field=field)
    except OverflowError:
        seconds = limit_s + 1
    if seconds > limit_s:
        raise BadInput(f"{text!r} is longer than {limit_s / 3600:g} h", field=field,
                       fix=f"use at most {limit_s // 3600} h")
    return seconds


def _run_scan(state, now: int, window_s: int, baseline_s: int, min_level: float, selector: str | None) -> dict:
    """An ad-hoc scan: the scheduled scans' runner with a manual job that only detects."""
    from rca.scan_jobs import ScanJob, ScanRunner

    job = ScanJob(name="adhoc", trigger=None, window=f"{window_s}s", baseline=f"{baseline_s}s",
                  min_level=min_level, selector=selector, incidents=False)
    return ScanRunner(state.engine, state.store).run(job, now=now)


@router.get("/v1/scans", response_model=ScanPage, tags=["scans"], responses=PROBLEMS, summary="Scans, newest first")
async def list_scans(request: Request, key: ReadKey, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     cursor: Annotated[str | None, Query(max_length=64)] = None) -> dict:
    return await page(request.app.state.rca.store.list_scans, limit, cursor, scan_public)


@router.get("/v1/scans/jobs", response_model=list[ScanJobStatus], tags=["scans"], responses=PROBLEMS,
            summary="Scheduled scan jobs (RCA_SCAN_JOBS): trigger, next run, runs, skipped, errors, last scan")
async def scan_jobs(request: Request, key: ReadKey) -> list[dict]:
    sched = request.app.state.rca.extras.get("scheduler")
    return sched.status() if sched is not None else []


@router.get("/v1/scans/{scan_id}", response_model=ScanPublic, tags=["scans"], responses=PROBLEMS)
async def get_scan(request: Request, scan_id: str, key: ReadKey) -> dict:
    return scan_public(await run_in_threadpool(request.app.state.rca.store.get_scan, scan_id))
