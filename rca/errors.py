"""One exception tree for the whole engine.

::

    RcaError                      base; never raised directly
    ├── BadInput                  the user gave something wrong: names the field and the fix
    │   ├── NotFound              a named thing (incident, scenario, case folder) is absent
    │   └── Ambiguous             several candidates match; ``candidates`` lists them
    ├── SourceError               a source was down, slow or returned garbage
    │   └── SourceTimeout
    └── StoreError                the store failed (not the user's fault)

CLI: ``BadInput`` exits 2 with its message; API: 4xx ``application/problem+json`` with
``field``. A ``SourceError`` never escapes an analysis: it becomes ``no_data`` evidence and a
warning on the snapshot.
"""

from __future__ import annotations

__all__ = ["Ambiguous", "BadInput", "NotFound", "RcaError", "SourceError", "SourceTimeout", "StoreError"]


class RcaError(Exception):
    """Base of every error the engine raises on purpose."""


class BadInput(RcaError):
    """Bad user input. ``field`` names what is wrong, ``fix`` says how to mend it."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.field = field
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [f"{self.field}: {self.message}" if self.field else self.message]
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return " — ".join(parts)


class NotFound(BadInput):
    status = 404


class Ambiguous(BadInput):
    status = 422

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None,
                 candidates: list[str] | None = None) -> None:
        self.candidates = list(candidates or [])
        super().__init__(message, field=field, fix=fix)


class SourceError(RcaError):
    """A source failed. ``source`` names it; analyses turn this into ``no_data``."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class SourceTimeout(SourceError):
    pass


class StoreError(RcaError):
    pass
