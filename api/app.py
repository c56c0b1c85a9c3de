"""The app factory: ``create_app(engine, settings)``.

Routes (DESIGN §7) are thin — parse, call the engine through ``AnalysisService``, shape the
answer — and live in ``api/routes_*.py``. Errors are ``application/problem+json``
(``api.problems``); every response has ``X-Request-ID``; ``/metrics`` is this app's own
Prometheus registry. Every route but ``/healthz`` and ``/readyz`` (and the docs, unless
``docs_public`` is off) needs an API key. CORS is off unless ``cors_origins`` lists origins.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI

from api.auth import install_auth, require
from api.observability import ApiMetrics, install_observability
from api.problems import install_problem_handlers
from api.service import AnalysisService
from rca.engine import Engine
from rca.settings import Settings

__all__ = ["AppState", "create_app"]

log = logging.getLogger("rca.api")

_DESCRIPTION = """Ask why the fleet misbehaved, list and inspect incidents, give feedback.

Authenticate with `Authorization: Bearer <key>` (create one with `rca keys create --scope read`).
Scopes nest: `admin` ⊇ `write` ⊇ `read`. Errors are `application/problem+json` with the
offending `field` and a `fix`.
"""


@dataclass
class AppState:
    engine: Engine
    settings: Settings
    store: Any
    otlp_store: Any
    service: AnalysisService
    metrics: ApiMetrics
    auth: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


def create_app(engine: Engine, settings: Settings | None = None, *, auth: bool = True,
               otlp_store: Any | None = None) -> FastAPI:
    """The REST API over ``engine``. Its store holds incidents, feedback, scans and API keys
    (``engine.store``; one is opened from ``settings`` when the engine has none)."""
    from api.otlp import otlp_router
    from api.routes_bot import SLACK_ACTIONS_PATH
    from api.routes_bot import router as bot_router
    from api.routes_incidents import router as incidents_router
    from api.routes_learn import router as learn_router
    from api.routes_ops import router as ops_router
    from connectors.otlp_store import OtlpStore
    from rca.wiring import attach_reranker, build_store

    settings = settings or Settings()
    if engine.store is None:
        engine.store = build_store(settings)
    store = engine.store
    attach_reranker(engine.ranker, store, settings)
    metrics = ApiMetrics()
    service = AnalysisService(engine, settings, metrics)
    state = AppState(engine=engine, settings=settings, store=store,
                     otlp_store=otlp_store or OtlpStore(store.engine), service=service,
                     metrics=metrics, auth=auth)
    from rca.scan_jobs import load_scan_jobs

    scan_jobs = load_scan_jobs(settings.scan_jobs)  # a bad config fails at start, naming job and field

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        client, worker = _start_bot(state)  # first: a bad route config fails before anything runs
        retention = asyncio.create_task(_retention_loop(state))
        scheduler = _start_scans(state, scan_jobs)
        try:
            yield
        finally:
            retention.cancel()
            if scheduler is not None:
                await asyncio.to_thread(scheduler.shutdown, True)
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            client.close()
            service.close()

    docs = settings.docs_public
    app = FastAPI(title="rca", version=_version(), description=_DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.rca = state
    install_problem_handlers(app)
    public = ["/healthz", "/readyz", SLACK_ACTIONS_PATH] + (["/docs", "/docs/oauth2-redirect", "/openapi.json"] if docs else [])
    install_auth(app, public)  # inside the access log, so refusals are logged with their request id
    install_observability(app, metrics)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.include_router(ops_router)
    app.include_router(incidents_router)
    app.include_router(bot_router)
    app.include_router(learn_router)
    app.include_router(otlp_router(state.otlp_store, settings.otlp_max_body_bytes),
                       dependencies=[Depends(require("write"))])
    return app


def _start_bot(state: AppState) -> tuple[Any, Any]:
    """The notifiers' shared HTTP client and the alert worker (None when ``bot_worker`` is off);
    the worker replays what is still queued. ``extras["notifiers"]`` may be preset (tests).
    The notification router (``notify_routes``; a route naming an unconfigured notifier fails
    here, at start) and the dispatcher are shared with the scan scheduler."""
    import httpx

    from api.bot.delivery_log import SqlDeliveryLog
    from api.bot.notifiers import Dispatcher
    from api.bot.routing import Router, load_routes
    from api.bot.worker import BotWorker, build_notifiers

    settings = state.settings
    routes = load_routes(settings.notify_routes)
    client = httpx.Client(timeout=10.0, follow_redirects=False)
    try:
        notifiers = state.extras.get("notifiers") or build_notifiers(settings, client)
        router = Router(routes, {n.name: n for n in notifiers}, settings.notify_min_confidence).check()
    except BaseException:
        client.close()
        raise
    dispatcher = Dispatcher(list(notifiers), SqlDeliveryLog(state.store.engine), settings.notify_min_interval_s)
    state.extras.update(active_notifiers=notifiers, router=router, dispatcher=dispatcher)
    if not settings.bot_worker:
        return client, None
    worker = BotWorker(state.service, settings, notifiers, router=router, dispatcher=dispatcher)
    state.extras["bot_worker"] = worker
    worker.start()
    return client, worker


def _start_scans(state: AppState, jobs: list) -> Any:
    """The scan scheduler (None without jobs). Incidents a scan opens, updates or resolves go
    through the alert bot's router and dispatcher (labels: ``api.bot.routing.scan_labels``);
    a resolution goes only to notifiers that had a record for the incident."""
    if not jobs:
        return None
    import math

    from api.bot.notifiers import message_from_incident
    from api.bot.routing import dispatch_routed, scan_labels
    from api.bot.worker import public_base_url
    from api.scheduler import ScanScheduler
    from rca.clock import sources_now
    from rca.scan_jobs import ScanRunner

    settings = state.settings
    dispatcher, router = state.extras["dispatcher"], state.extras["router"]
    status_of = {"opened": "open", "updated": "updated", "resolved": "resolved"}

    def on_change(row: dict, incident: Any, change: str) -> None:
        if incident is None or change not in status_of:
            return
        top = incident.hypotheses[0] if incident.hypotheses else None
        detail = row.get("detail") or {}
        labels = scan_labels(detail.get("root") or (top.root if top else None),
                             detail.get("category") or (top.category if top else None))
        only = None
        if change == "resolved":
            only = {r.notifier for r in dispatcher.log.records(incident.id)}
            if not only:
                return
        msg = message_from_incident(incident, public_base_url(settings), row["fingerprint"], status_of[change])
        dispatch_routed(dispatcher, router, msg, labels, float(top.confidence) if top else math.nan, only=only)

    def clock() -> float:  # a simulated or replayed source lives in its own time
        return sources_now(state.engine.connectors)

    sched = ScanScheduler(ScanRunner(state.engine, state.store, clock=clock, on_change=on_change), jobs,
                          max_workers=settings.scan_workers, misfire_grace_s=settings.scan_misfire_grace_s)
    sched.start()
    state.extras["scheduler"] = sched
    return sched


async def _retention_loop(state: AppState) -> None:
    """Drop received spans and logs older than ``otlp_retention_s``: at start, then every
    hour (or a quarter of the retention, if shorter). A failure is logged, never fatal."""
    from starlette.concurrency import run_in_threadpool

    keep = state.settings.otlp_retention_s
    while True:
        try:
            gone = await run_in_threadpool(state.otlp_store.purge, keep)
            if gone["spans"] or gone["logs"]:
                log.info("retention: dropped %d spans and %d log records older than %d s",
                         gone["spans"], gone["logs"], keep)
        except Exception as e:  # noqa: BLE001 — housekeeping must not take the API down
            log.warning("retention purge failed: %s", e)
        await asyncio.sleep(min(3600, keep / 4))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rca")
    except Exception:
        return "0"
