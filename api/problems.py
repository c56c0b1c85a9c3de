"""One error envelope: RFC 9457 ``application/problem+json``.

Every error the API returns (bad input, not found, ambiguous question, auth, validation,
store down, a bug) is ``{"type", "title", "status", "detail", "field"?, "fix"?,
"candidates"?, "errors"?, "request_id"}``. ``type`` is a stable URI per kind of problem so
clients can branch on it without parsing ``detail``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rca.errors import Ambiguous, BadInput, NotFound, SourceError, StoreError

__all__ = ["PROBLEM", "ApiProblem", "install_problem_handlers", "problem_response"]

PROBLEM = "application/problem+json"
_BASE = "https://rca.dev/problems/"
log = logging.getLogger("rca.api")


class ApiProblem(Exception):
    """An HTTP problem raised by the API layer itself (auth, limits)."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str, field: str | None = None,
                 fix: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.kind = status, title, detail, kind
        self.field, self.fix, self.headers = field, fix, headers or {}


def problem_response(request: Request | None, status: int, title: str, detail: str, *, kind: str,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": _BASE + kind, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    rid = getattr(request.state, "request_id", None) if request is not None else None
    if rid:
        body["request_id"] = rid
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _loc_field(error: dict[str, Any]) -> str:
    loc = error.get("loc", ())
    if error.get("type") == "json_invalid" or (loc and loc[0] == "body" and len(loc) == 2 and isinstance(loc[1], int)):
        return "body"  # the body is not JSON at all: ("body", <byte offset>)
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or (str(loc[0]) if loc else "request")


def _allowed_methods(request: Request) -> str:
    from starlette.routing import Match

    allowed = [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
               if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in request.app.routes)]
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception the routes can raise to a problem response."""

    @app.exception_handler(Ambiguous)
    async def _ambiguous(request: Request, exc: Ambiguous) -> JSONResponse:
        return problem_response(request, 422, "Ambiguous question", exc.message, kind="ambiguous",
                                field=exc.field, fix=exc.fix, candidates=exc.candidates)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(request, 404, "Not found", exc.message, kind="not-found",
                                field=exc.field, fix=exc.fix)

    @app.exception_handler(BadInput)
    async def _bad_input(request: Request, exc: BadInput) -> JSONResponse:
        status = exc.status if 400 <= exc.status < 500 else 400
        title, kind = ("Payload too large", "too-large") if status == 413 else ("Bad input", "bad-input")
        return problem_response(request, status, title, exc.message, kind=kind, field=exc.field, fix=exc.fix)

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, kind=exc.kind,
                                field=exc.field, fix=exc.fix, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _loc_field(e), "message": e.get("msg", "invalid")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid request"}
        return problem_response(request, 422, "Invalid request", f"{first['field']}: {first['message']}",
                                kind="validation", field=first["field"], errors=errors,
                                fix="see the schema at /docs")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of every route on this path, not the first one's
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return problem_response(request, 422, "Invalid request", "the body is not valid JSON",
                                    kind="validation", field="body", fix="send a JSON object (see /docs)")
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem_response(request, exc.status_code, title, str(exc.detail), kind=f"http-{exc.status_code}",
                                headers=headers)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store failed: %s", exc)
        return problem_response(request, 503, "Store unavailable", "the incident store failed; retry later",
                                kind="store-unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(SourceError)
    async def _source(request: Request, exc: SourceError) -> JSONResponse:
        return problem_response(request, 502, "Source failed", str(exc), kind="source-failed")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "Internal error", "an unexpected error occurred; "
                                "the request id is in the server log", kind="internal")
