"""Request ids, structured access logs and the API's own Prometheus metrics.

* Every response carries ``X-Request-ID``: the caller's when it sent a sane one (1–64 chars of
  ``[A-Za-z0-9._-]``), else a new one. Problem bodies repeat it.
* One JSON access-log line per request on the ``rca.access`` logger: time, request id, method,
  route template, path (never the query string), status, duration, client, and the *public id*
  of the API key — never the key.
* ``ApiMetrics`` owns a private ``CollectorRegistry`` (no global state: two apps in one process
  do not share counters): request counts and latencies by route, analysis durations, the
  analysis queue depth, cache hits.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ApiMetrics", "install_observability"]

access_log = logging.getLogger("rca.access")
_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ApiMetrics:
    """The API's metrics, registered on ``registry`` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("rca_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("rca_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.analysis = Histogram("rca_analysis_duration_seconds", "time of one Engine.analyze",
                                  buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("rca_analysis_queue_depth", "analyses waiting for a worker", registry=r)
        self.running = Gauge("rca_analysis_running", "analyses running now", registry=r)
        self.cache = Counter("rca_analysis_cache_total", "analysis cache lookups", ["result"], registry=r)
        self.analysis_errors = Counter("rca_analysis_failures_total", "analyses that raised", ["kind"],
                                       registry=r)


def _route_of(request: Request) -> str:
    """The route template; ``unmatched`` for a request refused before routing (bad key) or
    routed nowhere (404), so metric labels stay few."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def install_observability(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")
        rid = rid if _RID.fullmatch(rid) else uuid.uuid4().hex
        request.state.request_id = rid
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            dt = time.perf_counter() - t0
            route = _route_of(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(dt)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "request_id": rid, "method": request.method, "route": route,
                "path": request.url.path,
                "status": status, "duration_ms": round(dt * 1000, 1),
                "client": request.client.host if request.client else None,
                "key_id": getattr(request.state, "key_id", None)}, separators=(",", ":")))
