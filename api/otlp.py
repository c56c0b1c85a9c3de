"""OTLP/HTTP receivers: ``POST /v1/otlp/v1/traces`` and ``POST /v1/otlp/v1/logs``.

Point an OpenTelemetry SDK or Collector at ``http://HOST:PORT/v1/otlp`` (``OTEL_EXPORTER_OTLP_ENDPOINT``;
the SDK appends ``/v1/traces`` and ``/v1/logs``). The router carries the full paths: mount it at
the application root.

Semantics follow OTLP/HTTP (telemetry reference §4.1):

* ``Content-Type`` ``application/x-protobuf`` or ``application/json`` (OTLP/JSON); the reply is
  in the same type. ``Content-Encoding`` ``gzip`` or ``deflate`` is inflated.
* 200 once the accepted records are **committed** to the store. On full success the reply is an
  empty ``Export*ServiceResponse`` (zero bytes in protobuf, ``{}`` in JSON). When some records
  were rejected (see ``connectors.otlp`` for the per-record rules) the reply carries
  ``partial_success {rejected_spans | rejected_log_records, error_message}``; clients must not
  retry it. An empty request is a 200 that stores nothing.
* Errors carry a ``google.rpc.Status`` body (``code``, ``message``) in the request's type
  (JSON when the type itself is the problem). This is what OTLP clients parse, so these two
  routes do **not** use the API's ``application/problem+json`` envelope:
  400 body that does not parse (or a non-numeric ``Content-Length``), 413 body over
  ``max_body_bytes`` — by ``Content-Length``, by the bytes actually streamed, or after
  decompression (inflation stops at the limit, so a gzip bomb costs at most the limit) —,
  415 unsupported ``Content-Type`` or ``Content-Encoding``, 503 (retryable, ``Retry-After``) when
  the store cannot commit.
* Spans already stored (same trace and span id) are ignored, so a client's retry of a batch
  does not duplicate it; log records are appended as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.body import read_body
from connectors.otlp import (
    JSON,
    MEDIA_TYPES,
    Decoded,
    decode_logs,
    decode_traces,
    decompress,
    encode_logs_response,
    encode_status,
    encode_traces_response,
    wire_format,
)
from connectors.otlp_store import OtlpStore
from rca.errors import BadInput, StoreError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "otlp_router"]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
TRACES_PATH = "/v1/otlp/v1/traces"
LOGS_PATH = "/v1/otlp/v1/logs"
_GRPC_CODE = {400: 3, 404: 5, 413: 8, 415: 3, 422: 3, 503: 14}  # INVALID_ARGUMENT, NOT_FOUND, ...
_RETRY_AFTER_S = "1"

log = logging.getLogger(__name__)

_BODY_DOC = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored; `partial_success` names rejected records",
          "content": {"application/x-protobuf": {}, "application/json": {}}},
    400: {"description": "Malformed body (google.rpc.Status)"},
    413: {"description": "Body over the size limit, sent or inflated (google.rpc.Status)"},
    401: {"description": "No valid API key (application/problem+json, from the API's auth)"},
    403: {"description": "The key lacks the write scope (application/problem+json)"},
    415: {"description": "Unsupported Content-Type or Content-Encoding (google.rpc.Status)"},
    503: {"description": "Store unavailable; retry after Retry-After (google.rpc.Status)"},
}


def otlp_router(store: OtlpStore, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> APIRouter:
    """The two OTLP/HTTP receivers writing into ``store``; bodies over ``max_body_bytes``
    (compressed or not) are refused with 413."""
    router = APIRouter(tags=["otlp"])

    @router.post(TRACES_PATH, summary="OTLP/HTTP trace export", responses=_RESPONSES, openapi_extra=_BODY_DOC,
                 response_class=Response)
    async def export_traces(request: Request) -> Response:
        return await _export(request, max_body_bytes, decode_traces, store.add_spans, encode_traces_response)

    @router.post(LOGS_PATH, summary="OTLP/HTTP log export", responses=_RESPONSES, openapi_extra=_BODY_DOC,
                 response_class=Response)
    async def export_logs(request: Request) -> Response:
        return await _export(request, max_body_bytes, decode_logs, store.add_logs, encode_logs_response)

    return router


async def _export(request: Request, limit: int, decode: Callable[[bytes, str], Decoded[Any]],
                  add: Callable[[Iterable[Any]], int], encode: Callable[[Decoded[Any], str], bytes]) -> Response:
    fmt = JSON
    try:
        fmt = wire_format(request.headers.get("content-type"))
        raw = await read_body(request, limit, fix="send smaller batches")
        result = await run_in_threadpool(_ingest, raw, request.headers.get("content-encoding"), limit, fmt,
                                          decode, add)
    except BadInput as e:
        return _status(e.status, str(e), fmt)
    except StoreError as e:
        log.warning("OTLP store could not commit: %s", e)
        return _status(503, f"store unavailable: {e}", fmt, {"Retry-After": _RETRY_AFTER_S})
    if result.rejected:
        log.info("OTLP %s: %s", request.url.path, result.error_message)
    return Response(encode(result, fmt), status_code=200, media_type=MEDIA_TYPES[fmt])


def _ingest(raw: bytes, encoding: str | None, limit: int, fmt: str, decode: Callable[[bytes, str], Decoded[Any]],
            add: Callable[[Iterable[Any]], int]) -> Decoded[Any]:
    result = decode(decompress(raw, encoding, limit), fmt)
    add(result.records)
    return result


def _status(http_status: int, message: str, fmt: str, headers: dict[str, str] | None = None) -> Response:
    code = _GRPC_CODE.get(http_status, 2)  # 2 = UNKNOWN
    return Response(encode_status(code, message, fmt), status_code=http_status, media_type=MEDIA_TYPES[fmt],
                    headers=headers)
