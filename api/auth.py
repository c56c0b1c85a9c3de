"""Bearer API keys with scopes, as FastAPI dependencies.

``install_auth`` checks the key before routing (so a body is never read for a stranger);
``Depends(require("read"))`` on a route checks the scope. 401 (with ``WWW-Authenticate: Bearer``) when the key
is missing, malformed, unknown or revoked; 403 when it lacks the scope. With auth disabled
(``rca serve --insecure-no-auth``, loopback only) every request acts as an anonymous admin.
Only the key's public id reaches ``request.state`` (and so the access log); the key itself is
never stored, logged or echoed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem, problem_response
from rca.apikeys import SCOPES, ApiKey, verify_key

__all__ = ["ANONYMOUS", "install_auth", "require"]

ANONYMOUS = ApiKey("anonymous", "no auth (--insecure-no-auth)", ("admin",), 0)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rca"'}


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "Unauthorized", detail, kind="unauthorized", field="Authorization",
                      fix="send `Authorization: Bearer <key>`; create a key with `rca keys create --scope read`",
                      headers=_CHALLENGE)


async def _authenticate(request: Request) -> ApiKey:
    """The caller's key, or ``ApiProblem(401)``."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("no API key")
    if kind.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header is not `Bearer <key>`")
    key = await run_in_threadpool(verify_key, request.app.state.rca.store, token.strip())
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    return key


def install_auth(app: FastAPI, public_paths: Iterable[str]) -> None:
    """Authenticate before routing, so an unauthenticated request is refused before its body
    is read or parsed; routes then only check the scope (``require``)."""
    public = frozenset(public_paths)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.app.state.rca.auth or request.url.path in public:
            return await call_next(request)
        try:
            key = await _authenticate(request)
        except ApiProblem as p:
            return problem_response(request, p.status, p.title, p.detail, kind=p.kind, field=p.field, fix=p.fix,
                                    headers=p.headers)
        request.state.api_key = key
        request.state.key_id = key.id
        return await call_next(request)


_bearer = HTTPBearer(auto_error=False, description="an API key from `rca keys create`")


def require(scope: str) -> Callable:
    """A dependency that returns the caller's ``ApiKey`` when it holds ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def _dep(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
        if not request.app.state.rca.auth:
            return ANONYMOUS
        key = getattr(request.state, "api_key", None) or await _authenticate(request)
        request.state.key_id = key.id
        if not key.allows(scope):
            raise ApiProblem(403, "Forbidden", f"this key has scope {', '.join(key.scopes)}; "
                             f"this route needs {scope}", kind="forbidden", field="Authorization",
                             fix=f"use a key created with `rca keys create --scope {scope}`")
        return key

    return _dep
