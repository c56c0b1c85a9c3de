"""The seams of the engine: the only abstractions. Implementations live in ``connectors/``,
``models/``, ``rca/graph`` and ``rca/rank``; ``rca/wiring.py`` is the only place that names them.

Every protocol below is structural (``typing.Protocol``): a class fits by having the methods.
Contract tests (``tests/test_contracts.py``) run every registered implementation through the
same checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rca.graph import DependencyGraph
from rca.types import (
    Anomaly,
    EntityId,
    Feedback,
    Health,
    Hypothesis,
    Incident,
    MetricFrame,
    Snapshot,
    Symptom,
    Window,
)

__all__ = ["ActiveReranker", "Connector", "Detector", "GraphBuilder", "RankContext", "Ranker", "Reranker",
           "RerankerSource", "Store", "Thresholder"]


@runtime_checkable
class Connector(Protocol):
    """A source of telemetry (Prometheus, OTLP store, Loki, files, the simulator).

    ``fetch`` returns a (possibly partial) ``Snapshot`` for ``window``; ``selector`` is a
    PromQL-style series selector or ``None`` for everything the source knows. An empty
    result is an empty frame, never an error. A source that is down or slow raises
    ``rca.errors.SourceError`` after its own explicit timeout and retries; the caller turns
    that into ``no_data`` and a warning. HTTP goes through an injected ``httpx.Client``.
    """

    name: str

    def fetch(self, window: Window, selector: str | None = None) -> Snapshot: ...

    def check(self) -> Health: ...


@runtime_checkable
class Detector(Protocol):
    """Scores a metric matrix, scikit-learn style.

    * ``__init__`` only stores parameters (no I/O, no validation, no fitting).
    * ``fit(X)`` learns the baseline from ``X`` (float array ``[n_series, n_time]``, NaN =
      missing) and returns ``self``; learned state ends in ``_``.
    * ``anomaly_score(X)`` returns an array of X's shape, **higher = more anomalous**, >= 0,
      NaN where X is NaN; row i of X must be the same series as row i of the fit data.
      Scoring never mutates the detector.
    * with ``causal=True`` the score at column t uses only columns <= t (streaming).
    * ``get_params()`` returns the constructor parameters (JSON-serialisable).
    * ``random_state`` (where randomness is used) makes results deterministic.
    """

    def fit(self, X: np.ndarray) -> Detector: ...

    def anomaly_score(self, X: np.ndarray) -> np.ndarray: ...

    def get_params(self) -> dict[str, Any]: ...


@runtime_checkable
class Thresholder(Protocol):
    """Turns scores into flags; kept apart from scoring. ``fit(scores) -> self``,
    ``flag(scores) -> bool array`` of the same shape (NaN scores are never flagged)."""

    def fit(self, scores: np.ndarray) -> Thresholder: ...

    def flag(self, scores: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class GraphBuilder(Protocol):
    """Builds (part of) the dependency graph from a snapshot: spans (calls), service-graph
    metrics, inventory labels (pod -> node -> gpu, pod -> model), config hints. Partial
    graphs merge with ``DependencyGraph.merge``. An empty snapshot gives an empty graph."""

    def build(self, snapshot: Snapshot) -> DependencyGraph: ...


@dataclass(frozen=True, eq=False)
class RankContext:
    """Everything a ranker sees, in one object.

    ``signals`` is the derived metric matrix (rates, quantiles, gauges) with
    ``signal_entities[i]`` the entity of row i. ``baseline`` and ``incident`` are the two
    sub-windows (unix s) the deviation is measured between. ``anomalies`` come from the
    detectors; ``symptom`` is what the user asked about (may be ``None``: rank everything).
    ``log_templates[i]`` is the mined template of ``snapshot.logs[i]`` (empty: not mined yet).
    """

    snapshot: Snapshot
    signals: MetricFrame
    signal_entities: tuple[EntityId, ...]
    anomalies: tuple[Anomaly, ...]
    graph: DependencyGraph
    baseline: Window
    incident: Window
    symptom: Symptom | None = None
    changes: tuple[Any, ...] = ()  # rca.signals.Change events (deploys, config changes)
    resolution: np.ndarray | None = None  # per signal row: smallest meaningful change, 0 = unknown
    params: Mapping[str, Any] = field(default_factory=dict)
    log_templates: tuple[str, ...] = ()


@runtime_checkable
class Ranker(Protocol):
    """``rank(context)`` returns hypotheses sorted by score (best first), one per root
    entity, with evidence, path, checked and no_data filled in. Deterministic.

    A ranker that scores the signals itself and never reads ``context.anomalies`` says so with
    a class attribute ``needs_anomalies = False``; the engine then skips running the detectors
    for it (they are ~40 % of an analysis). Absent, the engine assumes ``True``.

    A ranker that logs the features of its candidates (``rca.types.Candidate``, what a learned
    re-ranker trains on) also has ``rank_candidates(context) -> (hypotheses, candidates)``;
    the engine then stores the candidates with the incident."""

    name: str

    def rank(self, context: RankContext) -> list[Hypothesis]: ...


@runtime_checkable
class Reranker(Protocol):
    """A learned scorer over ``Candidate.features`` (``models.reranker``): higher
    ``decision_function`` = more likely the root; ``order`` is best first, stable on ties."""

    def decision_function(self, candidates: Sequence[Mapping[str, float]]) -> np.ndarray: ...

    def order(self, candidates: Sequence[Mapping[str, float]]) -> list[int]: ...


@dataclass(frozen=True)
class ActiveReranker:
    """The re-ranker in use and its version in the store (recorded with every incident)."""

    version: int
    model: Reranker


@runtime_checkable
class RerankerSource(Protocol):
    """Where a ranker gets the active re-ranker; ``None``: rank with the base ranker alone.
    Called once per analysis, so an implementation caches (see ``rca.learn.StoreReranker``)."""

    def get(self) -> ActiveReranker | None: ...


@runtime_checkable
class Store(Protocol):
    """Durable state: incidents (with hypotheses and evidence) and feedback.
    SQLAlchemy Core; SQLite by default, PostgreSQL by URL; JSON, never pickle."""

    def save_incident(self, incident: Incident) -> str: ...

    def get_incident(self, incident_id: str) -> Incident: ...

    def list_incidents(self, limit: int = 50, before: str | None = None) -> list[Incident]: ...

    def add_feedback(self, feedback: Feedback) -> bool: ...

    def list_feedback(self, incident_id: str | None = None) -> list[Feedback]: ...
