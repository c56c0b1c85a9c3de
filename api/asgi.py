"""``create_from_env()``: the app as ``rca serve --workers N`` starts it in each worker process.

``rca serve`` passes what is not a setting through the environment: ``RCA_SERVE_SOURCES``
(a JSON list of source URLs) and ``RCA_SERVE_AUTH`` (``0`` for ``--insecure-no-auth``, which
the CLI allows only on loopback). Everything else is ``Settings()`` (``RCA_*``).
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

__all__ = ["create_from_env"]


def create_from_env() -> FastAPI:
    import logging

    from api.app import create_app
    from connectors.sources import build_connectors
    from rca.settings import Settings
    from rca.wiring import build_engine, build_store

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the access log, as in `rca serve`
    settings = Settings()
    sources = json.loads(os.environ.get("RCA_SERVE_SOURCES") or "[]")
    connectors = build_connectors(sources, settings)
    engine = build_engine(settings, connectors, store=build_store(settings))
    return create_app(engine, settings, auth=os.environ.get("RCA_SERVE_AUTH", "1") != "0")
