"""Learning from feedback: labels from verdicts, training the re-ranker, the active model.

* ``label_of(incident, feedback)`` reads an incident's verdicts in order (the audit trail is
  every row of the feedback table; the label is what they add up to): ``confirm N`` and
  ``correct ROOT`` set the true root, a later verdict replaces an earlier one, ``reject N``
  clears a label that named hypothesis N's root and is remembered as a wrong root.
* ``train_ranker(store)`` fits ``models.reranker.PairwiseReranker`` on the labelled incidents
  whose true root is among their stored candidates, holding back a deterministic part (by
  incident id) it never trains on. The new version is stored either way, and activated only
  when it ranks the held-back incidents strictly better (AC@1, then mean rank) than the base
  ranker does. Both numbers are kept with the version.
* ``StoreReranker`` hands the active version to the graph ranker (cached a few seconds, so a
  rollback reaches a running server without a restart).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rca.errors import BadInput
from rca.protocols import ActiveReranker
from rca.types import EntityId, Feedback, Incident

__all__ = ["MIN_LABELS", "FixedReranker", "Label", "StoreReranker", "TrainReport", "collect_labels", "holdout_of",
           "label_of", "rank_summary", "train_ranker"]

MIN_LABELS = 20  # below this, held-back numbers say nothing
KIND = "pairwise_logistic"


@dataclass(frozen=True)
class Label:
    """What the verdicts on one incident add up to."""

    incident_id: str
    root: EntityId | None  # None: no confirmed or corrected root (yet)
    category: str | None
    verdict: str  # confirm | correct | reject | none: the verdict the label comes from
    author: str = ""
    at: int = 0
    rejected: tuple[EntityId, ...] = ()  # roots a human said are wrong


def label_of(incident: Incident, feedback: Iterable[Feedback]) -> Label:
    hyps = incident.hypotheses
    root = category = None
    verdict, author, at = "none", "", 0
    rejected: list[EntityId] = []
    for fb in sorted(feedback, key=lambda f: f.at):
        h = hyps[fb.hypothesis_rank - 1] if fb.hypothesis_rank and 0 < fb.hypothesis_rank <= len(hyps) else None
        if fb.verdict == "correct" and fb.correct_root:
            root, category = fb.correct_root, fb.correct_category or (h.category if h and h.root == fb.correct_root
                                                                      else None)
        elif fb.verdict == "confirm" and h is not None:
            root, category = h.root, fb.correct_category or h.category
        elif fb.verdict == "reject" and h is not None:
            if h.root not in rejected:
                rejected.append(h.root)
            if root == h.root:
                root = category = None
            else:
                continue
        else:
            continue
        verdict, author, at = fb.verdict, fb.author, fb.at
    if root is not None and root in rejected:
        rejected.remove(root)
    return Label(incident.id, root, category, verdict if root is not None or verdict == "reject" else "none",
                 author, at, tuple(rejected))


def collect_labels(store: Any) -> list[tuple[Incident, Label]]:
    """Every stored incident with feedback and what its verdicts add up to (oldest first)."""
    by_incident: dict[str, list[Feedback]] = {}
    for fb in store.list_feedback():
        by_incident.setdefault(fb.incident_id, []).append(fb)
    incidents = store.get_incidents(list(by_incident))
    return [(inc, label_of(inc, by_incident[inc.id])) for inc in incidents]


def holdout_of(incident_id: str, fraction: float) -> bool:
    """Deterministic: the same incident is always held back (or not), whatever else is labelled."""
    h = int.from_bytes(hashlib.sha256(f"holdout:{incident_id}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction


@dataclass(frozen=True)
class TrainReport:
    version: int | None  # None: nothing trained (too few labels)
    activated: bool
    reason: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    top_features: tuple[tuple[str, float], ...] = ()


def _groups(pairs: Sequence[tuple[Incident, Label]]) -> tuple[list[list[Mapping[str, float]]], list[int]]:
    groups, truth = [], []
    for inc, lab in pairs:
        ents = [c.entity for c in inc.candidates]
        groups.append([c.features for c in inc.candidates])
        truth.append(ents.index(lab.root))
    return groups, truth


def _ranks(orders: Sequence[Sequence[int]], truth: Sequence[int]) -> list[int]:
    return [list(o).index(t) + 1 for o, t in zip(orders, truth, strict=True)]


def rank_summary(ranks: Sequence[int]) -> dict[str, float]:
    """AC@1, AC@3 and mean rank of the true roots' 1-based ranks."""
    n = max(len(ranks), 1)
    return {"ac_at_1": round(sum(r == 1 for r in ranks) / n, 4), "ac_at_3": round(sum(r <= 3 for r in ranks) / n, 4),
            "mean_rank": round(sum(ranks) / n, 3)}


def train_ranker(store: Any, *, holdout: float = 0.25, min_labels: int = MIN_LABELS, c: float = 1.0,
                 note: str = "", labels: Sequence[tuple[Incident, Label]] | None = None) -> TrainReport:
    """Train a version on the labelled incidents in ``store`` (or ``labels``) and activate it
    only if it beats the base ranking on the held-back ones. See the module docstring."""
    from models.reranker import PairwiseReranker

    if not 0.0 < holdout < 1.0:
        raise BadInput(f"holdout must be between 0 and 1, got {holdout}", field="holdout", fix="use e.g. 0.25")
    pairs = list(labels if labels is not None else collect_labels(store))
    usable = [(i, lab) for i, lab in pairs if lab.root is not None and lab.root in {c.entity for c in i.candidates}]
    counts = {"labelled": sum(lab.root is not None for _, lab in pairs), "usable": len(usable),
              "root_not_in_candidates": sum(lab.root is not None for _, lab in pairs) - len(usable),
              "rejections_only": sum(lab.root is None and bool(lab.rejected) for _, lab in pairs)}
    if len(usable) < min_labels:
        return TrainReport(None, False, f"{len(usable)} usable labelled incidents, need {min_labels}: keep giving "
                           "feedback (confirm the right hypothesis or name the right root)", counts)
    train = [p for p in usable if not holdout_of(p[0].id, holdout)]
    held = [p for p in usable if holdout_of(p[0].id, holdout)]
    if len(held) < 5 or len(train) < 5:
        return TrainReport(None, False, f"{len(train)} training and {len(held)} held-back incidents: too few on one "
                           "side; label more incidents or change --holdout", counts)
    model = PairwiseReranker(C=c).fit(*_groups(train))
    hg, ht = _groups(held)
    base = rank_summary(_ranks([list(range(len(g))) for g in hg], ht))
    learned = rank_summary(_ranks([model.order(g) for g in hg], ht))
    better = (learned["ac_at_1"], -learned["mean_rank"]) > (base["ac_at_1"], -base["mean_rank"])
    metrics = {**counts, "train": len(train), "held_back": len(held), "holdout": holdout, "c": c,
               "base": base, "learned": learned}
    version = store.save_model(KIND, model.to_json(), metrics, activate=better, note=note)
    reason = (f"activated: on {len(held)} held-back incidents AC@1 {base['ac_at_1']:.2f} -> {learned['ac_at_1']:.2f}"
              if better else f"kept the current ranking: on {len(held)} held-back incidents the learned AC@1 "
              f"{learned['ac_at_1']:.2f} (mean rank {learned['mean_rank']}) does not beat the base "
              f"{base['ac_at_1']:.2f} ({base['mean_rank']})")
    return TrainReport(version, better, reason, metrics, tuple(model.top_features(8)))


@dataclass(frozen=True)
class FixedReranker:
    """One re-ranker, always (benchmarks, tests)."""

    active: ActiveReranker | None

    def get(self) -> ActiveReranker | None:
        return self.active


class StoreReranker:
    """The store's active version, re-read at most every ``ttl_s`` seconds. A store that fails
    keeps the last version it gave (ranking must not fail because the store blinked)."""

    def __init__(self, store: Any, ttl_s: float = 15.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._cached: ActiveReranker | None = None

    def get(self) -> ActiveReranker | None:
        from models.reranker import PairwiseReranker
        from rca.errors import StoreError

        with self._lock:
            if time.monotonic() - self._at < self.ttl_s:
                return self._cached
            self._at = time.monotonic()
            try:
                row = self.store.active_model()
            except StoreError:
                return self._cached
            if row is None:
                self._cached = None
            elif self._cached is None or self._cached.version != row["version"]:
                try:
                    self._cached = ActiveReranker(row["version"], PairwiseReranker.from_json(row["weights"]))
                except BadInput:
                    self._cached = None  # a damaged row must not break ranking: the base ranker
            return self._cached
