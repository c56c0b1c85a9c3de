"""Incident notifications: the message, the ``Notifier`` seam, delivery with retries, the log.

* :class:`IncidentMessage` is what every notifier renders, built from an ``rca.types.Incident`` by
  :func:`message_from_incident` (top 3 hypotheses, up to 3 evidence lines each, plot URLs numbered
  like the API's ``/v1/incidents/{id}/evidence/{n}/plot.png``).
* :class:`Notifier`: ``send(msg, previous)`` delivers the first message of an incident
  (``previous is None``) or an update to what ``previous`` records. :class:`NullNotifier` sends
  and records nothing.
* :func:`post_json` is the one delivery path: an injected ``httpx.Client``, an explicit timeout,
  tenacity retries on connect errors, HTTP 5xx and 429 (``Retry-After`` honoured, capped), never
  on other 4xx; every attempt is kept as an :class:`Attempt`. Read timeouts and dropped
  connections are retried only for idempotent targets (PagerDuty dedups on ``dedup_key``); a chat
  webhook that may already have posted is not asked twice.
* :class:`Dispatcher` sends one message per incident per notifier, never the same
  (status, content) twice, and at most one update per ``min_interval_s``; resolutions always go.

Secrets: webhook URLs and routing keys carry credentials. Records keep only :func:`redact_target`
of them, error texts are scrubbed, and httpx's own request log lines are redacted by a filter.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from api.shape import plot_urls
from rca.errors import BadInput
from rca.types import Incident

__all__ = ["SEVERITIES", "Attempt", "DeliveryLog", "DeliveryRecord", "DispatchResult", "Dispatcher",
           "HypothesisLine", "IncidentMessage", "MemoryDeliveryLog", "Notifier", "NullNotifier",
           "RetryPolicy", "message_from_incident", "post_json", "record_of", "redact_target"]

log = logging.getLogger(__name__)

Status = Literal["open", "updated", "resolved"]
STATUSES = ("open", "updated", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
_TOP, _EVIDENCE = 3, 3


@dataclass(frozen=True)
class HypothesisLine:
    """One ranked hypothesis as shown: ``confidence`` in [0, 1] (NaN when unknown)."""

    rank: int
    root: str
    category: str
    confidence: float
    evidence: tuple[str, ...] = ()
    plot_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncidentMessage:
    """What a notifier says about an incident. ``fingerprint`` is the stable dedup key."""

    incident_id: str
    fingerprint: str
    status: Status
    headline: str
    summary: str
    hypotheses: tuple[HypothesisLine, ...]
    incident_url: str
    severity: str = "error"
    created_at: int = 0

    def content_hash(self) -> str:
        """sha256 over everything shown (status included), hex, 16 characters."""
        doc = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for h in d["hypotheses"]:
            c = h["confidence"]
            h["confidence"] = c if c == c else None
            h["evidence"], h["plot_urls"] = list(h["evidence"]), list(h["plot_urls"])
        return d


def _pct(c: float) -> str:
    return f"{c:.0%}" if c == c else "n/a"


def message_from_incident(incident: Incident, base_url: str, fingerprint: str, status: Status = "open",
                          severity: str = "error") -> IncidentMessage:
    """The message for ``incident``; links are absolute under ``base_url`` (the API's public URL)."""
    if status not in STATUSES:
        raise BadInput(f"unknown status {status!r}", field="status", fix=f"use one of {', '.join(STATUSES)}")
    if severity not in SEVERITIES:
        raise BadInput(f"unknown severity {severity!r}", field="severity", fix=f"use one of {', '.join(SEVERITIES)}")
    if not fingerprint:
        raise BadInput("empty fingerprint", field="fingerprint", fix="pass the incident's stable fingerprint")
    url = f"{base_url.rstrip('/')}/v1/incidents/{incident.id}"
    lines = []
    for rank, (h, urls) in enumerate(zip(incident.hypotheses[:_TOP], plot_urls(incident, base_url), strict=False), 1):
        shown = list(zip(h.evidence, urls, strict=True))[:_EVIDENCE]
        lines.append(HypothesisLine(rank, h.root, h.category, float(h.confidence), tuple(e.summary for e, _ in shown),
                                    tuple(u for _, u in shown if u)))
    sym = incident.symptom
    what = f"{sym.signal} of {sym.entity}" if sym else (incident.question or "anomaly")
    if lines:
        top = lines[0]
        headline = f"{what}: likely {top.root} ({top.category}, {_pct(top.confidence)})"
    else:
        headline = f"{what}: no root cause found"
    return IncidentMessage(incident.id, fingerprint, status, headline, incident.summary, tuple(lines), url,
                           severity, int(incident.created_at))


class Attempt(NamedTuple):
    """One try: unix time ``at`` and the HTTP status, or the error's class name and scrubbed text."""

    at: float
    result: int | str


@dataclass(frozen=True)
class DeliveryRecord:
    """What one notifier did for one message. ``target`` is redacted; ``external_id`` is what the
    target calls the message (PagerDuty's ``dedup_key``), if anything."""

    notifier: str
    incident_id: str
    fingerprint: str
    status: str
    target: str
    attempts: tuple[Attempt, ...]
    delivered: bool
    content_hash: str = ""
    external_id: str | None = None

    @property
    def at(self) -> float:
        """Time of the last attempt (0 when none was made)."""
        return float(self.attempts[-1][0]) if self.attempts else 0.0


@runtime_checkable
class Notifier(Protocol):
    """Delivers incident messages to one target. ``previous`` is the last *delivered* record for
    this incident and notifier (None for the first message); ``send`` never raises for delivery
    failures — they end in a record with ``delivered=False``."""

    name: str

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord: ...


class NullNotifier:
    """Sends nothing; its records carry no attempts, so the dispatcher logs nothing."""

    name = "null"

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        return DeliveryRecord(self.name, msg.incident_id, msg.fingerprint, msg.status, "", (), False,
                              msg.content_hash())


class DeliveryLog(Protocol):
    """Where delivery records go. ``last`` is the newest *delivered* record (None if none)."""

    def last(self, incident_id: str, notifier: str) -> DeliveryRecord | None: ...

    def record(self, rec: DeliveryRecord) -> None: ...


class MemoryDeliveryLog:
    """An in-process :class:`DeliveryLog` (tests, and until the SQL table exists)."""

    def __init__(self) -> None:
        self.records: list[DeliveryRecord] = []
        self._lock = threading.Lock()

    def last(self, incident_id: str, notifier: str) -> DeliveryRecord | None:
        with self._lock:
            for r in reversed(self.records):
                if r.incident_id == incident_id and r.notifier == notifier and r.delivered:
                    return r
        return None

    def record(self, rec: DeliveryRecord) -> None:
        with self._lock:
            self.records.append(rec)


# --- delivery -------------------------------------------------------------------------------------

def redact_target(url: str, secret: str | None = None) -> str:
    """``https://hooks.slack.com/services/T1/B2/abcdWXYZ`` -> ``hooks.slack.com/…/WXYZ``; with
    ``secret`` (a routing key sent in the body) its last 4 characters are shown instead."""
    parts = urlsplit(url)
    tail = (secret or parts.path.rstrip("/"))[-4:]
    return f"{parts.hostname or ''}/…/{tail}" if tail else parts.hostname or ""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all; back-off ``base_s`` · 2^(n-1) capped at ``max_s``; a ``Retry-After``
    wins when longer, capped at ``max_retry_after_s``. ``sleep`` and ``clock`` are injectable."""

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 30.0
    max_retry_after_s: float = 120.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


class _Retry(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_SECRET_URLS: set[str] = set()
_FILTER_LOCK = threading.Lock()


class _RedactFilter(logging.Filter):
    """Redacts registered webhook URLs from httpx's ``HTTP Request: POST <url>`` log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(a) in _SECRET_URLS for a in record.args):
            record.args = tuple(redact_target(str(a)) if str(a) in _SECRET_URLS else a for a in record.args)
        return True


def _guard_logs(url: str) -> None:
    with _FILTER_LOCK:
        _SECRET_URLS.add(url)
        lg = logging.getLogger("httpx")
        if not any(isinstance(f, _RedactFilter) for f in lg.filters):
            lg.addFilter(_RedactFilter())


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "…")
    return text[:300]


def post_json(client: httpx.Client, url: str, payload: Mapping[str, Any], policy: RetryPolicy, *,
              idempotent: bool = False, headers: Mapping[str, str] | None = None,
              secrets: Sequence[str] = ()) -> tuple[tuple[Attempt, ...], httpx.Response | None]:
    """POST ``payload`` as JSON under ``policy``; the attempts made and the final response (None
    when no HTTP answer came back). Never raises for network or HTTP failures."""
    _guard_logs(url)
    body = json.dumps(payload, separators=(",", ":")).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    hide = (url, *secrets)
    attempts: list[Attempt] = []
    last: list[httpx.Response] = []

    def once() -> httpx.Response | None:
        at = policy.clock()
        try:
            r = client.post(url, content=body, headers=hdrs, timeout=policy.timeout_s)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            attempts.append(Attempt(at, f"{type(e).__name__}: {_scrub(str(e), hide)}"))
            raise _Retry() from None
        except httpx.HTTPError as e:  # may have reached the target: retry only if that is harmless
            attempts.append(Attempt(at, f"{type(e).__name__}: {_scrub(str(e), hide)}"))
            if idempotent:
                raise _Retry() from None
            return None
        attempts.append(Attempt(at, r.status_code))
        last[:] = [r]
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retry(_retry_after(r.headers.get("Retry-After")))
        return r

    def wait(rs: RetryCallState) -> float:
        backoff = min(policy.max_s, policy.base_s * 2 ** (rs.attempt_number - 1))
        exc = rs.outcome.exception() if rs.outcome else None
        ra = getattr(exc, "retry_after", None)
        return min(policy.max_retry_after_s, max(backoff, ra)) if ra is not None else backoff

    retrying = Retrying(stop=stop_after_attempt(max(1, policy.attempts)), wait=wait, sleep=policy.sleep,
                        retry=retry_if_exception_type(_Retry), reraise=False)
    try:
        resp = retrying(once)
    except RetryError:
        resp = last[0] if last else None
    return tuple(attempts), resp


def record_of(notifier: str, msg: IncidentMessage, target: str, attempts: tuple[Attempt, ...],
              resp: httpx.Response | None, external_id: str | None = None) -> DeliveryRecord:
    """The record of one ``post_json``: delivered when the last answer was 2xx."""
    ok = resp is not None and 200 <= resp.status_code < 300
    rec = DeliveryRecord(notifier, msg.incident_id, msg.fingerprint, msg.status, target, attempts, ok,
                         msg.content_hash(), external_id if ok else None)
    outcome = "delivered" if ok else "NOT delivered"
    log.info("%s %s for %s to %s after %d attempt(s): %s", notifier, outcome, msg.incident_id, target,
             len(attempts), attempts[-1].result if attempts else "-")
    return rec


# --- dispatch -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DispatchResult:
    """``outcome``: ``sent`` | ``failed`` | ``duplicate`` | ``rate_limited`` | ``skipped`` (no attempt)."""

    notifier: str
    outcome: str
    record: DeliveryRecord | None = None


@dataclass
class Dispatcher:
    """Fans a message out to ``notifiers`` under the one-message-per-incident rules (module doc).

    A rate-limited or failed update is not queued: the caller dispatches the incident's current
    state again on its next change or tick, and that goes out once the interval has passed.
    """

    notifiers: Sequence[Notifier]
    log: DeliveryLog
    min_interval_s: float = 300.0
    clock: Callable[[], float] = time.time
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _lock(self, incident_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(incident_id, threading.Lock())

    def dispatch(self, msg: IncidentMessage, only: Collection[str] | None = None) -> list[DispatchResult]:
        """Send ``msg`` to every notifier (or those named in ``only``, e.g. a route's)."""
        out = []
        with self._lock(msg.incident_id):
            for n in self.notifiers:
                if only is None or n.name in only:
                    out.append(self._one(n, msg))
        return out

    def _one(self, n: Notifier, msg: IncidentMessage) -> DispatchResult:
        prev = self.log.last(msg.incident_id, n.name)
        if prev is not None:
            if prev.status == msg.status and prev.content_hash == msg.content_hash():
                return DispatchResult(n.name, "duplicate", prev)
            if prev.status == "resolved" and msg.status == "resolved":
                return DispatchResult(n.name, "duplicate", prev)
            if msg.status != "resolved" and self.clock() - prev.at < self.min_interval_s:
                return DispatchResult(n.name, "rate_limited", prev)
        rec = n.send(msg, prev)
        if not rec.attempts:
            return DispatchResult(n.name, "skipped", rec)
        self.log.record(rec)
        return DispatchResult(n.name, "sent" if rec.delivered else "failed", rec)
