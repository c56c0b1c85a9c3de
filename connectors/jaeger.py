"""Jaeger as a trace source (the ``jaeger-query`` HTTP JSON API the Jaeger UI uses:
``GET /api/services``, ``GET /api/traces?service=&start=&end=&limit=`` with times in **µs**).

Answers are ``{"data": …, "total", "limit", "offset", "errors": null | [{"code", "msg"}]}``.
An error answer (any HTTP status, or 200 with ``errors`` and no data) raises ``SourceError``
with the ``msg`` texts; errors next to data become warnings.

Span mapping: ``traceID`` / ``spanID`` lowercase hex (64-bit trace ids padded to 32 chars);
``startTime`` / ``duration`` µs -> ns; the first ``CHILD_OF`` reference (else ``FOLLOWS_FROM``,
else the legacy ``parentSpanID`` field) is the parent; ``tags`` -> attributes by their ``type``
(``bool``, ``int64``, ``float64``, ``string``, ``binary``); ``span.kind`` -> kind;
``error=true`` or ``otel.status_code=ERROR`` -> status ``error`` (``otel.status_code=OK`` ->
``ok``), ``otel.status_description`` -> status message (those four tags are not repeated in the
attributes); the process's ``serviceName`` -> service, its tags + ``service.name`` -> resource.

``fetch`` with ``selector`` = a service name (or ``service=<name>``) reads that service; without
one it reads every service from ``/api/services`` (``concurrency`` at a time, ``limit`` traces
each) and drops spans seen twice (a trace crossing services comes back once per service).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.http import HttpSource, map_bounded
from rca.errors import SourceError
from rca.types import Health, MetricFrame, Snapshot, Span, Window

__all__ = ["JaegerConnector", "spans_of_jaeger_trace"]

_KINDS = {"server", "client", "producer", "consumer", "internal"}
_CONSUMED = ("span.kind", "error", "otel.status_code", "otel.status_description")


def _tag_value(tag: Mapping[str, Any]) -> Any:
    typ = str(tag.get("type", "string")).lower()
    v = tag.get("value")
    if typ == "bool":
        return v if isinstance(v, bool) else str(v).lower() == "true"
    if typ == "int64":
        return int(v)
    if typ == "float64":
        return float(v)
    return v


def _tags(tags: Any) -> dict[str, Any]:
    return {str(t["key"]): _tag_value(t) for t in tags or ()}


def _hex_id(v: Any, n: int, what: str) -> str:
    s = str(v or "").lower()
    if not s or len(s) > n or any(c not in "0123456789abcdef" for c in s):
        raise ValueError(f"{what} {v!r} is not hex of at most {n} characters")
    return s.zfill(n)


def _parent(sp: Mapping[str, Any]) -> str | None:
    refs = sp.get("references") or ()
    for ref_type in ("CHILD_OF", "FOLLOWS_FROM"):
        for r in refs:
            if str(r.get("refType", "")).upper() == ref_type and r.get("spanID"):
                return _hex_id(r["spanID"], 16, "references.spanID")
    legacy = sp.get("parentSpanID")
    return _hex_id(legacy, 16, "parentSpanID") if legacy and set(str(legacy)) != {"0"} else None


def spans_of_jaeger_trace(trace: Mapping[str, Any]) -> list[Span]:
    """One element of Jaeger's ``data`` list as spans (``ValueError``/``KeyError``/``TypeError``
    on garbage)."""
    processes = {pid: (str(p.get("serviceName") or "unknown"), _tags(p.get("tags")))
                 for pid, p in (trace.get("processes") or {}).items()}
    out = []
    for sp in trace.get("spans") or ():
        service, ptags = processes.get(sp.get("processID"), ("unknown", {}))
        if sp.get("process"):  # spans embedding their process (older answers)
            service = str(sp["process"].get("serviceName") or service)
            ptags = _tags(sp["process"].get("tags")) or ptags
        tags = _tags(sp.get("tags"))
        code = str(tags.get("otel.status_code", "")).upper()
        err = tags.get("error") is True or str(tags.get("error", "")).lower() == "true" or code == "ERROR"
        status = "error" if err else ("ok" if code == "OK" else "unset")
        kind = str(tags.get("span.kind", "internal")).lower()
        start = int(sp["startTime"]) * 1000
        out.append(Span(
            trace_id=_hex_id(sp["traceID"], 32, "traceID"), span_id=_hex_id(sp["spanID"], 16, "spanID"),
            parent=_parent(sp), service=service, name=str(sp.get("operationName", "")),
            start_ns=start, end_ns=start + int(sp.get("duration") or 0) * 1000,
            status=status,  # type: ignore[arg-type]
            kind=kind if kind in _KINDS else "internal",
            attributes={k: v for k, v in tags.items() if k not in _CONSUMED},
            resource={**ptags, "service.name": service},
            status_message=str(tags.get("otel.status_description", ""))))
    return out


class JaegerConnector:
    """Traces from Jaeger query (module docstring). ``limit`` traces per service and window."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, name: str = "jaeger",
                 tenant: str | None = None, bearer_token: str | None = None,
                 basic_auth: tuple[str, str] | None = None, timeout_s: float = 10, retries: int = 3,
                 limit: int = 100, concurrency: int = 4, backoff_s: float = 0.2) -> None:
        self.url = url
        self.name = name
        self.limit = limit
        self.concurrency = concurrency
        self.http = HttpSource(name, url, client=client, tenant=tenant, bearer_token=bearer_token,
                               basic_auth=basic_auth, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)

    def _data(self, path: str, params: Mapping[str, str] | None = None) -> tuple[Any, list[str]]:
        doc = self.http.get_json(path, params)
        if not isinstance(doc, Mapping) or "data" not in doc:
            raise SourceError(self.name, f"{path} answered without a 'data' field: {str(doc)[:120]!r}")
        errs = doc.get("errors") or []
        msgs = [f"{e.get('code', '')} {e.get('msg', '')}".strip() if isinstance(e, Mapping) else str(e)
                for e in (errs if isinstance(errs, list) else [errs])]
        if msgs and not doc.get("data"):
            raise SourceError(self.name, f"{path}: " + "; ".join(msgs))
        return doc.get("data") or [], [f"{self.name}: {m}" for m in msgs]

    def services(self) -> list[str]:
        """Service names Jaeger knows, sorted."""
        data, _ = self._data("/api/services")
        if not isinstance(data, list):
            raise SourceError(self.name, f"/api/services answered {type(data).__name__}, not a list")
        return sorted(str(s) for s in data)

    def traces(self, service: str, window: Window, limit: int | None = None) -> tuple[list[Span], list[str]]:
        """Spans of up to ``limit`` traces of ``service`` in ``window``, and warnings."""
        params = {"service": service, "start": str(window.start * 1_000_000),
                  "end": str((window.end + 1) * 1_000_000 - 1), "limit": str(limit or self.limit)}
        data, warnings = self._data("/api/traces", params)
        if not isinstance(data, list):
            raise SourceError(self.name, f"/api/traces answered {type(data).__name__}, not a list")
        spans: list[Span] = []
        for i, tr in enumerate(data):
            try:
                spans.extend(spans_of_jaeger_trace(tr))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise SourceError(self.name, f"/api/traces?service={service}: trace #{i} is malformed ({e})") from None
        return spans, warnings

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        sel = (selector or "").strip()
        services = [sel.removeprefix("service=").strip('"')] if sel else self.services()
        results = map_bounded(lambda s: self.traces(s, window), services, self.concurrency)
        errors = [r for r in results if isinstance(r, SourceError)]
        if services and len(errors) == len(services):
            raise errors[0]
        spans: dict[tuple[str, str], Span] = {}
        warnings = [str(e) for e in errors]
        for r in results:
            if not isinstance(r, SourceError):
                for s in r[0]:
                    spans.setdefault((s.trace_id, s.span_id), s)
                warnings.extend(r[1])
        out = sorted(spans.values(), key=lambda s: (s.start_ns, s.trace_id, s.span_id))
        return Snapshot(window, MetricFrame.empty(), spans=tuple(out), warnings=tuple(dict.fromkeys(warnings)))

    def check(self) -> Health:
        try:
            resp, dt = self.http.timed_get("/api/services")
        except SourceError as e:
            return Health(self.name, "down", str(e))
        if not resp.is_success:
            return Health(self.name, "degraded" if resp.status_code < 500 else "down",
                          f"HTTP {resp.status_code}: {resp.text.strip()[:200]}", dt)
        try:
            n = len(self.http.decode_json(resp, "/api/services").get("data") or [])
        except (SourceError, AttributeError) as e:
            return Health(self.name, "degraded", f"/api/services answered garbage: {e}", dt)
        return Health(self.name, "ok" if n else "degraded", f"{n} services" if n else "no services yet", dt)
