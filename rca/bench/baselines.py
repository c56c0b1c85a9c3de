"""Reference rankers for benchmarks: what a new ranker has to beat.

All take a :class:`connectors.files.Case` with an ``inject_time`` and return
``[(service, score, best_metric_column), ...]`` best first (ties by service name). The
normal period is ``time < inject_time``, the anomalous one ``time >= inject_time``.

* ``baro_rank`` — BARO's robust deviation: per metric, max over the anomalous rows of
  ``|x - median_normal| / IQR_normal``; a metric whose normal IQR is 0 scores 0. Values are
  forward-filled, remaining gaps are 0. A service scores as its best metric. This is the
  "simple robust-deviation baseline" of the data README.
* ``nsigma_rank`` — the same with ``|x - mean_normal| / std_normal`` (population std; a
  normal std of ~0 scores 0).
* ``random_rank`` — services in a seeded random order (the chance line).
"""

from __future__ import annotations

import numpy as np

from connectors.files import Case, column_name
from rca.errors import BadInput

__all__ = ["baro_rank", "nsigma_rank", "random_rank", "robust_scores", "sigma_scores"]

Ranking = list[tuple[str, float, str]]


def _split(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(normal, anomalous) value blocks ``[N, T]``, forward-filled with gaps as 0."""
    if case.inject_time is None:
        raise BadInput(f"{case.path} has no inject_time.txt", field="inject_time",
                       fix="write the fault start (unix seconds) into inject_time.txt")
    frame = case.snapshot.metrics
    vals = frame.values
    if vals.size:
        # forward fill along time, vectorised: index of the last valid column so far
        valid = ~np.isnan(vals)
        idx = np.where(valid, np.arange(vals.shape[1]), 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        vals = np.take_along_axis(vals, idx, axis=1)
        vals = np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0)
    normal = frame.timestamps < case.inject_time
    if not normal.any() or normal.all():
        raise BadInput(f"inject_time {case.inject_time} leaves no {'normal' if not normal.any() else 'anomalous'} "
                       f"rows in {case.path}", field="inject_time",
                       fix="inject_time must fall inside the metrics' time range")
    return vals[:, normal], vals[:, ~normal]


def robust_scores(case: Case) -> np.ndarray:
    """BARO score of every metric row of ``case.snapshot.metrics`` (>= 0)."""
    normal, anomalous = _split(case)
    med = np.median(normal, axis=1)
    q75, q25 = np.percentile(normal, [75, 25], axis=1)
    iqr = q75 - q25
    dev = np.abs(anomalous - med[:, None]).max(axis=1)
    return np.where(iqr > 0, dev / np.where(iqr > 0, iqr, 1.0), 0.0)


def sigma_scores(case: Case) -> np.ndarray:
    """N-Sigma score of every metric row (>= 0)."""
    normal, anomalous = _split(case)
    mean = normal.mean(axis=1)
    std = normal.std(axis=1)
    dev = np.abs(anomalous - mean[:, None]).max(axis=1)
    ok = std > 1e-9 * np.maximum(1.0, np.abs(mean))
    return np.where(ok, dev / np.where(ok, std, 1.0), 0.0)


def _by_service(case: Case, scores: np.ndarray) -> Ranking:
    best: dict[str, tuple[float, str]] = {}
    for key, s in zip(case.snapshot.metrics.keys, scores, strict=True):
        svc = key.label("service") or ""
        if svc not in best or s > best[svc][0]:
            best[svc] = (float(s), column_name(key))
    return sorted(((svc, s, m) for svc, (s, m) in best.items()), key=lambda r: (-r[1], r[0]))


def baro_rank(case: Case) -> Ranking:
    return _by_service(case, robust_scores(case))


def nsigma_rank(case: Case) -> Ranking:
    return _by_service(case, sigma_scores(case))


def random_rank(case: Case, seed: int = 0) -> Ranking:
    services = case.services
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(services))
    n = len(services)
    return [(services[i], (n - r) / n, "") for r, i in enumerate(order)]
