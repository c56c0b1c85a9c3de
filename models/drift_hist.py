"""Drift from Prometheus histograms alone (no raw samples needed).

vLLM exports ``vllm:request_prompt_tokens`` / ``vllm:request_generation_tokens`` as cumulative
``_bucket{le=...}`` counters (1-2-5 bounds up to ``max_model_len``). The increase of each
bucket over a baseline window and over a current window is all the engine gets; these
functions compare the two bucket distributions.

Model of a histogram (the same one ``histogram_quantile`` uses): observations are spread
uniformly inside each bucket, the first bucket starts at 0 when its upper bound is positive
(else it is a point at its bound), and the ``+Inf`` bucket is a point at the highest finite
bound. So each histogram is a piecewise-linear CDF on the bucket bounds, and:

* ``histogram_psi`` re-bins both histograms into the *baseline's quantile bins* (the same
  binning ``drift_stats.psi`` uses on samples), so with fine buckets it agrees with the sample
  PSI; ``n_bins=None`` compares raw bucket shares instead (depends on the bucket layout).
* ``histogram_wasserstein`` integrates |F_b - F_c| exactly for the two piecewise-linear CDFs,
  divided by the baseline's IQR/1.349 (floored at 2 % of its median). Mass beyond the last
  finite bound is invisible to it (an underestimate when the tail escapes the buckets).
* ``histogram_ks`` is max |F_b - F_c| over the bucket bounds: a lower bound of the true KS
  statistic, so its p-value (asymptotic, ``n = n_b n_c / (n_b + n_c)``) is conservative.

Counts are ``[..., n_buckets]`` (one histogram per leading index) against one shared
``bounds``; cumulative by default (as scraped), ``cumulative=False`` for per-bucket counts.
A histogram with no observations gives NaN (callers report ``no_data``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from models.drift_stats import floored_shares, psi_from_shares, share_floor
from rca.errors import BadInput

__all__ = ["BucketCounts", "histogram_ks", "histogram_psi", "histogram_quantiles", "histogram_wasserstein"]


@dataclass(frozen=True)
class BucketCounts:
    """One window of a Prometheus histogram: ``bounds`` are the ``le`` upper bounds (sorted,
    ``+Inf`` last if present) and ``counts`` the increase of each ``_bucket`` counter over the
    window (cumulative unless ``cumulative=False``). Used as a value in ``drift_report``."""

    bounds: Any
    counts: Any
    cumulative: bool = True


def _prep(bounds: Any, counts: Any, cumulative: bool, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (knots [K+1], cdf at knots [R, K+1] excluding the +Inf point mass, total [R])."""
    le = np.asarray(bounds, dtype=np.float64).ravel()
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim == 0 or c.shape[-1] != le.size:
        raise BadInput(f"{name} has {c.shape[-1] if c.ndim else 0} buckets, bounds has {le.size}",
                       field=name, fix="give one count per le bound, in the order of bounds")
    if le.size == 0 or np.isnan(le).any() or np.any(np.diff(le) <= 0) or np.isneginf(le).any():
        raise BadInput("bucket bounds must be strictly increasing numbers", field="bounds",
                       fix="sort the le labels ascending (+Inf last) and drop duplicates")
    c = c.reshape(-1, le.size)
    missing = np.isnan(c).all(axis=1)
    c = np.where(np.isnan(c), 0.0, c)
    if cumulative:
        c = np.maximum.accumulate(np.maximum(c, 0.0), axis=1)  # monotonicity forced, as Prometheus
    else:
        c = np.cumsum(np.maximum(c, 0.0), axis=1)
    total = np.where(missing, np.nan, c[:, -1])
    finite = np.isfinite(le)
    fin = le[finite]
    if fin.size == 0:
        raise BadInput("a histogram needs at least one finite bucket bound", field="bounds",
                       fix="pass the le bounds of the histogram, not only +Inf")
    lo = 0.0 if fin[0] > 0 else fin[0]
    knots = np.concatenate([[lo], fin])
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.concatenate([np.zeros((c.shape[0], 1)), c[:, finite]], axis=1) / total[:, None]
    cdf = np.where(total[:, None] > 0, cdf, np.nan)
    return knots, cdf, np.where(total > 0, total, np.nan)


def _cdf_at(knots: np.ndarray, cdf: np.ndarray, q: np.ndarray, left: bool) -> np.ndarray:
    """F(q) per row (``q`` [R, M]) of the piecewise-linear CDF; ``left`` gives F(q-) (mass
    strictly below q), else F(q) (at or below). The +Inf point mass sits at the last knot."""
    side = "left" if left else "right"
    k = np.clip(np.searchsorted(knots, q, side=side) - 1, 0, knots.size - 2)
    x0, x1 = knots[k], knots[k + 1]
    f0 = np.take_along_axis(cdf, k, axis=1)
    f1 = np.take_along_axis(cdf, k + 1, axis=1)
    past = (q > x0) if left else (q >= x0)  # a zero-width segment is a jump (point mass)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(x1 > x0, np.clip((q - x0) / (x1 - x0), 0.0, 1.0), past.astype(np.float64))
    f = np.where(q < knots[0], 0.0, f0 + frac * (f1 - f0))
    last = (q > knots[-1]) if left else (q >= knots[-1])
    return np.where(np.isnan(cdf[:, :1]), np.nan, np.where(last, 1.0, f))


def _quantiles(knots: np.ndarray, cdf: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantile function ``[R, L]`` at ``levels`` (``histogram_quantile`` interpolation; level 0
    is the lower edge of the first non-empty bucket, mass in +Inf maps to the last bound)."""
    full = np.concatenate([cdf, np.ones((cdf.shape[0], 1))], axis=1)  # +Inf: a point at the last knot
    xk = np.concatenate([knots, knots[-1:]])
    tol = 1e-12
    out = np.empty((cdf.shape[0], levels.size))
    for i, u in enumerate(levels):  # a handful of levels, vectorised over histograms
        hit = full > tol if u <= 0 else full >= u - tol
        j = np.maximum(np.argmax(hit, axis=1), 1)
        f0 = np.take_along_axis(full, (j - 1)[:, None], axis=1)[:, 0]
        f1 = np.take_along_axis(full, j[:, None], axis=1)[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(f1 > f0, np.clip((u - f0) / (f1 - f0), 0.0, 1.0), 0.0)
        out[:, i] = xk[j - 1] + (xk[j] - xk[j - 1]) * frac
    return np.where(np.isnan(cdf[:, :1]), np.nan, out)


def _shape_out(v: np.ndarray, counts: Any) -> Any:
    lead = np.shape(counts)[:-1]
    return float(v[0]) if lead == () else v.reshape(lead)


def _pair(bounds: Any, baseline_counts: Any, current_counts: Any, cumulative: bool) -> tuple[Any, ...]:
    kb, fb, nb = _prep(bounds, baseline_counts, cumulative, "baseline_counts")
    _, fc, nc = _prep(bounds, current_counts, cumulative, "current_counts")
    if fb.shape[0] != fc.shape[0]:
        if fb.shape[0] == 1:
            fb, nb = np.repeat(fb, fc.shape[0], axis=0), np.repeat(nb, fc.shape[0])
        else:
            raise BadInput(f"baseline has {fb.shape[0]} histograms, current has {fc.shape[0]}",
                           field="current_counts", fix="give both windows the same histograms in the same order")
    return kb, fb, nb, fc, nc


def histogram_quantiles(bounds: Any, counts: Any, levels: Any = (0.5, 0.9, 0.99),
                        cumulative: bool = True) -> np.ndarray:
    """Quantile estimates ``[..., len(levels)]`` of bucketed observations."""
    knots, cdf, _ = _prep(bounds, counts, cumulative, "counts")
    q = _quantiles(knots, cdf, np.asarray(levels, dtype=np.float64).ravel())
    return q.reshape(np.shape(counts)[:-1] + (q.shape[1],))


def histogram_psi(bounds: Any, baseline_counts: Any, current_counts: Any, n_bins: int | None = 10,
                  cumulative: bool = True, eps: float | None = None) -> Any:
    """PSI between two bucketed windows (see the module doc). ``n_bins``: baseline quantile
    bins (agrees with sample PSI when buckets are fine) or ``None`` for raw bucket shares.
    ``eps`` as in ``drift_stats.share_floor`` (counts are the sample sizes)."""
    knots, fb, nb, fc, nc = _pair(bounds, baseline_counts, current_counts, cumulative)
    floor = share_floor(nb, nc, eps)
    if n_bins is None:  # per-bucket shares, the +Inf bucket last
        sb, sc = (np.diff(np.concatenate([f, np.ones((f.shape[0], 1))], axis=1), axis=1) for f in (fb, fc))
    else:
        if n_bins < 1:
            raise BadInput(f"n_bins must be >= 1 or None, got {n_bins}", field="n_bins", fix="use e.g. 10")
        edges = _quantiles(knots, fb, np.linspace(0.0, 1.0, int(n_bins) + 1))
        sb, sc = (_binned(knots, f, edges) for f in (fb, fc))
    out = psi_from_shares(floored_shares(sb, np.ones_like(nb), floor),
                          floored_shares(sc, np.ones_like(nc), floor))
    return _shape_out(out, current_counts)


def _binned(knots: np.ndarray, cdf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares in the ``bin_index`` bins of ``edges`` (outer bins below e_0 and above e_B)."""
    left = _cdf_at(knots, cdf, edges, left=True)
    top = _cdf_at(knots, cdf, edges[:, -1:], left=False)
    cum = np.concatenate([left[:, :-1], top], axis=1)
    inner = np.diff(cum, axis=1)
    return np.concatenate([left[:, :1], np.maximum(inner, 0.0), 1.0 - top], axis=1)


def histogram_wasserstein(bounds: Any, baseline_counts: Any, current_counts: Any, normalise: bool = True,
                          cumulative: bool = True, rel_floor: float = 0.02) -> Any:
    """Wasserstein-1 between the two piecewise-linear CDFs (exact integral of |F_b - F_c| on
    every bucket), divided by the baseline's robust scale when ``normalise``."""
    knots, fb, _, fc, _ = _pair(bounds, baseline_counts, current_counts, cumulative)
    d = fb - fc
    d0, d1, w = d[:, :-1], d[:, 1:], np.diff(knots)
    a0, a1 = np.abs(d0), np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(a0 + a1 > 0, (d0 * d0 + d1 * d1) / (2 * (a0 + a1)), 0.0)
    seg = np.where(d0 * d1 >= 0, (a0 + a1) / 2, crossing) * w
    out = np.where(np.isnan(fb[:, 0]) | np.isnan(fc[:, 0]), np.nan, seg.sum(axis=1))
    if normalise:
        q1, med, q3 = _quantiles(knots, fb, np.array([0.25, 0.5, 0.75])).T
        out = out / np.fmax.reduce([(q3 - q1) / 1.349, rel_floor * np.abs(med), np.full_like(med, 1e-300)])
    return _shape_out(out, current_counts)


def histogram_ks(bounds: Any, baseline_counts: Any, current_counts: Any,
                 cumulative: bool = True) -> tuple[Any, Any]:
    """``(statistic, p_value)``: max |F_b - F_c| over the bucket bounds and its asymptotic
    two-sample p-value (``scipy.stats.kstwo`` at ``round(n_b n_c / (n_b + n_c))``)."""
    _, fb, nb, fc, nc = _pair(bounds, baseline_counts, current_counts, cumulative)
    stat = np.abs(fb - fc).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.round(nb * nc / (nb + nc))
    ok = np.isfinite(stat) & (en >= 1)
    p = np.full(stat.shape, np.nan)
    p[ok] = np.clip(stats.kstwo.sf(stat[ok], en[ok]), 0.0, 1.0)
    return _shape_out(stat, current_counts), _shape_out(p, current_counts)
