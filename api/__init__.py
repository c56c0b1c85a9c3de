"""The REST API: ``create_app(engine, settings)`` (FastAPI), auth, problem responses, the OTLP
receivers. Routes live in ``api/routes_*.py``; see ``api/app.py`` for the layout.
"""

from api.app import create_app

__all__ = ["create_app"]
