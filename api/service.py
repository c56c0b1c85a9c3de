"""What the routes call: analyses on a bounded worker pool, with a short-lived cache.

* Analyses run on ``analysis_workers`` threads; the rest wait in a queue whose depth is a
  metric. The event loop never runs an analysis.
* Identical analyses (same windows, signal, statistic, metric, scope) asked within
  ``ask_cache_ttl_s`` reuse one result; concurrent identical requests wait for the one in
  flight instead of each starting their own (single flight). A different wording of the same
  question gets its own incident id and its own text, sharing the ranking.
* The entity catalogue (for resolving "the checkout service") comes from one short fetch of
  the sources, refreshed every ``catalog_ttl_s``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.observability import ApiMetrics
from api.problems import ApiProblem
from rca.clock import sources_now
from rca.engine import AnalysisRequest, Engine
from rca.entities import catalog_of
from rca.errors import BadInput, RcaError
from rca.settings import Settings
from rca.types import Incident, Window

__all__ = ["AnalysisService", "require_window"]

_CACHE_MAX = 256
_CATALOG_WINDOW_S = 1800


class AnalysisService:
    def __init__(self, engine: Engine, settings: Settings, metrics: ApiMetrics) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self._pool: ThreadPoolExecutor | None = None  # made on first use, again after close()
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, tuple[float, Incident]] = OrderedDict()
        self._inflight: dict[str, Future] = {}
        self._catalog: tuple[float, list[str]] | None = None
        self._matcher: tuple[tuple[str, ...], Any] | None = None
        self._queued = 0

    # ---- time and catalogue ------------------------------------------------------------------

    def now(self) -> int:
        return sources_now(self.engine.connectors)

    def catalog(self, at: int | None = None) -> list[str]:
        """Entities known to the sources around ``at`` (default: now), cached."""
        t = time.monotonic()
        with self._lock:
            if self._catalog and t - self._catalog[0] < self.settings.catalog_ttl_s:
                return self._catalog[1]
        end = at or self.now()
        snap = self.engine.fetch(Window(end - _CATALOG_WINDOW_S, end, 60))
        cat = catalog_of(snap)
        with self._lock:
            self._catalog = (t, cat)
        return cat

    def matcher(self, catalog: list[str]):
        """One scope matcher per catalogue (it caches the entities' embeddings)."""
        from rca.ask_scope import ScopeMatcher

        key = tuple(catalog)
        with self._lock:
            m = self._matcher
            if m is None or m[0] != key:
                m = self._matcher = (key, ScopeMatcher(catalog))
        return m[1]

    # ---- analyses ----------------------------------------------------------------------------

    def submit(self, fn, *args: Any) -> Future:
        """Run ``fn`` on the analysis pool, counting it in the queue until it starts."""
        with self._lock:
            self._queued += 1
            self.metrics.queue_depth.set(self._queued)

        def run() -> Any:
            with self._lock:
                self._queued -= 1
                self.metrics.queue_depth.set(self._queued)
            self.metrics.running.inc()
            t0 = time.perf_counter()
            try:
                return fn(*args)
            except RcaError as e:
                self.metrics.analysis_errors.labels(type(e).__name__).inc()
                raise
            except Exception:
                self.metrics.analysis_errors.labels("bug").inc()
                raise
            finally:
                self.metrics.running.dec()
                self.metrics.analysis.observe(time.perf_counter() - t0)

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.settings.analysis_workers,
                                                thread_name_prefix="rca-analysis")
            return self._pool.submit(run)

    async def run(self, fn, *args: Any) -> Any:
        """``fn(*args)`` on the pool, awaited with the analysis timeout."""
        return await self._await(self.submit(fn, *args))

    async def _await(self, fut: Future) -> Any:
        try:
            # shield: one waiter giving up must not cancel an analysis others share (single flight)
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.settings.analysis_timeout_s)
        except TimeoutError:
            raise ApiProblem(503, "Analysis timed out", f"the analysis took longer than "
                             f"{self.settings.analysis_timeout_s:g} s", kind="analysis-timeout",
                             fix="narrow the window or the scope, or raise RCA_ANALYSIS_TIMEOUT_S",
                             headers={"Retry-After": "10"}) from None

    @staticmethod
    def _key(req: AnalysisRequest, base: Window, inc: Window) -> str:
        return repr((base, inc, req.signal, req.statistic, req.metric, req.selector, req.tz, tuple(req.scope),
                     sorted(req.params.items())))

    async def analyze(self, req: AnalysisRequest) -> Incident:
        base, inc = self.engine.windows(req, 15)
        key = self._key(req, base, inc)
        ttl = self.settings.ask_cache_ttl_s
        with self._lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < ttl:
                self._cache.move_to_end(key)
                self.metrics.cache.labels("hit").inc()
                cached = hit[1]
                fut = None
            else:
                cached = None
                fut = self._inflight.get(key)
                self.metrics.cache.labels("shared" if fut else "miss").inc()
                if fut is None:
                    fut = self.submit(self.engine.analyze, req)
                    self._inflight[key] = fut
                    fut.add_done_callback(lambda f, k=key: self._done(k, f))
        if cached is None:
            cached = await self._await(fut)
        if cached.question == req.question:
            return cached
        return await run_in_threadpool(self._reword, cached, req.question)  # not behind analyses

    def _done(self, key: str, fut: Future) -> None:
        with self._lock:
            self._inflight.pop(key, None)
            if not fut.cancelled() and fut.exception() is None and self.settings.ask_cache_ttl_s > 0:
                self._cache[key] = (time.monotonic(), fut.result())
                while len(self._cache) > _CACHE_MAX:
                    self._cache.popitem(last=False)

    def _reword(self, incident: Incident, question: str | None) -> Incident:
        """The same analysis under another question: its own id and text, stored."""
        digest = hashlib.sha1(f"{incident.id}\0{question}".encode()).hexdigest()[:12]
        copy = dataclasses.replace(incident, id=f"inc-{digest}", question=question, created_at=int(time.time()))
        if self.engine.store is not None:
            self.engine.store.save_incident(copy)
        return copy

    def close(self) -> None:
        """Stop the workers (queued analyses are cancelled); a later request starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def require_window(start: int | None, end: int | None) -> Window | None:
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise BadInput("give both start and end", field="end" if start is not None else "start",
                       fix="send both times, or `at` alone")
    if end <= start:
        raise BadInput("end is not after start", field="end", fix="swap them or widen the window")
    return Window(start, end, 15)  # its length is the engine's to judge (max_window_s)
