"""Metrics from a Prometheus-compatible HTTP API: Prometheus, VictoriaMetrics, Thanos, Mimir
(API shapes: telemetry reference §5.1).

``fetch(window, selector)``:

1. **discovery** — ``/api/v1/series`` with ``match[]`` = the selector (else the configured
   ``selectors``, else :data:`DEFAULT_SELECTOR`, every series) over the window; series are
   grouped by stored metric name.
2. **one query per (selector, metric name) and chunk** of at most ``max_points_per_request``
   grid steps (Prometheus refuses range queries of more than 11,000 points per series), on a
   thread pool of ``max_concurrency``. Each grid point ``t`` gets the last sample stored in
   ``(t - step, t]``: the series *as stored* (counters cumulative, buckets with ``le``), and a
   missed scrape stays NaN instead of being filled by the 5-minute lookback of a bare selector.

   * ``mode="raw"`` (default): an instant query of the range selector
     ``{__name__="<name>", <selector's matchers>}[<chunk span>]`` returns the raw samples, which
     are binned onto the grid here. Fastest: the server only reads samples (measured on 2.42:
     6x less server time than the ``range`` query); transfers every sample, so a step much
     longer than the scrape interval moves more data than needed.
   * ``mode="range"``: ``query_range`` of ``last_over_time(<selector>[<step - 1 ms>])``, the
     same values computed by the server, one point per step.

   On loopback the answer is not gzip-compressed (``compress=None``; compressing costs the
   server more than the transfer saves); elsewhere it is.
3. **names and units** are normalised to what the engine uses (``vllm:…``): see
   :data:`RENAMED`, :data:`UNIT_RULES`, :data:`LABEL_RULES` and :data:`FRACTION_NAMES`.
4. the **inventory** is read from the labels (``connectors.inventory``).

Failures: connect errors, HTTP 5xx and 429 are retried (tenacity, exponential backoff, at most
``retries`` attempts); other 4xx are not. Everything that goes wrong ends as ``SourceError``
(``SourceTimeout`` for timeouts) naming the source and the cause: refused connections, HTTP
errors, ``{"status":"error"}`` bodies, garbage JSON, responses over ``max_response_bytes``.
An empty window is an empty frame. Secrets (token, password) never appear in messages.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
import tenacity

from connectors.inventory import inventory_from_labels
from rca.errors import SourceError, SourceTimeout
from rca.signals import counter_increase, histogram_quantile
from rca.types import Health, MetricFrame, SeriesKey, Snapshot, Window

__all__ = ["DEFAULT_SELECTOR", "FRACTION_NAMES", "LABEL_RULES", "RENAMED", "UNIT_RULES", "PrometheusConnector",
           "TraceExemplar", "canonical_name", "quantile_from_buckets", "spellings"]

DEFAULT_SELECTOR = '{__name__=~".+"}'

# Old vLLM / SGLang names -> the names the engine uses (telemetry §1.1.4, §1.2), without the
# histogram/counter suffix. Not mapped: vllm:gpu_prefix_cache_{queries,hits} counted *blocks*,
# their successors vllm:prefix_cache_{queries,hits} count *tokens*; merging them would mix units.
RENAMED: Mapping[str, str] = {
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds",
    "sglang:time_per_output_token_seconds": "sglang:inter_token_latency_seconds",
}
_SUFFIXES = ("", "_bucket", "_sum", "_count", "_total", "_created")
# ``vllm_…`` / ``sglang_…``: the colon escaped by OpenMetrics negotiation or remote-write paths (§1.1.5)
_ESCAPED_PREFIX = re.compile(r"^(vllm|sglang)_")


@dataclass(frozen=True)
class UnitRule:
    """A series stored in another unit: ``<canonical><stored_suffix>`` holds ``canonical``'s
    values in another unit; multiply by ``scale`` to get the engine's unit."""

    canonical: re.Pattern[str]
    stored_suffix: str
    scale: float
    note: str


UNIT_RULES: tuple[UnitRule, ...] = (
    # DCGM framebuffer fields are MiB (§2.2, §10.4); pipelines that convert to base units append _bytes
    UnitRule(re.compile(r"^DCGM_FI_DEV_FB_(USED|FREE|RESERVED|TOTAL)$"), "_bytes", 1 / 2 ** 20,
             "DCGM framebuffer in bytes -> MiB"),
)

# Series the engine reads as fractions 0-1 (§1.1.1, §1.2, §2.2). A row whose largest value
# exceeds 1 was exported as a percentage (recording rules, some exporters) and is divided by
# 100 with a warning. A percentage that never exceeds 1 % cannot be told apart: left alone.
FRACTION_NAMES = re.compile(r"^(vllm:kv_cache_usage_perc|sglang:token_usage|sglang:cache_hit_rate|"
                            r"DCGM_FI_PROF_\w+_ACTIVE)$")

# Labels renamed by exporter options: (metric-name prefix, old label, label the engine reads).
# dcgm-exporter --use-old-namespace writes pod_name/pod_namespace/container_name (§2.1).
LABEL_RULES: tuple[tuple[str, str, str], ...] = (
    ("DCGM_", "pod_name", "pod"), ("DCGM_", "pod_namespace", "namespace"),
    ("DCGM_", "container_name", "container"),
)


def canonical_name(stored: str) -> tuple[str, float]:
    """The engine's name for a stored metric name, and the scale to apply to its values."""
    name = _ESCAPED_PREFIX.sub(r"\1:", stored)
    for old, new in RENAMED.items():
        if name.startswith(old) and name[len(old):] in _SUFFIXES:
            name = new + name[len(old):]
            break
    scale = 1.0
    for rule in UNIT_RULES:
        head = name[: -len(rule.stored_suffix)]
        if name.endswith(rule.stored_suffix) and rule.canonical.match(head):
            name, scale = head, scale * rule.scale
    return name, scale


def spellings(name: str) -> list[str]:
    """Every stored name that :func:`canonical_name` maps to ``name`` (known spellings)."""
    canon = canonical_name(name)[0]
    bases = [canon]
    for old, new in RENAMED.items():
        if canon.startswith(new) and canon[len(new):] in _SUFFIXES:
            bases.append(old + canon[len(new):])
    out = []
    for b in bases:
        out.append(b)
        m = re.match(r"^(vllm|sglang):(.+)$", b)
        if m:
            out.append(f"{m[1]}_{m[2]}")
    out.extend(canon + r.stored_suffix for r in UNIT_RULES if r.canonical.match(canon))
    return sorted({s for s in out if canonical_name(s)[0] == canon})


@dataclass(frozen=True)
class TraceExemplar:
    """An exemplar from ``/api/v1/query_exemplars``: the ``series`` (canonical name), its
    ``trace_id`` (None when the exemplar has none), observed ``value`` and ``ts`` (unix s)."""

    series: SeriesKey
    trace_id: str | None
    value: float
    ts: float
    labels: Mapping[str, str] = field(default_factory=dict)


class _Transient(Exception):
    """A failure worth retrying; carries the ``SourceError`` to raise when retries run out."""

    def __init__(self, error: SourceError) -> None:
        super().__init__(str(error))
        self.error = error


_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)


class PrometheusConnector:
    """A ``Connector`` over the Prometheus HTTP API (see the module docstring).

    ``flavor`` ``"victoriametrics"`` adds ``nocache=1`` to range queries (VictoriaMetrics caches
    results, which hides backfilled data). ``step`` overrides the window's step. ``tenant`` is sent as
    ``X-Scope-OrgID`` (Mimir, Cortex, VictoriaMetrics via vmauth); ``bearer_token`` or
    ``basic_auth=(user, password)`` authenticate; ``verify`` is the TLS check (False or a CA path).
    """

    series_selector = True  # fetch(window, selector) takes a Prometheus-style {label="value"} selector

    SLOW_CHECK_S = 2.0

    def __init__(self, url: str, *, client: httpx.Client | None = None, name: str = "prometheus",
                 flavor: Literal["prometheus", "victoriametrics"] = "prometheus",
                 selectors: Sequence[str] | None = None, tenant: str | None = None,
                 bearer_token: str | None = None, basic_auth: tuple[str, str] | None = None,
                 verify: bool | str = True, timeout_s: float = 10.0, retries: int = 3,
                 max_concurrency: int = 4, max_points_per_request: int = 11000, step: int | None = None,
                 max_response_bytes: int = 256 * 2 ** 20, max_series: int = 100_000,
                 backoff_s: float = 0.2, mode: Literal["raw", "range"] = "raw",
                 compress: bool | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.name = name
        self.flavor = flavor
        self.selectors = list(selectors) if selectors else None
        self.tenant = tenant
        self.bearer_token = bearer_token
        self.basic_auth = basic_auth
        self.verify = verify
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_concurrency = max_concurrency
        self.max_points_per_request = max_points_per_request
        self.step = step
        self.max_response_bytes = max_response_bytes
        self.max_series = max_series
        self.backoff_s = backoff_s
        self.mode = mode
        self.compress = compress
        self._own: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # no secrets
        return f"PrometheusConnector({self.url!r}, name={self.name!r}, flavor={self.flavor!r})"

    # -- HTTP -------------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        with self._lock:
            if self._own is None:
                self._own = httpx.Client(verify=self.verify, timeout=self.timeout_s)
            return self._own

    def close(self) -> None:
        """Close the HTTP client this connector created (an injected one is left open)."""
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> PrometheusConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        compress = self.compress if self.compress is not None else not _loopback(self.url)
        h["Accept-Encoding"] = "gzip" if compress else "identity"
        if self.tenant:
            h["X-Scope-OrgID"] = self.tenant
        if self.bearer_token:
            h["Authorization"] = f"Bearer {self.bearer_token}"
        return h

    def _once(self, method: str, path: str, params: Any, data: Any) -> tuple[int, bytes]:
        where = f"{method} {path}"
        try:
            with self._http().stream(method, self.url + path, params=params, data=data, headers=self._headers(),
                                     auth=httpx.BasicAuth(*self.basic_auth) if self.basic_auth else None,
                                     timeout=self.timeout_s) as r:
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise SourceError(self.name, self._too_big(where))
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise SourceError(self.name, self._too_big(where))
                    chunks.append(chunk)
                status = r.status_code
        except httpx.ConnectTimeout as exc:
            raise _Transient(SourceTimeout(self.name, f"{where}: connect timeout after {self.timeout_s} s")) from exc
        except httpx.TimeoutException as exc:
            raise SourceTimeout(self.name, f"{where}: no answer within {self.timeout_s} s "
                                           f"({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            raise _Transient(SourceError(self.name, f"{where}: cannot connect to {self.url} ({exc})")) from exc
        except httpx.HTTPError as exc:
            raise _Transient(SourceError(self.name, f"{where}: {type(exc).__name__}: {exc}")) from exc
        body = b"".join(chunks)
        if status == 429 or status >= 500:
            raise _Transient(SourceError(self.name, f"{where}: HTTP {status}{self._api_error(body)}"))
        return status, body

    def _too_big(self, where: str) -> str:
        return (f"{where}: response larger than {self.max_response_bytes / 2 ** 20:.0f} MiB; narrow the "
                "selector, shorten the window or raise max_response_bytes")

    @staticmethod
    def _api_error(body: bytes) -> str:
        try:
            doc = json.loads(body)
            return f" {doc.get('errorType', '')}: {doc.get('error', '')}" if isinstance(doc, dict) else ""
        except ValueError:
            return f" {body[:200].decode(errors='replace')!r}" if body else ""

    def _raw(self, method: str, path: str, params: Any = None, data: Any = None,
             attempts: int | None = None) -> tuple[int, bytes]:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, attempts or self.retries)),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=5.0),
            retry=tenacity.retry_if_exception_type(_Transient), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, path, params, data)
        except _Transient as exc:
            raise exc.error from None
        raise SourceError(self.name, f"{method} {path}: no attempt made")  # pragma: no cover

    def _api(self, method: str, path: str, params: Any = None, data: Any = None,
             attempts: int | None = None) -> tuple[Any, list[str]]:
        """``data`` and ``warnings`` of a Prometheus API answer; anything else is a SourceError."""
        status, body = self._raw(method, path, params, data, attempts)
        return self._decode(status, body, f"{method} {path}")

    def _decode(self, status: int, body: bytes, where: str) -> tuple[Any, list[str]]:
        try:
            doc = json.loads(body)
        except ValueError:
            raise SourceError(self.name, f"{where}: HTTP {status}, not JSON: "
                                         f"{body[:120].decode(errors='replace')!r}") from None
        if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
            raise SourceError(self.name, f"{where}: HTTP {status}, not a Prometheus API answer")
        if doc["status"] == "error":
            raise SourceError(self.name, f"{where}: {doc.get('errorType', 'error')}: {doc.get('error', '')} "
                                         f"(HTTP {status})")
        if status >= 400:
            raise SourceError(self.name, f"{where}: HTTP {status}")
        warnings = doc.get("warnings") or []
        return doc.get("data"), [f"{self.name}: {w}" for w in warnings if isinstance(w, str)]

    # -- discovery ----------------------------------------------------------------------------
    def series(self, window: Window, selector: str | None = None) -> list[dict[str, str]]:
        """Label sets (with ``__name__``) of the series ``selector`` matches in ``window``."""
        data, _ = self._api("POST", "/api/v1/series", data={"match[]": [selector or DEFAULT_SELECTOR],
                                                             "start": window.start, "end": window.end})
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise SourceError(self.name, "/api/v1/series: data is not a list of label sets")
        return data

    def label_values(self, label: str, window: Window | None = None, selector: str | None = None) -> list[str]:
        """Values of ``label`` (``/api/v1/label/<label>/values``), optionally within a window/selector."""
        params: dict[str, Any] = {}
        if window is not None:
            params.update(start=window.start, end=window.end)
        if selector:
            params["match[]"] = [selector]
        data, _ = self._api("GET", f"/api/v1/label/{label}/values", params=params)
        if not isinstance(data, list):
            raise SourceError(self.name, f"/api/v1/label/{label}/values: data is not a list")
        return [str(v) for v in data]

    # -- range queries ------------------------------------------------------------------------
    def _chunks(self, grid: np.ndarray) -> list[tuple[int, int]]:
        m = max(1, int(self.max_points_per_request))
        return [(a, min(a + m, len(grid))) for a in range(0, len(grid), m)]

    def _matrix(self, path: str, form: dict[str, Any], grid: np.ndarray, step: int, lo: int, hi: int,
                raw: bool) -> tuple[list[tuple[dict[str, str], np.ndarray]], list[str]]:
        """A matrix answer placed on ``grid[lo:hi]``: ``[(labels, values)]``. ``raw``: samples
        of a range selector, each grid point taking the last one in ``(t - step, t]``; else
        query_range points, one per grid point."""
        if self.flavor == "victoriametrics":
            form = {**form, "nocache": 1}
        status, body = self._raw("POST", path, None, form)
        parsed = _fast_matrix(body) if status == 200 else None
        warnings: list[str] = []
        if parsed is None:
            data, warnings = self._decode(status, body, f"POST {path}")
            parsed = _slow_matrix(data, path, self.name)
        out = []
        g0_ms, step_ms = int(grid[lo]) * 1000, step * 1000
        for labels, ts, vals in parsed:
            row = np.full(hi - lo, np.nan)
            if len(ts):
                off = np.rint(ts * 1000).astype(np.int64) - g0_ms
                idx = -((-off) // step_ms) if raw else np.rint(off / step_ms).astype(np.int64)
                ok = (idx >= 0) & (idx < hi - lo)
                idx, v = idx[ok], vals[ok]
                _, last = np.unique(idx[::-1], return_index=True)  # the latest sample per point
                keep = len(idx) - 1 - last
                row[idx[keep]] = v[keep]
            out.append((labels, row))
        return out, warnings

    def _range(self, query: str, grid: np.ndarray, step: int, lo: int, hi: int
               ) -> tuple[list[tuple[dict[str, str], np.ndarray]], list[str]]:
        form = {"query": query, "start": int(grid[lo]), "end": int(grid[hi - 1]), "step": step}
        return self._matrix("/api/v1/query_range", form, grid, step, lo, hi, raw=False)

    def _raw_samples(self, selector: str, grid: np.ndarray, step: int, lo: int, hi: int
                     ) -> tuple[list[tuple[dict[str, str], np.ndarray]], list[str]]:
        """The samples stored in ``(grid[lo] - step, grid[hi-1]]``: an instant query of a range
        selector (no lookback filling, no per-step evaluation)."""
        span_ms = (int(grid[hi - 1]) - int(grid[lo]) + step) * 1000 - 1
        form = {"query": f"{selector}[{span_ms}ms]", "time": int(grid[hi - 1])}
        return self._matrix("/api/v1/query", form, grid, step, lo, hi, raw=True)

    def query_range(self, query: str, window: Window, name: str | None = None) -> MetricFrame:
        """Any PromQL expression on ``window``'s grid (chunked, merged). Series are named
        ``name``, else their ``__name__``, else ``"value"``."""
        step = self.step or window.step
        grid = window.timestamps() if step == window.step else np.arange(window.start, window.end + 1, step)
        tasks = [(query, lo, hi) for lo, hi in self._chunks(grid)]
        results = self._run(lambda t: self._range(t[0], grid, step, t[1], t[2]), tasks)
        rows: dict[SeriesKey, np.ndarray] = {}
        for (_, lo, hi), (part, _w) in zip(tasks, results, strict=True):
            for labels, vals in part:
                n = name or labels.pop("__name__", None) or "value"
                labels.pop("__name__", None)
                row = rows.setdefault(SeriesKey.of(n, labels), np.full(len(grid), np.nan))
                row[lo:hi] = np.where(np.isnan(row[lo:hi]), vals, row[lo:hi])
        keys = sorted(rows)
        return MetricFrame(tuple(keys), grid, np.vstack([rows[k] for k in keys]) if keys
                           else np.empty((0, len(grid))))

    def _run(self, fn, tasks: Sequence[Any]) -> list[Any]:
        if len(tasks) <= 1 or self.max_concurrency <= 1:
            return [fn(t) for t in tasks]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(tasks))) as pool:
            return list(pool.map(fn, tasks))

    # -- fetch --------------------------------------------------------------------------------
    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        step = self.step or window.step
        grid = np.arange(window.start, window.end + 1, step, dtype=np.int64)
        selectors = [selector] if selector else list(self.selectors or [DEFAULT_SELECTOR])
        found = self._run(lambda s: self.series(window, _expand(s)), selectors)
        if sum(len(f) for f in found) > self.max_series:
            raise SourceError(self.name, f"{sum(len(f) for f in found)} series match {selectors} in the window "
                                         f"(limit {self.max_series}); narrow the selector")
        tasks = []
        for sel, labelsets in zip(selectors, found, strict=True):
            m = _SELECTOR.match(_expand(sel))
            inner = m.group(2).strip().rstrip(",") if m and m.group(2) else ""
            wanted = None if m else {_frozen(ls) for ls in labelsets}
            for stored in sorted({ls.get("__name__", "") for ls in labelsets} - {""}):
                q = "{" + ",".join(filter(None, [f'__name__="{stored}"', inner])) + "}"
                tasks.extend((stored, q, wanted, lo, hi) for lo, hi in self._chunks(grid))
        results = self._run(lambda t: self._fetch_part(t[1], grid, step, t[3], t[4]), tasks)
        rows: dict[SeriesKey, np.ndarray] = {}
        warnings: list[str] = []
        for (stored, _, wanted, lo, hi), (part, warn) in zip(tasks, results, strict=True):
            warnings.extend(warn)
            name, scale = canonical_name(stored)
            for labels, vals in part:
                labels["__name__"] = stored
                if wanted is not None and _frozen(labels) not in wanted:
                    continue
                del labels["__name__"]
                key = SeriesKey.of(name, _norm_labels(name, labels))
                row = rows.setdefault(key, np.full(len(grid), np.nan))
                seg = row[lo:hi]
                row[lo:hi] = np.where(np.isnan(seg), vals * scale, seg)
        keys = sorted(rows)
        values = np.vstack([rows[k] for k in keys]) if keys else np.empty((0, len(grid)))
        warnings.extend(_fractions(keys, values, self.name))
        frame = MetricFrame(tuple(keys), grid, values)
        return Snapshot(window=window, metrics=frame, inventory=inventory_from_labels(frame),
                        warnings=tuple(dict.fromkeys(warnings)))

    def _fetch_part(self, selector: str, grid: np.ndarray, step: int, lo: int, hi: int
                    ) -> tuple[list[tuple[dict[str, str], np.ndarray]], list[str]]:
        if self.mode == "raw":
            return self._raw_samples(selector, grid, step, lo, hi)
        return self._range(f"last_over_time({selector}[{step * 1000 - 1}ms])", grid, step, lo, hi)

    # -- pushdown -----------------------------------------------------------------------------
    def query_rate(self, metric: str, window: Window, by: Sequence[str] = ("service",),
                   rate_window_s: int = 60) -> MetricFrame:
        """``sum by (<by>) (rate(<metric>[w]))`` computed by the server (any spelling of the name)."""
        q = f"sum by ({', '.join(by)}) (rate({_name_matcher(metric)}[{rate_window_s}s]))"
        return self.query_range(q, window, name=canonical_name(metric)[0])

    def query_quantile(self, metric: str, q: float, window: Window, by: Sequence[str] = ("service",),
                       rate_window_s: int = 60, pushdown: bool = True) -> MetricFrame:
        """The ``q`` quantile of histogram ``metric`` (base name, without ``_bucket``) per ``by``
        group: ``histogram_quantile(q, sum by (le, <by>) (rate(<metric>_bucket[w])))`` on the
        server, or (``pushdown=False``) from the raw buckets with :func:`quantile_from_buckets`.
        Series are named ``metric`` with a ``quantile`` label."""
        base = canonical_name(metric)[0]
        if not pushdown:
            raw = self.fetch(window, selector=_name_matcher(base + "_bucket"))
            return quantile_from_buckets(raw.metrics, base, q, by, rate_window_s)
        by_txt = ", ".join(["le", *by])
        expr = (f"histogram_quantile({q!r}, sum by ({by_txt}) "
                f"(rate({_name_matcher(base + '_bucket')}[{rate_window_s}s])))")
        f = self.query_range(expr, window, name=base)
        return MetricFrame(tuple(k.with_name(base, quantile=repr(q)) for k in f.keys), f.timestamps, f.values)

    # -- exemplars ----------------------------------------------------------------------------
    def exemplars(self, window: Window, selector: str | None = None) -> list[TraceExemplar]:
        """Exemplars (trace-id evidence) of the series ``selector`` names (default: every
        histogram bucket and counter) from ``/api/v1/query_exemplars``. A source without
        exemplar storage answers an empty list."""
        query = _expand(selector) if selector else '{__name__=~".+_bucket|.+_total"}'
        data, _ = self._api("POST", "/api/v1/query_exemplars",
                            data={"query": query, "start": window.start, "end": window.end})
        out: list[TraceExemplar] = []
        try:
            for group in data or []:
                labels = {str(k): str(v) for k, v in group["seriesLabels"].items()}
                name, scale = canonical_name(labels.pop("__name__", "value"))
                key = SeriesKey.of(name, _norm_labels(name, labels))
                for ex in group.get("exemplars") or []:
                    exl = {str(k): str(v) for k, v in (ex.get("labels") or {}).items()}
                    tid = exl.get("trace_id") or exl.get("traceID") or exl.get("trace-id")
                    out.append(TraceExemplar(key, tid, float(ex["value"]), float(ex["timestamp"]), exl))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(self.name, f"query_exemplars: malformed result ({exc})") from None
        return sorted(out, key=lambda e: (e.ts, str(e.series)))

    # -- health -------------------------------------------------------------------------------
    def check(self) -> Health:
        """``ok`` when ready and answering the API, ``degraded`` when not ready, slow or the
        API errs, ``down`` when unreachable. One attempt, no retries."""
        t0 = time.perf_counter()
        try:
            status, body = self._raw("GET", "/-/ready", attempts=1)
        except SourceError as exc:
            return Health(self.name, "down", str(exc), time.perf_counter() - t0)
        ready_note = "" if status in (200, 404) else f"not ready (HTTP {status}); "
        try:
            info, _ = self._api("GET", "/api/v1/status/buildinfo", attempts=1)
            version = (info or {}).get("version") if isinstance(info, dict) else None
            detail = f"{self.flavor} {version or '(version not reported)'} at {self.url}"
            api_ok = True
        except SourceError as exc:
            try:
                self._api("GET", "/api/v1/query", params={"query": "vector(1)"}, attempts=1)
                detail, api_ok = f"{self.flavor} at {self.url} (no buildinfo: {exc})", True
            except SourceError as exc2:
                detail, api_ok = str(exc2), False
        latency = time.perf_counter() - t0
        if not api_ok and status == 404:
            return Health(self.name, "down", detail, latency)
        slow = latency > self.SLOW_CHECK_S
        state = "ok" if api_ok and not ready_note and not slow else "degraded"
        return Health(self.name, state, ready_note + detail + (f"; slow ({latency:.1f} s)" if slow else ""),
                      latency)


_MATRIX_HEAD = b'{"status":"success","data":{"resultType":"matrix","result":['
_DECODER = json.JSONDecoder()
Matrix = list[tuple[dict[str, str], np.ndarray, np.ndarray]]


def _fast_matrix(body: bytes) -> Matrix | None:
    """A matrix answer without building a Python object per sample: labels by ``json``,
    ``values`` by ``numpy``. ``None`` when the body is not laid out exactly as Prometheus and
    VictoriaMetrics write it (the caller then decodes it the slow, general way)."""
    if not body.startswith(_MATRIX_HEAD):
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    pos, out = len(_MATRIX_HEAD), []
    while text.startswith('{"metric":', pos):
        try:
            metric, pos = _DECODER.raw_decode(text, pos + 10)
        except ValueError:
            return None
        if not isinstance(metric, dict) or not text.startswith(',"values":[', pos):
            return None
        pos += 11
        if text.startswith("]}", pos):
            ts = vals = np.empty(0)
            pos += 2
        else:
            end = text.find("]]}", pos)
            if end < 0:
                return None
            seg = text[pos:end + 1]
            flat = seg.replace('"', "").replace("[", "").replace("]", "")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # numpy warns (or raises) on unparsable text
                    arr = np.fromstring(flat, sep=",") if flat else np.empty(0)
            except (ValueError, DeprecationWarning):
                return None
            if len(arr) != flat.count(",") + 1 or len(arr) % 2:
                return None
            ts, vals = arr[0::2], arr[1::2]
            pos = end + 3
        out.append(({str(k): str(v) for k, v in metric.items()}, ts, vals))
        if text.startswith(",", pos):
            pos += 1
    return out if text[pos:] == "]}}" else None


def _slow_matrix(data: Any, path: str, source: str) -> Matrix:
    try:
        if data["resultType"] != "matrix":
            raise ValueError(f"resultType {data['resultType']!r}")
        out = []
        for item in data["result"]:
            pairs = item["values"]
            ts = np.fromiter((float(p[0]) for p in pairs), float, len(pairs))
            vals = np.fromiter((float(p[1]) for p in pairs), float, len(pairs))
            out.append(({str(k): str(v) for k, v in item["metric"].items()}, ts, vals))
        return out
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SourceError(source, f"{path}: malformed result ({exc})") from None


def _loopback(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("localhost", "::1") or host.startswith("127.")


def _frozen(labels: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _name_matcher(name: str) -> str:
    names = spellings(name)
    if len(names) == 1:
        return f'{{__name__="{names[0]}"}}'
    return f'{{__name__=~"{"|".join(names)}"}}'


def _expand(selector: str) -> str:
    """A selector whose bare metric name also matches that name's other spellings."""
    m = _SELECTOR.match(selector)
    if not m or not m.group(1):
        return selector
    names = spellings(m.group(1))
    inner = (m.group(2) or "").strip().rstrip(",")
    head = f'__name__="{names[0]}"' if len(names) == 1 else f'__name__=~"{"|".join(names)}"'
    return "{" + ",".join(filter(None, [head, inner])) + "}"


def _norm_labels(name: str, labels: dict[str, str]) -> dict[str, str]:
    for prefix, old, new in LABEL_RULES:
        if name.startswith(prefix) and old in labels and new not in labels:
            labels[new] = labels.pop(old)
    return {k: v for k, v in labels.items() if v != ""}


def _fractions(keys: Sequence[SeriesKey], values: np.ndarray, source: str) -> list[str]:
    out = []
    for i, k in enumerate(keys):
        if FRACTION_NAMES.match(k.name):
            row = values[i]
            finite = row[np.isfinite(row)]
            if len(finite) and finite.max() > 1.0 + 1e-9:
                values[i] = row / 100.0
                out.append(f"{source}: {k} looked like a percentage (max {finite.max():.3g} > 1): divided by 100")
    return out


def quantile_from_buckets(frame: MetricFrame, metric: str, q: float, by: Iterable[str] = ("service",),
                          rate_window_s: int = 60) -> MetricFrame:
    """Client-side ``histogram_quantile(q, sum by (le, <by>) (rate(<metric>_bucket[w])))`` on a
    raw frame (the fallback when the server cannot compute it). Same semantics as
    ``rca.signals.histogram_quantile``; NaN until ``w`` of history is in the frame."""
    by = tuple(by)
    ts = frame.timestamps
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else rate_window_s
    w = max(1, round(rate_window_s / max(step, 1)))
    rows = [i for i, k in enumerate(frame.keys) if k.name == metric + "_bucket" and k.label("le") is not None]
    if not rows:
        return MetricFrame.empty(ts)
    inc = counter_increase(frame.values[rows], w)
    groups: dict[tuple[tuple[str, str], ...], dict[float, np.ndarray]] = {}
    for j, i in enumerate(rows):
        k = frame.keys[i]
        g = tuple((b, k.label(b)) for b in by if k.label(b) is not None)
        le = k.label("le") or "+Inf"
        bound = float("inf") if le in ("+Inf", "Inf", "inf") else float(le)
        acc = groups.setdefault(g, {})
        acc[bound] = acc[bound] + inc[j] if bound in acc else inc[j].copy()
    keys, out = [], []
    for g in sorted(groups):
        bounds = np.array(sorted(groups[g]))
        counts = np.vstack([groups[g][b] for b in bounds])
        keys.append(SeriesKey.of(metric, dict(g), quantile=repr(q)))
        out.append(histogram_quantile(q, bounds, counts))
    return MetricFrame(tuple(keys), ts, np.vstack(out))
