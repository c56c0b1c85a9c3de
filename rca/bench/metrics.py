"""Root-cause ranking metrics.

AC@k (accuracy at k) with the multi-root convention of PyRCA/CIRCA/RCAEval:
``|top-k ∩ truths| / min(k, #truths)`` — with one true root cause the usual 0/1 hit.
Avg@5 is the mean of AC@1..AC@5. Duplicate names in a ranking count once (first place).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rca.errors import BadInput

__all__ = ["KS", "METRIC_NAMES", "ac_at_k", "aggregate", "avg_at_5", "canonical_fault",
           "case_scores", "chance_ac_at_k"]

KS = (1, 2, 3, 4, 5)
METRIC_NAMES = ("AC@1", "AC@2", "AC@3", "AC@4", "AC@5", "Avg@5")


def _truths(truths: Iterable[str]) -> list[str]:
    t = list(dict.fromkeys(truths))
    if not t:
        raise BadInput("no true root cause given", field="truths",
                       fix="label the case with root_cause_service (or root_cause_services)")
    return t


def ac_at_k(ranked: Sequence[str], truths: Sequence[str], k: int) -> float:
    """``|top-k(ranked) ∩ truths| / min(k, #truths)``, in [0, 1]."""
    if k < 1:
        raise BadInput(f"k must be >= 1, got {k}", field="k", fix="use k = 1 .. 5")
    t = _truths(truths)
    top = list(dict.fromkeys(ranked))[:k]
    return len(set(top) & set(t)) / min(k, len(t))


def avg_at_5(ranked: Sequence[str], truths: Sequence[str]) -> float:
    """Mean of AC@1 .. AC@5."""
    return sum(ac_at_k(ranked, truths, k) for k in KS) / len(KS)


def case_scores(ranked: Sequence[str], truths: Sequence[str]) -> dict[str, float]:
    """``{"AC@1": .., ..., "AC@5": .., "Avg@5": ..}`` for one case."""
    out = {f"AC@{k}": ac_at_k(ranked, truths, k) for k in KS}
    out["Avg@5"] = sum(out[f"AC@{k}"] for k in KS) / len(KS)
    return out


def aggregate(scores: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over cases, plus ``"cases"`` (their number; 0 -> all metrics 0)."""
    rows = list(scores)
    out: dict[str, float] = {"cases": len(rows)}
    for m in METRIC_NAMES:
        out[m] = sum(r.get(m, 0.0) for r in rows) / len(rows) if rows else 0.0
    return out


def chance_ac_at_k(n_candidates: int, n_truths: int, k: int) -> float:
    """Expected AC@k of a uniformly random order of ``n_candidates`` (all truths among them)."""
    if n_candidates < 1 or n_truths < 1:
        return 0.0
    kk = min(k, n_candidates)
    return kk * n_truths / n_candidates / min(k, n_truths)



# fault words used by public benchmarks and chaos tools -> the category vocabulary above
_FAULT_WORDS = (
    ("network_loss", ("loss", "packet_loss", "drop")),
    ("network_delay", ("delay", "latency", "network_delay", "slow")),
    ("socket", ("socket", "sockets", "connection", "port")),
    ("disk", ("disk", "io", "fs", "filesystem")),
    ("memory", ("mem", "memory", "oom", "leak")),
    ("cpu", ("cpu", "contention", "consumed", "hog", "stress")),
    ("code_error", ("exception", "return", "code", "error", "f1", "f2", "f3", "f4", "f5", "bug")),
)


def canonical_fault(label: str | None) -> str | None:
    """The category a case's ``fault`` label names (``cpu_contention`` -> ``cpu``,
    ``delay`` -> ``network_delay``, ``exception`` -> ``code_error``), ``None`` when unknown."""
    if not label:
        return None
    words = set(str(label).lower().replace("-", "_").split("_")) | {str(label).lower()}
    for cat, keys in _FAULT_WORDS:
        if words & set(keys):
            return cat
    return None
