"""The features the graph ranker logs for every candidate root (``Candidate.features``).

They are what a learned re-ranker (``models.reranker``) weighs, so they describe the
ranker's *reasons*, not the raw data: how far the entity deviates, whether something else
explains it, when it started relative to the others, where it sits in the graph, how many
sources (metrics, logs, traces) agree, what kind of entity it is and which category the rules
give it (a learned per-category prior). All are plain floats; a flag is 0 or 1; a feature that
does not apply is simply absent (read as 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rca.types import EntityId, entity_kind

__all__ = ["CandidateFacts", "features_of"]

MAX_HOPS = 6


@dataclass(frozen=True)
class CandidateFacts:
    """What the graph ranker decided about one candidate (inputs of ``features_of``)."""

    entity: EntityId
    category: str
    base_score: float  # the ranker's final score
    top_score: float  # the best candidate's final score
    base_rank: int  # 0-based position in the base order
    deviation: float  # the entity's best series score (robust deviation, before penalties)
    onset_known: bool
    lateness: float  # 0 = first onset among candidates, 1 = end of the window
    onset_order: float  # fraction of candidates that started strictly earlier
    roles: Mapping[str, float] = field(default_factory=dict)
    n_families: int = 0
    sources: frozenset[str] = frozenset()  # metrics / logs / traces with a significant series
    explained: bool = False
    off_path: bool = False
    cannot_carry: bool = False
    shared_explainer: bool = False
    change_near: bool = False
    intrinsic: bool = False
    is_symptom: bool = False
    hops: int | None = None  # dependency hops from the symptom, None = not reachable / no symptom
    n_dependents: int = 0
    n_dependencies: int = 0
    group_size: int = 1
    below_threshold: bool = False


def features_of(f: CandidateFacts) -> dict[str, float]:
    out: dict[str, float] = {
        "log_score": math.log1p(max(f.base_score, 0.0)),
        "rel_score": f.base_score / f.top_score if f.top_score > 0 else 0.0,
        "recip_rank": 1.0 / (f.base_rank + 1),
        "log_deviation": math.log1p(max(f.deviation, 0.0)),
        "onset_known": float(f.onset_known),
        "lateness": f.lateness if f.onset_known else 1.0,
        "onset_order": f.onset_order,
        "n_families": math.log1p(f.n_families),
        "n_sources": float(max(0, len(f.sources) - 1)),
        "explained": float(f.explained),
        "off_path": float(f.off_path),
        "cannot_carry": float(f.cannot_carry),
        "shared_explainer": float(f.shared_explainer),
        "change_near": float(f.change_near),
        "intrinsic": float(f.intrinsic),
        "is_symptom": float(f.is_symptom),
        "reachable": float(f.hops is not None),
        "hops": min(f.hops, MAX_HOPS) / MAX_HOPS if f.hops is not None else 1.0,
        "n_dependents": math.log1p(f.n_dependents),
        "n_dependencies": math.log1p(f.n_dependencies),
        "group_size": math.log1p(f.group_size - 1),
        "below_threshold": float(f.below_threshold),
        f"kind_{entity_kind(f.entity)}": 1.0,
    }
    for src in f.sources:
        out[f"source_{src}"] = 1.0
    for role, v in f.roles.items():
        if math.isfinite(v):
            out[f"role_{role}"] = math.log1p(max(v, 0.0))
    if f.category:
        out[f"cat_{f.category}"] = 1.0
    return {k: round(float(v), 6) for k, v in out.items()}
