"""Embedding drift of texts (prompts, log templates): has *what* is being asked changed?

``embedding_drift(baseline_texts, current_texts)`` embeds both samples with
``models.embeddings.Embedder`` (MiniLM when installed, hashed n-grams otherwise; vectors are
unit length) and reports:

* ``centroid_distance`` — 1 - cosine(mean baseline vector, mean current vector): how far the
  "average topic" moved (0 = same direction);
* ``mmd2`` and ``p_value`` — the (biased) squared maximum mean discrepancy with an RBF kernel
  on the unit vectors (``2σ²`` = median squared pairwise distance of the pooled sample), tested by
  permuting the pooled sample ``n_permutations`` times with ``random_state``. It catches
  changes of shape (a new cluster of prompts) that leave the centroid in place;
* ``outliers`` — the current texts farthest from *any* baseline text (1 - nearest-neighbour
  cosine similarity), farthest first, near-duplicates skipped: examples a human can read.

Samples are capped at ``max_samples`` per side (random subsample with ``random_state``), so
cost is bounded: the kernel is at most ``2·max_samples`` square.

Severity: ``no_data`` when a side has no non-blank text (no exception: the engine reports
"could not check"); ``none`` when ``p_value >= alpha``; else ``significant`` when the
centroid moved by at least ``CENTROID_SIGNIFICANT`` and ``moderate`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.drift import DriftFinding, Severity
from models.embeddings import Embedder
from rca.errors import BadInput

__all__ = ["CENTROID_SIGNIFICANT", "EmbeddingDrift", "embedding_drift"]

CENTROID_SIGNIFICANT = 0.05


@dataclass(frozen=True)
class EmbeddingDrift:
    """Result of ``embedding_drift`` (see the module doc). ``outliers`` are ``(text, distance)``."""

    centroid_distance: float
    mmd2: float
    p_value: float
    n_baseline: int
    n_current: int
    outliers: tuple[tuple[str, float], ...]
    severity: Severity
    backend: str

    def finding(self, feature: str = "prompt_embedding") -> DriftFinding:
        """As a ``DriftFinding`` (method ``embedding``, statistic = centroid distance)."""
        return DriftFinding(feature, "embedding", self.centroid_distance,
                            None if math.isnan(self.p_value) else self.p_value,
                            {"n": self.n_baseline}, {"n": self.n_current}, self.severity, "texts",
                            {"mmd2": self.mmd2, "backend": self.backend,
                             "outliers": [t for t, _ in self.outliers]})


def _texts(x: Sequence[str], name: str) -> list[str]:
    if isinstance(x, (str, bytes)):
        raise BadInput("expected a list of texts, got one string", field=name, fix="wrap it in a list")
    return [str(t) for t in x if t is not None and str(t).strip()]


def _cap(texts: list[str], cap: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= cap:
        return texts
    keep = np.sort(rng.choice(len(texts), size=cap, replace=False))
    return [texts[i] for i in keep]


def _outliers(cur: list[str], to_base: np.ndarray, among: np.ndarray, n: int,
              near_duplicate: float = 0.9) -> tuple[tuple[str, float], ...]:
    """The ``n`` current texts farthest from their nearest baseline text, skipping texts that
    are near-duplicates (cosine >= ``near_duplicate``) of one already chosen, so the examples
    show different kinds of new input rather than one kind n times."""
    far = 1.0 - to_base.max(axis=1)
    chosen: list[int] = []
    for i in np.argsort(-far, kind="stable"):
        if len(chosen) >= n:
            break
        if not chosen or among[i, chosen].max() < near_duplicate:
            chosen.append(int(i))
    return tuple((cur[i], float(far[i])) for i in chosen)


def embedding_drift(baseline_texts: Sequence[str], current_texts: Sequence[str], embedder: Embedder | None = None,
                    max_samples: int = 300, n_permutations: int = 500, n_examples: int = 5,
                    alpha: float = 0.01, random_state: int = 0) -> EmbeddingDrift:
    """Compare two samples of texts (see the module doc). Deterministic given ``random_state``."""
    if max_samples < 2:
        raise BadInput(f"max_samples must be >= 2, got {max_samples}", field="max_samples", fix="use e.g. 300")
    rng = np.random.default_rng(random_state)
    base = _cap(_texts(baseline_texts, "baseline_texts"), max_samples, rng)
    cur = _cap(_texts(current_texts, "current_texts"), max_samples, rng)
    emb = embedder if embedder is not None else Embedder()
    if not base or not cur:
        return EmbeddingDrift(math.nan, math.nan, math.nan, len(base), len(cur), (), "no_data", emb.backend)
    vb = np.asarray(emb.encode(base), dtype=np.float64)
    vc = np.asarray(emb.encode(cur), dtype=np.float64)
    backend = emb.backend_used if hasattr(emb, "backend_used") else str(getattr(emb, "backend", "?"))

    mb, mc = vb.mean(axis=0), vc.mean(axis=0)
    denom = np.linalg.norm(mb) * np.linalg.norm(mc)
    centroid = float(1.0 - mb @ mc / denom) if denom > 0 else 0.0

    pooled = np.concatenate([vb, vc])
    sims = np.clip(pooled @ pooled.T, -1.0, 1.0)
    d2 = np.maximum(2.0 - 2.0 * sims, 0.0)  # squared distance between unit vectors
    off = d2[~np.eye(len(pooled), dtype=bool)]
    med = float(np.median(off)) if off.size else 0.0
    K = np.exp(-d2 / (med if med > 0 else 1.0))
    nb, nc = len(vb), len(vc)
    sign = np.concatenate([np.full(nb, 1.0 / nb), np.full(nc, -1.0 / nc)])
    mmd2 = float(sign @ K @ sign)
    perms = np.stack([rng.permutation(sign) for _ in range(max(int(n_permutations), 0))]) \
        if n_permutations > 0 else np.zeros((0, nb + nc))
    null = ((perms @ K) * perms).sum(axis=1)
    p_value = float((1 + np.sum(null >= mmd2 - 1e-12)) / (1 + len(null)))
    outliers = _outliers(cur, sims[nb:, :nb], sims[nb:, nb:], n_examples)

    if p_value >= alpha:
        severity: Severity = "none"
    else:
        severity = "significant" if centroid >= CENTROID_SIGNIFICANT else "moderate"
    return EmbeddingDrift(centroid, mmd2, p_value, nb, nc, tuple(outliers), severity, backend)
