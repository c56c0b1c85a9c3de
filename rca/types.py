"""Core value types of the engine: what every stage passes to the next.

All types are frozen dataclasses. Units are part of the contract:

* times are UTC. ``Window`` bounds and ``Anomaly`` onsets are **unix seconds** (int);
  span and log timestamps are **unix nanoseconds** (int), as in OTLP.
* an ``EntityId`` is the string ``"kind:name"`` (``service:checkout``, ``pod:vllm-llama-0``,
  ``node:gpu-node-3``, ``gpu:gpu-node-3/2``, ``model:llama-3-70b``, ``tool:web-search``,
  ``db:vector-db``). In JSON an entity is always that string.
* a metric matrix (``MetricFrame``) holds ``values[N, T]`` float64 for N series over T
  timestamps; a missing sample is ``NaN``. Detectors work on the whole matrix at once.
* scores are "higher = more anomalous"; confidences are in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rca.errors import BadInput

__all__ = [
    "ENTITY_KINDS",
    "Anomaly",
    "Candidate",
    "EntityId",
    "Evidence",
    "Feedback",
    "Health",
    "Hypothesis",
    "Incident",
    "Inventory",
    "LogRecord",
    "MetricFrame",
    "Relation",
    "SeriesKey",
    "Snapshot",
    "Span",
    "Symptom",
    "Window",
    "entity",
    "entity_kind",
    "entity_name",
]

EntityId = str
"""``"kind:name"``; see :data:`ENTITY_KINDS` for the kinds the engine knows."""

ENTITY_KINDS = ("service", "pod", "node", "gpu", "model", "tool", "db", "endpoint")


def entity(kind: str, name: str) -> EntityId:
    """Build an ``EntityId``. ``kind`` must be one of :data:`ENTITY_KINDS`."""
    if kind not in ENTITY_KINDS:
        raise BadInput(f"unknown entity kind {kind!r}", field="entity",
                       fix=f"use one of {', '.join(ENTITY_KINDS)}")
    if not name:
        raise BadInput("entity name is empty", field="entity", fix="give a non-empty name")
    return f"{kind}:{name}"


def entity_kind(eid: EntityId) -> str:
    """``"pod:x"`` -> ``"pod"``."""
    return eid.split(":", 1)[0]


def entity_name(eid: EntityId) -> str:
    """``"pod:x"`` -> ``"x"``."""
    return eid.split(":", 1)[1] if ":" in eid else eid


@dataclass(frozen=True)
class Window:
    """A closed time range ``[start, end]`` in unix seconds (UTC), sampled every ``step`` s."""

    start: int
    end: int
    step: int = 15

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise BadInput(f"window step must be > 0, got {self.step}", field="step",
                           fix="use a positive number of seconds, e.g. 15")
        if self.end < self.start:
            raise BadInput(f"window end {self.end} is before start {self.start}", field="window",
                           fix="swap start and end")

    @property
    def duration(self) -> int:
        return self.end - self.start

    def timestamps(self) -> np.ndarray:
        """Aligned sample times (int64 unix seconds), ``start`` to ``end`` inclusive."""
        return np.arange(self.start, self.end + 1, self.step, dtype=np.int64)

    def contains(self, t: int) -> bool:
        return self.start <= t <= self.end


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One time series: a metric name and its label set (sorted ``(name, value)`` pairs)."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None, **kw: str) -> SeriesKey:
        merged = dict(labels or {}, **kw)
        return cls(name, tuple(sorted((str(k), str(v)) for k, v in merged.items())))

    def label(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def with_name(self, name: str, drop: Iterable[str] = (), **extra: str) -> SeriesKey:
        """A key with another name, some labels dropped and some added."""
        d = {k: v for k, v in self.labels if k not in set(drop)}
        d.update(extra)
        return SeriesKey.of(name, d)

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True, eq=False)
class MetricFrame:
    """The metric matrix: ``values[i, j]`` is series ``keys[i]`` at ``timestamps[j]``.

    ``timestamps`` is int64 unix seconds, strictly increasing. ``values`` is float64 with
    shape ``(len(keys), len(timestamps))``; NaN marks a missing sample. An empty frame
    (no series) is valid everywhere and means "no data", never "healthy".
    """

    keys: tuple[SeriesKey, ...]
    timestamps: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=np.int64)
        vals = np.asarray(self.values, dtype=np.float64)
        if vals.ndim != 2:
            vals = vals.reshape(len(self.keys), len(ts))
        if vals.shape != (len(self.keys), len(ts)):
            raise BadInput(f"values shape {vals.shape} != ({len(self.keys)}, {len(ts)})",
                           field="values", fix="one row per key, one column per timestamp")
        if len(ts) > 1 and np.any(np.diff(ts) <= 0):
            raise BadInput("timestamps are not strictly increasing", field="timestamps",
                           fix="sort the samples by time and drop duplicates")
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "keys", tuple(self.keys))

    @classmethod
    def empty(cls, timestamps: np.ndarray | Sequence[int] = ()) -> MetricFrame:
        ts = np.asarray(timestamps, dtype=np.int64)
        return cls((), ts, np.empty((0, len(ts))))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]

    def select(self, mask: np.ndarray | Callable[[SeriesKey], bool]) -> MetricFrame:
        """Rows where ``mask`` (bool array or predicate on the key) is true."""
        if callable(mask):
            mask = np.fromiter((bool(mask(k)) for k in self.keys), dtype=bool, count=len(self.keys))
        idx = np.flatnonzero(mask)
        return MetricFrame(tuple(self.keys[i] for i in idx), self.timestamps, self.values[idx])

    def between(self, start: int, end: int) -> MetricFrame:
        """Columns with ``start <= t <= end``: a read-only view, not a copy (timestamps are
        sorted, so the columns are one slice; an analysis cuts its window out of a large
        snapshot many times)."""
        lo = int(np.searchsorted(self.timestamps, start, side="left"))
        hi = int(np.searchsorted(self.timestamps, end, side="right"))
        values = self.values[:, lo:hi]
        values.flags.writeable = False
        return MetricFrame(self.keys, self.timestamps[lo:hi], values)

    def row(self, key: SeriesKey) -> np.ndarray:
        return self.values[self.keys.index(key)]

    @staticmethod
    def concat(frames: Sequence[MetricFrame]) -> MetricFrame:
        """Stack frames row-wise on the union of their timestamps (NaN where absent)."""
        frames = [f for f in frames if len(f.timestamps)]
        if not frames:
            return MetricFrame.empty()
        ts = np.unique(np.concatenate([f.timestamps for f in frames]))
        rows, keys = [], []
        for f in frames:
            block = np.full((len(f), len(ts)), np.nan)
            block[:, np.searchsorted(ts, f.timestamps)] = f.values
            rows.append(block)
            keys.extend(f.keys)
        return MetricFrame(tuple(keys), ts, np.vstack(rows) if rows else np.empty((0, len(ts))))


SpanStatus = Literal["unset", "ok", "error"]


@dataclass(frozen=True)
class Span:
    """One span. Ids are lowercase hex (trace 32 chars, span 16); times are unix ns.

    ``attributes`` are the span's own attributes (``gen_ai.*``, ``http.*``, ``error.type`` …);
    ``resource`` the resource attributes of its process (``service.name``, ``k8s.pod.name`` …).
    ``kind`` is the OTLP span kind in lowercase (``server``, ``client``, ``internal`` …).
    """

    trace_id: str
    span_id: str
    parent: str | None
    service: str
    name: str
    start_ns: int
    end_ns: int
    status: SpanStatus = "unset"
    kind: str = "internal"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    status_message: str = ""

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class LogRecord:
    """One log line. ``ts_ns`` unix ns; ``severity`` upper-case text (INFO, WARN, ERROR …)."""

    ts_ns: int
    entity: EntityId
    severity: str
    body: str
    trace_id: str | None = None
    span_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Relation:
    """A typed edge between two entities, read as "``src`` <relation> ``dst``".

    relations: ``calls`` (src sends requests to dst), ``runs_on`` (pod on node),
    ``uses`` (pod uses gpu), ``part_of`` (gpu in node), ``member_of`` (pod of a service or
    a model). Dependency direction is always src -> dst: a fault in dst can explain src.
    """

    src: EntityId
    relation: str
    dst: EntityId


@dataclass(frozen=True)
class Inventory:
    """What exists and how it is wired, from labels and configuration (not from calls)."""

    entities: Mapping[EntityId, Mapping[str, str]] = field(default_factory=dict)
    relations: tuple[Relation, ...] = ()

    def members(self, group: EntityId) -> list[EntityId]:
        return sorted({r.src for r in self.relations if r.relation == "member_of" and r.dst == group})

    def groups_of(self, member: EntityId) -> list[EntityId]:
        return sorted({r.dst for r in self.relations if r.relation == "member_of" and r.src == member})

    def merge(self, other: Inventory) -> Inventory:
        ents = {k: dict(v) for k, v in self.entities.items()}
        for k, v in other.entities.items():
            ents.setdefault(k, {}).update(v)
        rels = tuple(dict.fromkeys(self.relations + other.relations))
        return Inventory(ents, rels)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything one analysis sees, fetched once for one window.

    ``metrics`` holds raw series as the source stores them (counters cumulative, histogram
    buckets with ``le``). ``warnings`` name sources that were slow, down or lying; their
    signals are reported as ``no_data``, never as healthy.
    """

    window: Window
    metrics: MetricFrame
    spans: tuple[Span, ...] = ()
    logs: tuple[LogRecord, ...] = ()
    inventory: Inventory = field(default_factory=Inventory)
    warnings: tuple[str, ...] = ()


Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Anomaly:
    """A series that left its baseline: when (``onset``, ``peak`` unix s) and how much.

    ``score`` is the detector's raw score (for deviation detectors: baseline scale units,
    >= 0). ``level`` is that score calibrated against the series' own baseline to [0, 1]
    (NaN when not calibrated); ``rca.detect.LEVEL`` is the default flag threshold.
    ``baseline`` and ``observed`` are in the series' own unit (e.g. seconds for a latency
    quantile).
    """

    entity: EntityId
    series: SeriesKey
    kind: str
    onset: int
    peak: int
    score: float
    direction: Direction
    detector: str
    baseline: float = float("nan")
    observed: float = float("nan")
    level: float = float("nan")


EvidenceStatus = Literal["ok", "anomalous", "no_data"]


@dataclass(frozen=True)
class Evidence:
    """One checkable fact behind a hypothesis.

    ``kind``: ``metric`` | ``log`` | ``trace`` | ``change`` | ``graph``. ``ref`` points back
    to the raw thing: ``{"series": str, "start": int, "end": int}``, ``{"trace_ids": [...]}``,
    ``{"template": str, "examples": [...]}``, a plot URL …
    """

    kind: str
    entity: EntityId
    summary: str
    ref: Mapping[str, Any] = field(default_factory=dict)
    status: EvidenceStatus = "anomalous"
    score: float = 0.0


@dataclass(frozen=True)
class Hypothesis:
    """A ranked root-cause candidate with its evidence chain.

    ``path`` runs from ``root`` to the symptom entity along dependencies. ``checked`` lists
    signals looked at and found normal, ``no_data`` signals that could not be read, and
    ``unknown`` what the engine could not judge at all.
    """

    root: EntityId
    category: str
    score: float
    confidence: float
    path: tuple[EntityId, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    checked: tuple[str, ...] = ()
    no_data: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An entity the ranker considered, with the features it was ranked by (the ranker's
    "feature log"): what a learned re-ranker is trained on once a human names the true root.

    ``features`` are plain floats keyed by name (``log_score``, ``explained``, ``lateness``,
    ``kind_gpu``, ``cat_gpu_hw_fault`` ...); a name absent in one candidate means 0.
    ``score`` is the base ranker's score, ``category`` the category it would give."""

    entity: EntityId
    category: str
    score: float
    features: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Symptom:
    """What the user asked about: a signal of an entity, its baseline and observed value."""

    entity: EntityId
    signal: str
    series: SeriesKey | None = None
    baseline: float = float("nan")
    observed: float = float("nan")
    unit: str = ""


@dataclass(frozen=True)
class Incident:
    """The result of one analysis. ``id`` is stable once stored."""

    id: str
    question: str | None
    window: Window
    symptom: Symptom | None
    hypotheses: tuple[Hypothesis, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    checked: tuple[str, ...] = ()
    no_data: tuple[str, ...] = ()
    summary: str = ""
    created_at: int = 0
    # the ranker's pool, best first in the base ranker's order (empty for rankers without features)
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class Feedback:
    """A human verdict on an incident: confirm/reject hypothesis ``hypothesis_rank`` (1-based)
    or name the ``correct_root`` (and optionally ``correct_category``)."""

    incident_id: str
    verdict: Literal["confirm", "reject", "correct"]
    hypothesis_rank: int | None = None
    correct_root: EntityId | None = None
    correct_category: str | None = None
    note: str = ""
    author: str = ""
    at: int = 0


@dataclass(frozen=True)
class Health:
    """A source's health: ``ok`` | ``degraded`` | ``down``, with a human detail."""

    name: str
    status: Literal["ok", "degraded", "down"]
    detail: str = ""
    latency_s: float = float("nan")
