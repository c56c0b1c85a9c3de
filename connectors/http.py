"""Shared HTTP plumbing for connectors that read a source over HTTP (Loki, Tempo, Jaeger, and any
Prometheus-compatible API that wants it).

One :class:`HttpSource` per connector: base URL, an injected or lazily made ``httpx.Client``,
auth and tenant headers, an explicit per-request timeout, a size limit, and one retry policy
(tenacity):

* retried: connect errors and connect timeouts, a connection dropped mid-response, HTTP 429 and
  5xx (except 501) — up to ``retries`` more attempts, exponential back-off from ``backoff_s``
  (a ``Retry-After`` in seconds is honoured, capped at ``max_backoff_s``);
* not retried: read/write/pool timeouts (-> :class:`~rca.errors.SourceTimeout` at once, so a slow
  source costs one ``timeout_s``, not ``retries`` of them) and other 4xx answers;
* every failure ends as ``SourceError(name, message)`` carrying the server's own message
  (:func:`error_message`); never another exception type, never a hang.

Secrets (bearer token, basic-auth password, user info in the URL) are sent as headers and never
appear in error messages.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rca.errors import SourceError, SourceTimeout

__all__ = ["DEFAULT_MAX_BYTES", "HttpSource", "RetryableStatus", "error_message", "map_bounded", "redact_url"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_BODY_CHARS = 500
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 510, 511, 520, 521, 522, 523, 524})


class RetryableStatus(Exception):
    """Internal: an HTTP answer worth another attempt (429 / 5xx)."""

    def __init__(self, response: httpx.Response, body: bytes) -> None:
        self.response = response
        self.body = body
        super().__init__(f"HTTP {response.status_code}")


def redact_url(url: str) -> str:
    """``https://user:pw@host/x?q`` -> ``https://host/x`` (for messages)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def error_message(status: int, body: bytes | str) -> str:
    """The server's own words for a failed request: a JSON ``error`` / ``message`` /
    ``errors[].msg`` field (Prometheus, Jaeger, Tempo), else the plain-text body (Loki), cut to
    500 characters."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
    text = text.strip()
    if text[:1] in "{[":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        msg = _json_error(doc)
        if msg:
            text = msg
    if not text:
        text = httpx.codes.get_reason_phrase(status) or "no body"
    if len(text) > _BODY_CHARS:
        text = text[:_BODY_CHARS] + " …"
    return f"HTTP {status}: {text}"


def _json_error(doc: Any) -> str:
    if isinstance(doc, Mapping):
        errs = doc.get("errors")
        if isinstance(errs, list) and errs:
            msgs = [str(e.get("msg") or e.get("message") or e) if isinstance(e, Mapping) else str(e) for e in errs]
            return "; ".join(msgs)
        for k in ("error", "message", "msg", "detail"):
            v = doc.get(k)
            if isinstance(v, str) and v:
                return v
            if isinstance(v, Mapping):
                inner = _json_error(v)
                if inner:
                    return inner
    return ""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryableStatus):
        return True
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.RemoteProtocolError)


class HttpSource:
    """GET requests against ``base_url`` with the policy of the module docstring.

    ``tenant`` is sent as ``tenant_header`` (``X-Scope-OrgID`` for Loki, Tempo, Mimir);
    ``bearer_token`` as ``Authorization: Bearer``; ``basic_auth`` is ``(user, password)``.
    ``client`` is used as given (tests pass one with ``httpx.MockTransport``); without one a
    client is made on first use. ``max_bytes`` caps one response body.
    """

    def __init__(self, name: str, base_url: str, *, client: httpx.Client | None = None,
                 tenant: str | None = None, tenant_header: str = "X-Scope-OrgID",
                 bearer_token: str | None = None, basic_auth: tuple[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 0.2, max_backoff_s: float = 5.0,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.name = name
        self.base_url = base_url
        self.client = client
        self.tenant = tenant
        self.tenant_header = tenant_header
        self.bearer_token = bearer_token
        self.basic_auth = basic_auth
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_bytes = max_bytes

    # ------------------------------------------------------------ plumbing
    def _client(self) -> httpx.Client:
        if self.client is None:
            self._own = httpx.Client(follow_redirects=True)
            self.client = self._own
        return self.client

    def close(self) -> None:
        """Close the client if this object made it (an injected client is the caller's)."""
        own = getattr(self, "_own", None)
        if own is not None:
            own.close()
            self.client = self._own = None

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def request_headers(self, accept: str | None = None) -> dict[str, str]:
        h = dict(self.headers)
        if accept:
            h["Accept"] = accept
        if self.tenant:
            h[self.tenant_header] = self.tenant
        if self.bearer_token:
            h["Authorization"] = f"Bearer {self.bearer_token}"
        elif self.basic_auth:
            user, pw = self.basic_auth
            h["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")
        return h

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus):
            ra = exc.response.headers.get("Retry-After", "")
            if ra.strip().isdigit():
                return min(float(ra), self.max_backoff_s)
        return min(self.backoff_s * (2 ** (state.attempt_number - 1)), self.max_backoff_s)

    def _once(self, path: str, params: Mapping[str, Any] | None, accept: str | None) -> httpx.Response:
        req = self._client().build_request("GET", self.url(path), params=params,
                                           headers=self.request_headers(accept),
                                           timeout=httpx.Timeout(self.timeout_s))
        resp = self._client().send(req, stream=True)
        try:
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise SourceError(self.name, f"response of {int(declared)} bytes exceeds the "
                                             f"{self.max_bytes}-byte limit ({redact_url(str(req.url))})")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise SourceError(self.name, f"response exceeds the {self.max_bytes}-byte limit "
                                                 f"({redact_url(str(req.url))}); narrow the window or query")
                chunks.append(chunk)
        finally:
            resp.close()
        body = b"".join(chunks)
        out = httpx.Response(resp.status_code, headers=resp.headers, content=body, request=req)
        if resp.status_code in _RETRY_STATUS:
            raise RetryableStatus(out, body)
        return out

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, accept: str | None = None,
            ok: tuple[int, ...] = ()) -> httpx.Response:
        """GET ``path`` (relative to the base URL). Returns a 2xx response (or one whose status is
        in ``ok``); raises ``SourceError`` / ``SourceTimeout`` otherwise."""
        where = redact_url(self.url(path))
        retrying = Retrying(stop=stop_after_attempt(max(self.retries, 0) + 1), wait=self._wait,
                            retry=retry_if_exception(_retryable), reraise=True)
        try:
            resp = retrying(self._once, path, params, accept)
        except RetryableStatus as e:
            raise SourceError(self.name, f"{error_message(e.response.status_code, e.body)} from {where} "
                                         f"(after {self.retries + 1} attempts)") from None
        except httpx.TimeoutException as e:
            kind = "connecting" if isinstance(e, httpx.ConnectTimeout) else "waiting for an answer"
            raise SourceTimeout(self.name, f"timed out after {self.timeout_s:g} s {kind} ({where})") from None
        except httpx.ConnectError as e:
            raise SourceError(self.name, f"cannot connect to {where}: {e}") from None
        except httpx.HTTPError as e:
            raise SourceError(self.name, f"request to {where} failed: {type(e).__name__}: {e}") from None
        except OSError as e:
            raise SourceError(self.name, f"request to {where} failed: {e}") from None
        if resp.is_success or resp.status_code in ok:
            return resp
        raise SourceError(self.name, f"{error_message(resp.status_code, resp.content)} from {where}")

    def get_json(self, path: str, params: Mapping[str, Any] | None = None,
                 ok: tuple[int, ...] = ()) -> Any:
        """GET and decode JSON; garbage becomes ``SourceError``."""
        resp = self.get(path, params, accept="application/json", ok=ok)
        return self.decode_json(resp, path)

    def decode_json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return json.loads(resp.content)
        except (ValueError, UnicodeDecodeError) as e:
            head = resp.content[:80].decode("utf-8", "replace")
            raise SourceError(self.name, f"{redact_url(self.url(path))} returned invalid JSON ({e}); "
                                         f"body starts {head!r}") from None

    def timed_get(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[httpx.Response, float]:
        """A GET for health checks: the response and its latency in seconds. Non-2xx answers are
        returned, not raised (a check reports them)."""
        t0 = time.monotonic()
        resp = self.get(path, params, ok=tuple(range(300, 600)))
        return resp, time.monotonic() - t0


def map_bounded(fn: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R | SourceError]:
    """``[fn(x) for x in items]`` with at most ``concurrency`` calls in flight; a ``SourceError``
    raised by one call is returned in its slot (so one bad item does not sink the others)."""

    def one(x: T) -> R | SourceError:
        try:
            return fn(x)
        except SourceError as e:
            return e

    if concurrency <= 1 or len(items) <= 1:
        return [one(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(one, items))
