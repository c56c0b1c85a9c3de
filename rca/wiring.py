"""The composition root: the only module that names concrete classes.

``build_engine(settings, connectors)`` picks the ranker from ``RANKERS`` by name, opens the
store and returns an ``Engine``. Registries are plain dicts so plugins can add to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from models import DETECTORS, THRESHOLDERS
from rca.engine import Engine
from rca.errors import BadInput
from rca.graph.builders import BUILDERS
from rca.protocols import Connector, Store
from rca.rank import RANKERS
from rca.settings import Settings

__all__ = ["BUILDERS", "DETECTORS", "RANKERS", "THRESHOLDERS", "attach_reranker", "build_engine", "build_ranker",
           "build_store"]


def build_ranker(settings: Settings, store: Store | None = None):
    """The ranker named by ``settings.ranker``; with a store (and ``settings.reranker``) it uses
    the store's active learned re-ranker, if the ranker takes one."""
    try:
        cls = RANKERS[settings.ranker]
    except KeyError:
        raise BadInput(f"unknown ranker {settings.ranker!r}", field="ranker",
                       fix=f"set RCA_RANKER to one of {', '.join(sorted(RANKERS))}") from None
    ranker = cls(max_hypotheses=settings.max_hypotheses)
    if store is not None:
        attach_reranker(ranker, store, settings)
    return ranker


def attach_reranker(ranker, store: Store, settings: Settings) -> None:
    """Let ``ranker`` (if it takes a re-ranker and has none) use ``store``'s active version."""
    if settings.reranker and getattr(ranker, "reranker", False) is None and hasattr(store, "active_model"):
        from rca.learn import StoreReranker

        ranker.reranker = StoreReranker(store)


def build_store(settings: Settings) -> Store:
    from rca.store import SqlStore

    return SqlStore.open(settings.resolved_database_url())


def build_engine(settings: Settings, connectors: Sequence[Connector] = (), store: Store | None = None) -> Engine:
    return Engine(connectors, build_ranker(settings, store), store=store,
                  graph_builders=[cls() for cls in BUILDERS.values()],
                  incident_before_s=settings.incident_before_s, incident_after_s=settings.incident_after_s,
                  baseline_s=settings.baseline_s, max_window_s=settings.max_window_s)
