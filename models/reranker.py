"""A learned re-ranker for root-cause candidates, trained on labelled incidents.

The graph ranker gives every incident an ordered list of candidate roots, each with a dict of
numeric features (``log_score``, ``recip_rank``, ``off_path``, ...; the set of names varies, a
missing name means 0). A user labels the true root. ``PairwiseReranker`` learns one linear
score ``((x - mean_) / scale_) @ coef_`` (higher = more likely the root) from within-incident
pairs, RankNet/RankSVM style: ``x_true - x_other -> 1`` and its mirror ``x_other - x_true -> 0``.

Choices:

* **No class weights.** Every pair is added in both directions, so the two classes are exactly
  balanced by construction; ``class_weight="balanced"`` would change nothing. What *is* uneven is
  incidents: a 20-candidate incident gives up to ``max_pairs`` pairs, a 3-candidate one 2. Each
  pair is weighted ``1 / pairs_in_its_incident`` (rescaled to mean 1, so ``C`` keeps its usual
  meaning), so every labelled incident counts the same.
* **Pairs are the true root against the first ``max_pairs`` others** in the base ranker's order:
  those near the top are the hard ones the re-ranker has to get right.
* **No intercept** (a constant cancels in a difference). Standardising by ``scale_`` makes the
  L2 penalty fair across features and ``coef_`` comparable per standard deviation
  (``top_features``); ``mean_`` cancels in differences and only shifts scores.
* **Single-candidate incidents carry no ranking information** and are dropped entirely (they add
  neither feature names nor standardisation statistics), so fitting with them equals fitting
  without them. NaN/±inf feature values are 0 before anything else.
* The solver (lbfgs) is deterministic; ``random_state`` is passed on for solvers that use it.

Learned state is JSON (``to_json``/``from_json``), never pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from rca.errors import BadInput

__all__ = ["PairwiseReranker", "accuracy_at_k", "stack_groups"]

Candidates = Sequence[Mapping[str, float]]
_KIND, _FORMAT = "pairwise_logistic", 1
_WEIGHTS_FIX = "re-train with `PairwiseReranker().fit(...)` and save its `to_json()` unchanged"


def stack_groups(groups: Sequence[Candidates],
                 features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """All candidates of all ``groups`` as one float matrix ``[n_candidates, n_features]``.

    Returns ``(X, offsets, names)``: group ``i`` is rows ``offsets[i]:offsets[i+1]``. ``names`` is
    ``features`` if given (other names are ignored) or else the sorted union of all names. Missing
    names, None, NaN and ±inf are 0. A value that is not a number raises ``BadInput(field="features")``.
    """
    names = tuple(features) if features is not None else tuple(sorted({k for g in groups for c in g for k in c}))
    col = {n: j for j, n in enumerate(names)}
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    r = 0
    for g in groups:
        for cand in g:
            for k, v in cand.items():
                j = col.get(k)
                if j is None or v is None:
                    continue
                try:
                    vals.append(float(v))
                except (TypeError, ValueError, OverflowError):
                    raise BadInput(f"feature {k!r} has the non-numeric value {v!r}", field="features",
                                   fix="give every feature as a number (missing features may be left out)") from None
                rows.append(r)
                cols.append(j)
            r += 1
    X = np.zeros((r, len(names)), dtype=np.float64)
    if rows:
        X[np.asarray(rows), np.asarray(cols)] = np.asarray(vals, dtype=np.float64)
    X[~np.isfinite(X)] = 0.0
    return X, offsets, names


class PairwiseReranker(BaseEstimator):
    """Linear scorer learned by logistic regression on within-incident pairwise differences
    (RankNet/RankSVM style): for every labelled incident, x_true - x_other -> 1 (and the negation -> 0)."""

    def __init__(self, C: float = 1.0, max_pairs: int = 30, random_state: int = 0) -> None:
        self.C = C
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, groups: Sequence[Candidates], truth: Sequence[int]) -> PairwiseReranker:
        """Learn from ``groups[i]`` (candidates of incident i, base order) whose true root is ``truth[i]``."""
        if not (isinstance(self.C, int | float) and math.isfinite(self.C) and self.C > 0):
            raise BadInput(f"C must be a positive number, got {self.C!r}", field="C", fix="use e.g. C=1.0")
        if isinstance(self.max_pairs, bool) or not isinstance(self.max_pairs, int) or self.max_pairs < 1:
            raise BadInput(f"max_pairs must be an integer >= 1, got {self.max_pairs!r}", field="max_pairs",
                           fix="use e.g. max_pairs=30")
        if len(groups) != len(truth):
            raise BadInput(f"{len(groups)} incidents but {len(truth)} labels", field="labels",
                           fix="give exactly one true-root index per incident")
        for i, (g, t) in enumerate(zip(groups, truth, strict=True)):
            if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < len(g):
                raise BadInput(f"incident {i}: true-root index {t!r} is not in 0..{len(g) - 1}", field="labels",
                               fix="label each incident with the index of its true root among its candidates")
        keep = [i for i, g in enumerate(groups) if len(g) >= 2]
        if not keep:
            raise BadInput("no labelled incident has two or more candidates, so there is nothing to learn",
                           field="labels", fix="label at least one incident with two or more candidates")
        X, offsets, names = stack_groups([groups[i] for i in keep])
        t = np.asarray([int(truth[i]) for i in keep], dtype=np.int64)
        mean = X.mean(axis=0)
        scale = np.where(np.ptp(X, axis=0) == 0, 1.0, X.std(axis=0))
        Z = (X - mean) / scale
        # every row's incident and position in it, then the true row of its incident
        sizes = np.diff(offsets)
        gid = np.repeat(np.arange(len(keep)), sizes)
        pos = np.arange(len(X)) - offsets[gid]
        rank_among_others = pos - (pos > t[gid])
        other = (pos != t[gid]) & (rank_among_others < self.max_pairs)
        true_row = (offsets[:-1] + t)[gid[other]]
        D = Z[true_row] - Z[other]
        n_pairs = np.bincount(gid[other], minlength=len(keep))
        w = 1.0 / n_pairs[gid[other]]
        w *= len(w) / w.sum()
        lr = LogisticRegression(C=float(self.C), fit_intercept=False, max_iter=1000,
                                random_state=self.random_state)
        lr.fit(np.vstack([D, -D]), np.r_[np.ones(len(D)), np.zeros(len(D))], sample_weight=np.r_[w, w])
        self.feature_names_ = names
        self.mean_, self.scale_ = mean, scale
        self.coef_ = lr.coef_.ravel().astype(np.float64)
        self.n_incidents_ = len(keep)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise BadInput("the re-ranker has no learned weights", field="weights",
                           fix="call fit() or load weights with PairwiseReranker.from_json()")

    def decision_function(self, candidates: Candidates) -> np.ndarray:
        """One score per candidate, higher = more likely the root. Unknown features are ignored,
        missing ones are 0 (before standardising), like NaN/±inf."""
        self._check_fitted()
        X, _, _ = stack_groups([candidates], self.feature_names_)
        return ((X - self.mean_) / self.scale_) @ self.coef_

    def order(self, candidates: Candidates) -> list[int]:
        """Candidate indices, best first; equal scores keep the input order."""
        return [int(i) for i in np.argsort(-self.decision_function(candidates), kind="stable")]

    def top_features(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` features with the largest ``|coef|`` (per standard deviation), ties by name."""
        self._check_fitted()
        pairs = sorted(zip(self.feature_names_, self.coef_.tolist(), strict=True), key=lambda p: (-abs(p[1]), p[0]))
        return pairs[: max(k, 0)]

    def to_json(self) -> dict[str, Any]:
        self._check_fitted()
        return {"kind": _KIND, "format": _FORMAT, "features": list(self.feature_names_),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "coef": self.coef_.tolist(),
                "C": float(self.C), "n_incidents": int(self.n_incidents_)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PairwiseReranker:
        """A fitted re-ranker from ``to_json()`` output; ``BadInput(field="weights")`` if it is not one."""
        def bad(msg: str) -> BadInput:
            return BadInput(msg, field="weights", fix=_WEIGHTS_FIX)

        if not isinstance(d, Mapping):
            raise bad(f"expected a JSON object, got {type(d).__name__}")
        if d.get("kind") != _KIND or d.get("format") != _FORMAT:
            raise bad(f"'kind'/'format' are {d.get('kind')!r}/{d.get('format')!r}, expected {_KIND!r}/{_FORMAT}")
        feats = d.get("features")
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats) or len(set(feats)) != len(feats):
            raise bad("'features' must be a list of distinct strings")
        arrays = {}
        for key in ("mean", "scale", "coef"):
            v = d.get(key)
            if (not isinstance(v, list) or len(v) != len(feats)
                    or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)):
                raise bad(f"'{key}' must be a list of {len(feats)} numbers, one per feature")
            arrays[key] = np.asarray(v, dtype=np.float64)
            if not np.isfinite(arrays[key]).all():
                raise bad(f"'{key}' holds a non-finite value")
        if (arrays["scale"] <= 0).any():
            raise bad("'scale' must be > 0 everywhere")
        C, n = d.get("C"), d.get("n_incidents")
        if isinstance(C, bool) or not isinstance(C, int | float) or not math.isfinite(C) or C <= 0:
            raise bad(f"'C' must be a positive number, got {C!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise bad(f"'n_incidents' must be an integer >= 1, got {n!r}")
        model = cls(C=float(C))
        model.feature_names_ = tuple(feats)
        model.mean_, model.scale_, model.coef_ = arrays["mean"], arrays["scale"], arrays["coef"]
        model.n_incidents_ = n
        return model


def accuracy_at_k(orders: Sequence[Sequence[int]], truth: Sequence[int], k: int = 1) -> float:
    """Fraction of incidents whose true index is among the first ``k`` of its order."""
    if len(orders) != len(truth) or not orders:
        raise BadInput(f"{len(orders)} orders and {len(truth)} labels", field="labels",
                       fix="give one order and one true-root index per incident, at least one incident")
    if k < 1:
        raise BadInput(f"k must be >= 1, got {k}", field="k", fix="use k=1 for top-1 accuracy")
    return sum(t in list(o)[:k] for o, t in zip(orders, truth, strict=True)) / len(orders)
