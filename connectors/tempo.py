"""Grafana Tempo as a trace source (Tempo HTTP API: ``GET /api/traces/<id>``, ``GET /api/search``,
``GET /ready``).

Trace bodies come in three shapes, all read:

* ``{"batches": [ResourceSpans …]}`` — Tempo 1.x/2.x ``/api/traces/<id>``; protobuf-JSON
  (``jsonpb``) so ids are **base64**, enums may be names (``SPAN_KIND_SERVER``), scopes may be
  ``instrumentationLibrarySpans`` (OTLP < 0.15);
* ``{"trace": {"resourceSpans": […]}}`` — Tempo 2.x ``/api/v2/traces/<id>``;
* ``{"resourceSpans": […]}`` — plain OTLP/JSON (hex ids, telemetry reference §4.3).

Ids are normalised to lowercase hex (a base64 id is told from a hex one by its length: 16 bytes
are 32 hex characters or 24 base64 ones), then the spans are decoded by
``rca.emit.otlp_json.read_otlp_traces``. Search results name trace ids in hex without leading
zeros; they are padded to 32 characters.

``fetch`` = one search in the window (``selector`` is logfmt tags ``service.name=checkout`` or,
when it starts with ``{``, a TraceQL query sent as ``q``), then at most ``max_traces`` traces
fetched ``concurrency`` at a time. Whole traces are kept, even spans outside the window (a cut
trace would fake orphan spans); a trace that fails to load is a warning, not a failure, unless
all fail.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.http import HttpSource, map_bounded
from rca.emit.otlp_json import read_otlp_traces
from rca.errors import SourceError
from rca.types import Health, MetricFrame, Snapshot, Span, Window

__all__ = ["TempoConnector", "id_hex", "normalize_trace", "spans_of_trace"]

_HEX = re.compile(r"[0-9a-fA-F]+")
_ID_FIELDS = (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))


def id_hex(v: Any, nbytes: int) -> str:
    """An OTLP id (hex or base64) as lowercase hex of ``nbytes`` bytes; ``""`` for empty.
    Raises ``ValueError`` for anything else."""
    s = str(v or "")
    if not s:
        return ""
    if len(s) == 2 * nbytes and _HEX.fullmatch(s):
        return s.lower()
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(s)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) == nbytes:
        return raw.hex()
    if _HEX.fullmatch(s) and len(s) < 2 * nbytes:  # hex with its leading zeros trimmed
        return s.lower().zfill(2 * nbytes)
    raise ValueError(f"id {s!r} is neither hex nor base64 of {nbytes} bytes")


def normalize_trace(doc: Any) -> dict[str, Any]:
    """Any of the three trace shapes (module docstring) as an OTLP/JSON
    ``{"resourceSpans": [...]}`` with hex ids and ``scopeSpans``. ``ValueError`` on bad shapes."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"a trace is a JSON object, got {type(doc).__name__}")
    body = doc.get("trace", doc)
    if not isinstance(body, Mapping):
        raise ValueError("'trace' is not an object")
    batches = body.get("batches") if body.get("batches") is not None else body.get("resourceSpans")
    if batches is None:
        if body:
            raise ValueError(f"no 'batches' or 'resourceSpans' among keys {sorted(body)[:5]}")
        batches = []
    if not isinstance(batches, list):
        raise ValueError("'batches' / 'resourceSpans' is not a list")
    out = []
    for rs in batches:
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        new_scopes = []
        for ss in scopes:
            spans = []
            for sp in ss.get("spans") or []:
                sp = dict(sp)
                for key, n in _ID_FIELDS:
                    if key in sp:
                        sp[key] = id_hex(sp[key], n)
                spans.append(sp)
            new_scopes.append({"scope": ss.get("scope") or ss.get("instrumentationLibrary") or {}, "spans": spans})
        out.append({"resource": rs.get("resource") or {}, "scopeSpans": new_scopes})
    return {"resourceSpans": out}


def spans_of_trace(doc: Any) -> list[Span]:
    """Decode one Tempo trace body into spans (``ValueError`` / ``TypeError`` on garbage)."""
    return read_otlp_traces(normalize_trace(doc))


def _tags_text(tags: Mapping[str, str] | str | None) -> str | None:
    if tags is None or isinstance(tags, str):
        return tags or None

    def q(v: str) -> str:
        return f'"{v}"' if re.search(r'[\s="]', v) else v

    return " ".join(f"{k}={q(str(v))}" for k, v in tags.items()) or None


class TempoConnector:
    """Traces from Tempo (module docstring). ``search_limit`` is how many trace ids one search
    asks for; ``max_traces`` bounds how many are then fetched, ``concurrency`` at a time."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, name: str = "tempo",
                 tenant: str | None = None, bearer_token: str | None = None,
                 basic_auth: tuple[str, str] | None = None, timeout_s: float = 10, retries: int = 3,
                 search_limit: int = 20, max_traces: int = 50, concurrency: int = 4,
                 backoff_s: float = 0.2) -> None:
        self.url = url
        self.name = name
        self.search_limit = search_limit
        self.max_traces = max_traces
        self.concurrency = concurrency
        self.http = HttpSource(name, url, client=client, tenant=tenant, bearer_token=bearer_token,
                               basic_auth=basic_auth, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)

    def trace(self, trace_id: str, window: Window | None = None) -> list[Span]:
        """All spans of one trace. An unknown trace (Tempo answers 404) raises ``SourceError``."""
        try:
            tid = id_hex(trace_id, 16)
        except ValueError as e:
            raise SourceError(self.name, f"bad trace id: {e}") from None
        params = {} if window is None else {"start": str(window.start), "end": str(window.end + 1)}
        path = f"/api/traces/{tid}"
        doc = self.http.get_json(path, params)
        try:
            return spans_of_trace(doc)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise SourceError(self.name, f"trace {tid}: unexpected body ({e})") from None

    def search(self, window: Window, tags: Mapping[str, str] | str | None = None, limit: int = 20) -> list[str]:
        """Trace ids (32 hex) of traces in ``window`` matching logfmt ``tags`` (or a TraceQL
        query when ``tags`` starts with ``{``), newest first as Tempo returns them."""
        params: dict[str, str] = {"start": str(window.start), "end": str(window.end + 1), "limit": str(limit)}
        text = _tags_text(tags)
        if text and text.lstrip().startswith("{"):
            params["q"] = text
        elif text:
            params["tags"] = text
        doc = self.http.get_json("/api/search", params)
        traces = doc.get("traces") if isinstance(doc, Mapping) else None
        if traces is None and isinstance(doc, Mapping):
            return []
        if not isinstance(traces, list):
            raise SourceError(self.name, f"/api/search answered an unexpected shape: {str(doc)[:120]!r}")
        out = []
        for t in traces:
            try:
                out.append(id_hex(t["traceID"], 16))
            except (KeyError, TypeError, ValueError) as e:
                raise SourceError(self.name, f"/api/search returned a bad trace entry {str(t)[:80]!r} ({e})") from None
        return list(dict.fromkeys(out))

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot:
        ids = self.search(window, selector, self.search_limit)[: self.max_traces]
        results = map_bounded(lambda t: self.trace(t, window), ids, self.concurrency)
        spans: list[Span] = []
        errors = [r for r in results if isinstance(r, SourceError)]
        if ids and len(errors) == len(ids):
            raise errors[0]
        for r in results:
            if not isinstance(r, SourceError):
                spans.extend(r)
        spans = list({(s.trace_id, s.span_id): s for s in spans}.values())
        spans.sort(key=lambda s: (s.start_ns, s.trace_id, s.span_id))
        warnings = tuple(str(e) for e in errors)
        return Snapshot(window, MetricFrame.empty(), spans=tuple(spans), warnings=warnings)

    def check(self) -> Health:
        try:
            resp, dt = self.http.timed_get("/ready")
        except SourceError as e:
            return Health(self.name, "down", str(e))
        text = resp.text.strip()
        if resp.is_success:
            return Health(self.name, "ok", text[:80] or "ready", dt)
        return Health(self.name, "degraded" if resp.status_code < 500 else "down",
                      f"HTTP {resp.status_code}: {text[:200]}", dt)
