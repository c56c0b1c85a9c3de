"""Reading a request body with a size cap (OTLP receivers, Alertmanager, Slack)."""

from __future__ import annotations

from fastapi import Request

from connectors.otlp import BodyTooLarge
from rca.errors import BadInput

__all__ = ["read_body"]


async def read_body(request: Request, limit: int, fix: str = "send smaller requests") -> bytes:
    """The body, refused with ``BodyTooLarge`` (413) as soon as ``Content-Length`` or the bytes
    actually streamed pass ``limit``; a non-numeric ``Content-Length`` is ``BadInput``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BadInput(f"Content-Length {declared!r} is not a number", field="Content-Length",
                           fix="send the body length in bytes") from None
        if n > limit:
            raise BodyTooLarge(f"body is {n} bytes, over the limit of {limit}", field="body", fix=fix)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes", field="body", fix=fix)
    return bytes(buf)
