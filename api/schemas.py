"""Request and response schemas, split by direction (``*Create`` in, ``*Public`` out).

Entities are ``"kind:name"`` strings and times RFC 3339 UTC, as everywhere in ``rca`` JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "AlertAccepted", "AnswerPublic", "EvidencePublic", "FeedbackCreate", "FeedbackPublic", "HealthPublic",
    "HypothesisPublic", "IncidentCreate", "IncidentPage", "IncidentPublic", "IncidentSummary",
    "Interpreted", "Problem", "ScanCreate", "ScanJobStatus", "ScanPage", "ScanPublic", "SymptomPublic",
]

ENTITY = r"^[a-z_]+:.+$"
METRIC = r"^[A-Za-z0-9_:]+(\|[A-Za-z0-9_:]+)*$"  # names or name fragments joined by |, no regex syntax


def _bounded(d: datetime) -> datetime:
    """Naive times are UTC; times outside 1970–2200 are refused (no telemetry, datetime overflow)."""
    d = d if d.tzinfo is not None else d.replace(tzinfo=UTC)
    try:
        ts = d.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError("time out of range") from None
    if not 0 <= ts < 7_258_118_400:
        raise ValueError("time outside 1970-2200")
    return d


Time = Annotated[datetime, AfterValidator(_bounded)]
_ENTITY_EX = "pod:vllm-llama-3-70b-0"


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """``application/problem+json`` (RFC 9457)."""

    type: str = Field(examples=["https://rca.dev/problems/ambiguous"])
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="the request field at fault")
    fix: str | None = Field(None, description="how to mend the request")
    candidates: list[str] | None = Field(None, description="for ambiguous questions: what it could mean")
    errors: list[dict[str, str]] | None = None
    request_id: str | None = None


class Window(BaseModel):
    start: str
    end: str


class Interpreted(_Out):
    """What the engine understood the question to ask."""

    window: Window
    at: str | None
    signal: str | None = Field(examples=["latency"])
    statistic: str | None = Field(examples=["p99"])
    scope: list[str] = Field(default_factory=list, examples=[["service:api-gateway"]])
    tz: str = "UTC"
    metric: str | None = None
    intent: str | None = Field(None, examples=["why"])
    notes: list[str] = Field(default_factory=list)


class SymptomPublic(_Out):
    entity: str
    signal: str
    series: dict[str, Any] | None = None
    baseline: float | None = None
    observed: float | None = None
    unit: str = ""


class EvidencePublic(_Out):
    n: int = Field(description="1-based position among all evidence of the incident (plot URLs use it)")
    kind: str = Field(examples=["metric"])
    entity: str
    summary: str
    ref: dict[str, Any]
    status: Literal["ok", "anomalous", "no_data"] | str
    score: float | None = None
    plot_url: str | None = None


class HypothesisPublic(_Out):
    rank: int
    root: str = Field(examples=[_ENTITY_EX])
    category: str = Field(examples=["kv_cache_exhaustion"])
    score: float | None
    confidence: float | None = Field(description="0..1")
    path: list[str]
    evidence: list[EvidencePublic]
    checked: list[str]
    no_data: list[str]
    unknown: list[str]


class AnswerPublic(_Out):
    """The answer to a question (``GET /v1/ask``), also the shape of a stored incident."""

    incident_id: str
    question: str | None
    interpreted: Interpreted
    symptom: SymptomPublic | None
    hypotheses: list[HypothesisPublic]
    checked: list[str]
    no_data: list[str]
    summary: str
    links: dict[str, str] = Field(default_factory=dict)


class IncidentPublic(AnswerPublic):
    created_at: str
    feedback: list[FeedbackPublic] = Field(default_factory=list)


class IncidentSummary(_Out):
    id: str
    question: str | None
    created_at: str
    window: Window
    summary: str
    root: str | None = None
    category: str | None = None
    confidence: float | None = None


class IncidentPage(BaseModel):
    items: list[IncidentSummary]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class IncidentCreate(_In):
    """Analyse a window (``start``/``end``) or the time around ``at``; either may come from a
    ``question`` instead. ``scope`` restricts the symptom to entities."""

    question: str | None = Field(None, max_length=2000, examples=["why was p99 slow at 20:00?"])
    at: Time | None = Field(None, description="the instant to analyse (RFC 3339)")
    start: Time | None = None
    end: Time | None = None
    signal: str | None = Field(None, max_length=64, examples=["latency"])
    statistic: str | None = Field(None, max_length=32, examples=["p99"])
    metric: str | None = Field(None, max_length=200, pattern=METRIC, examples=["time_to_first_token"],
                               description="metric names (or parts) joined by |, narrowing the symptom")
    scope: list[str] = Field(default_factory=list, max_length=50,
                             description='entities, e.g. ["service:api-gateway"]')
    selector: str | None = Field(None, max_length=1000, examples=['{namespace="serving"}'],
                                 description="series selector passed to the metric sources")
    tz: str | None = Field(None, max_length=64, description="time zone for times in the question")
    now: Time | None = Field(None, description="answer as if asked at this time")

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"question": "why was p99 slow at 20:00?"},
                     {"start": "2026-11-20T19:45:00Z", "end": "2026-11-20T20:15:00Z", "signal": "errors",
                      "statistic": "error_ratio", "scope": ["service:api-gateway"]}]})


class FeedbackCreate(_In):
    """Confirm or reject hypothesis ``hypothesis_rank`` (1-based), or name the right root."""

    verdict: Literal["confirm", "reject", "correct"]
    hypothesis_rank: int | None = Field(None, ge=1, le=1000)
    correct_root: str | None = Field(None, pattern=ENTITY, max_length=300, examples=[_ENTITY_EX])
    correct_category: str | None = Field(None, max_length=64, examples=["kv_cache_exhaustion"])
    note: str = Field("", max_length=4000)
    author: str | None = Field(None, max_length=200, description="default: the API key's name")

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"verdict": "confirm", "hypothesis_rank": 1},
                     {"verdict": "correct", "correct_root": "gpu:gpu-node-2/3", "correct_category": "gpu_hw_fault",
                      "note": "XID 79 in dmesg"}]})


class FeedbackPublic(BaseModel):
    incident_id: str
    verdict: str
    hypothesis_rank: int | None
    correct_root: str | None
    correct_category: str | None
    note: str
    author: str
    at: str
    created: bool | None = Field(None, description="false when the same verdict was already stored")


class ScanCreate(_In):
    window: str = Field("1h", max_length=16, description="judge the last WINDOW against the time before it",
                        examples=["30m"])
    baseline: str = Field("3h", max_length=16, description="how much history before the window to compare with")
    min_level: float = Field(0.99, ge=0.0, le=1.0, description="report anomalies at or above this level")
    selector: str | None = Field(None, max_length=1000, examples=['{namespace="serving"}'],
                                 description="series selector passed to the metric sources")
    now: Time | None = Field(None, description="scan as if at this time")


class ScanPublic(_Out):
    id: str
    job: str
    status: str
    started_at: str
    finished_at: str | None
    params: dict[str, Any]
    result: dict[str, Any]


class ScanJobStatus(_Out):
    name: str
    trigger: str | None
    next_run: str | None = Field(None, description="RFC 3339; null when the scheduler is stopped")


class ScanPage(BaseModel):
    items: list[ScanPublic]
    next_cursor: str | None = None


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: list[dict[str, Any]] = Field(default_factory=list)


class AlertAccepted(BaseModel):
    """An Alertmanager payload stored for the bot's worker (202)."""

    queued: bool = Field(description="false when the same group state was queued before (a re-send)")
    duplicate: bool
    seq: int = Field(description="position in the alert queue")
    dedup_key: str


IncidentPublic.model_rebuild()
