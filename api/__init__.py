"""The REST API (FastAPI app factory, routes, auth, incident bot, OTLP receivers).

Not built yet: the REST issue adds ``create_app(engine, settings)`` here. The package ships now
so the distribution's layout is the one DESIGN.md pins.
"""

__all__: list[str] = []
