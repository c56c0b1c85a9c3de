"""Log anomaly scoring on templates: bursts, new templates, error rates, semantic outliers.

Everything works on *templates*, not lines: the miner (``models.log_templates``) is fitted on
baseline and incident bodies together so both windows share one vocabulary, then

* ``template_rates`` counts lines per template and time bin (one ``np.add.at``, no line loop);
* ``new`` / ``burst``: a template absent (``new``) or rare (``burst``) in the baseline whose
  incident count exceeds what the baseline rate predicts for the incident duration. The score
  is a Poisson-style excess ``(observed - expected) / sqrt(expected + 1)``;
* ``error_rate``: the same excess for templates that are error-ish — most of their lines carry
  an error severity, or the template text holds an error word (``error``, ``exception``,
  ``failed``, ``timeout``, ``refused`` …) — at a lower bar than plain bursts, because an error
  template doubling matters more than an INFO template doubling;
* ``semantic_outlier``: incident templates unseen in the baseline whose embedding
  (``models.embeddings.Embedder``) is a novelty for a ``LocalOutlierFactor(novelty=True)``
  fitted on the baseline templates' embeddings: a message *unlike* anything the service said
  before, even when rare. Score: LOF's outlier factor (``-score_samples``, ~1 for inliers);
  flagged when it exceeds the factor of every baseline template (see ``_semantic_outliers``).

Every finding carries up to ``max_examples`` example lines and the trace ids of its incident
lines, so the engine can jump from a template to traces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.log_templates import LogTemplateMiner, template_id
from rca.errors import BadInput
from rca.types import LogRecord

__all__ = ["ERROR_SEVERITIES", "TemplateFinding", "score_log_templates", "template_rates"]

ERROR_SEVERITIES = frozenset({"ERROR", "ERR", "FATAL", "CRITICAL", "CRIT", "SEVERE", "ALERT", "EMERG",
                              "EMERGENCY", "PANIC"})
_ERROR_WORDS = re.compile(
    r"\b(?:error|errors|exception|fail|failed|failure|failing|fatal|panic|timeout|timed out|refused|denied|"
    r"unreachable|unavailable|abort|aborted|killed|oom|out of memory|traceback|crash|crashed|"
    r"corrupt|corrupted|cannot|can't|unable)\b", re.I)


@dataclass(frozen=True)
class TemplateFinding:
    """One anomalous template. ``kind``: ``new`` | ``burst`` | ``error_rate`` | ``semantic_outlier``.

    ``count`` / ``baseline_count`` are lines in the incident / baseline window; ``score`` is
    higher = more anomalous (see the module doc per kind); ``examples`` are incident lines,
    ``trace_ids`` the distinct trace ids of its incident lines, ``entities`` their entities.
    """

    template: str
    template_id: str
    kind: str
    count: int
    baseline_count: int
    score: float
    examples: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()


def template_rates(ts_ns: Sequence[int] | np.ndarray, template_ids: Sequence[str] | np.ndarray,
                   bins: int | Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines per template and time bin: ``(templates, counts[n_templates, n_bins])``.

    ``bins`` is a number of equal bins over ``[min(ts), max(ts)]`` or the bin edges in ns
    (``n_bins + 1`` increasing values; lines outside the edges are dropped, the last bin is
    closed). ``templates`` is the sorted unique template ids, the row order of ``counts``.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    ids = np.asarray(template_ids, dtype=object)
    if ts.shape != ids.shape:
        raise BadInput(f"{ts.size} timestamps but {ids.size} template ids", field="template_ids",
                       fix="give one template id per timestamp")
    if np.ndim(bins) == 0:
        n_bins = int(bins)  # type: ignore[arg-type]
        if n_bins <= 0:
            raise BadInput(f"bins must be > 0, got {n_bins}", field="bins", fix="use a positive bin count")
        lo, hi = (int(ts.min()), int(ts.max())) if ts.size else (0, 1)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, n_bins + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise BadInput("bin edges must be >= 2 strictly increasing values", field="bins",
                           fix="pass sorted unique edges in unix ns, or a bin count")
    n_bins = edges.size - 1
    templates, row = np.unique(ids.astype(str), return_inverse=True) if ids.size else (np.array([], str),
                                                                                      np.array([], int))
    col = np.searchsorted(edges, ts, side="right") - 1
    col[ts == edges[-1]] = n_bins - 1
    ok = (col >= 0) & (col < n_bins)
    counts = np.zeros((templates.size, n_bins), dtype=np.int64)
    np.add.at(counts, (row[ok], col[ok]), 1)
    return templates, counts


def _frame(records: Sequence[LogRecord], window: str) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": np.fromiter((r.ts_ns for r in records), dtype=np.int64, count=len(records)),
        "entity": [r.entity for r in records],
        "severity": [str(r.severity or "").upper() for r in records],
        "body": [str(r.body) for r in records],
        "trace_id": [r.trace_id or "" for r in records],
        "window": window,
    })


def _duration(ts: np.ndarray) -> float:
    return float(ts.max() - ts.min()) if ts.size > 1 else 0.0


def score_log_templates(
    baseline: Sequence[LogRecord],
    incident: Sequence[LogRecord],
    *,
    miner: LogTemplateMiner | None = None,
    embedder: object | None = None,
    min_count: int = 3,
    burst_score: float = 3.0,
    error_score: float = 2.0,
    max_examples: int = 3,
    n_neighbors: int = 5,
    min_ratio: float = 2.0,
    templates: Sequence[str] | None = None,
) -> list[TemplateFinding]:
    """Anomalous templates of ``incident`` against ``baseline``, highest score first.

    ``miner`` defaults to ``LogTemplateMiner()``; ``embedder`` (``models.embeddings.Embedder``)
    enables semantic outliers when given. ``min_count`` incident lines are needed for a
    ``new``/``burst``/``error_rate`` finding; a ``burst`` or ``error_rate`` must also be at least
    ``min_ratio`` x the baseline rate (a busy template that grows with traffic is not a burst). Window durations come from the records' own time
    spans (equal durations are assumed when a window has fewer than two lines).

    ``templates``: the template of every line of ``baseline`` then ``incident``, already mined
    by the caller *on exactly these lines in this order* (what ``miner.fit_transform`` would
    return); the lines are then not mined again.
    """
    if not incident:
        return []
    df = pd.concat([_frame(baseline, "base"), _frame(incident, "inc")], ignore_index=True)
    if templates is not None:
        if len(templates) != len(df):
            raise BadInput(f"{len(templates)} templates for {len(df)} log lines", field="templates",
                           fix="give one template per baseline and incident line, in that order")
        df["template"] = list(templates)
    else:
        df["template"] = (miner or LogTemplateMiner()).fit_transform(df["body"].tolist())
    base_ts, inc_ts = df.loc[df.window == "base", "ts"].to_numpy(), df.loc[df.window == "inc", "ts"].to_numpy()
    d_base, d_inc = _duration(base_ts), _duration(inc_ts)
    ratio = d_inc / d_base if d_base > 0 and d_inc > 0 else 1.0

    g = df.groupby(["template", "window"]).size().unstack(fill_value=0).reindex(columns=["base", "inc"],
                                                                                  fill_value=0)
    err_share = df.assign(e=df.severity.isin(ERROR_SEVERITIES)).groupby("template")["e"].mean()
    expected = g["base"].to_numpy() * ratio
    excess = (g["inc"].to_numpy() - expected) / np.sqrt(expected + 1.0)
    stats = pd.DataFrame({"base": g["base"], "inc": g["inc"], "excess": excess}, index=g.index)
    stats["errorish"] = (err_share.reindex(stats.index) >= 0.5) | stats.index.to_series().str.contains(
        _ERROR_WORDS)

    hits: list[tuple[str, str, float]] = []
    enough = (stats["inc"] >= min_count) & (stats["inc"] >= min_ratio * expected)
    for t, row in stats[enough & (stats["excess"] >= burst_score)].iterrows():
        hits.append((str(t), "new" if row["base"] == 0 else "burst", float(row["excess"])))
    for t, row in stats[enough & stats["errorish"] & (stats["excess"] >= error_score)].iterrows():
        hits.append((str(t), "error_rate", float(row["excess"])))
    if embedder is not None:
        hits.extend(_semantic_outliers(stats, embedder, n_neighbors))

    inc = df[df.window == "inc"]
    by_t = inc.groupby("template")
    examples = by_t["body"].apply(lambda s: tuple(dict.fromkeys(s))[:max_examples])
    traces = by_t["trace_id"].apply(lambda s: tuple(x for x in dict.fromkeys(s) if x))
    entities = by_t["entity"].apply(lambda s: tuple(dict.fromkeys(s)))
    out = [TemplateFinding(t, template_id(t), kind, int(stats.at[t, "inc"]), int(stats.at[t, "base"]),
                           round(score, 4), examples.get(t, ()), traces.get(t, ()), entities.get(t, ()))
           for t, kind, score in hits]
    return sorted(out, key=lambda f: (-f.score, f.kind, f.template))


def _semantic_outliers(stats: pd.DataFrame, embedder: object, n_neighbors: int) -> list[tuple[str, str, float]]:
    """Incident-only templates that LOF (fitted on baseline templates) calls novelties."""
    from sklearn.neighbors import LocalOutlierFactor

    base_t = stats.index[stats["base"] > 0].tolist()
    new_t = stats.index[(stats["base"] == 0) & (stats["inc"] > 0)].tolist()
    if len(base_t) < 3 or not new_t:
        return []
    vecs = embedder.encode(base_t + new_t)  # type: ignore[attr-defined]
    lof = LocalOutlierFactor(n_neighbors=min(n_neighbors, len(base_t) - 1), novelty=True)
    lof.fit(vecs[: len(base_t)])
    new_vecs = vecs[len(base_t):]
    factor = -lof.score_samples(new_vecs)
    # sklearn's fixed cut (factor > 1.5) never fires on sentence/n-gram vectors, where every
    # factor is close to 1; the bar is instead the most outlying baseline template's own factor
    flagged = factor > float(np.max(-lof.negative_outlier_factor_))
    return [(t, "semantic_outlier", float(f)) for t, f, hit in zip(new_t, factor, flagged, strict=True) if hit]
