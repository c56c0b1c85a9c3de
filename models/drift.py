"""Input drift: is the traffic *different*, as opposed to a component being broken?

Drift is reported apart from component faults: a shift in prompt length or generation length
explains slower TTFT or a fuller KV cache without anything being faulty. This module is the
entry point; the statistics live in ``drift_stats`` (samples), ``drift_hist`` (Prometheus
buckets), ``drift_detector`` (the ``DistributionDrift`` detector) and ``drift_embedding``
(texts).

``drift_report(baseline, current)`` runs PSI, KS and normalised Wasserstein over named
features and returns ``DriftFinding``s sorted most severe first. A feature's value is either
a sample (per-request token counts, e.g. from ``span_token_samples``, or metric values) or a
``BucketCounts`` (the increase of a histogram's ``_bucket`` counters over each window).

Severity thresholds (module constants, one configuration for every feature):

============  ==========================  ==========================
method        moderate                    significant
============  ==========================  ==========================
psi           p < 0.01 and PSI >= 0.10    p < 0.01 and PSI >= 0.25  (the usual PSI reading)
ks            p < 0.01 and D >= 0.10      p < 0.01 and D >= 0.20
wasserstein   >= 0.30 baseline sd         >= 0.50 baseline sd
============  ==========================  ==========================

They are aligned: for a normal shifted by d standard deviations PSI ≈ d², D ≈ 2Φ(d/2) - 1
and W = d, so "moderate" ≈ a 0.3 sd shift and "significant" ≈ 0.5 sd under all three. PSI
and KS need both a p-value (is it real?) and an effect size (does it matter?): with thousands
of requests a negligible shift is already "significant" in the p-value sense, and with the
few dozen requests of a sampled trace window PSI's noise alone reaches 0.2
(``drift_stats.psi_pvalue`` gives PSI its approximate p-value). Wasserstein has no p-value and
is read on its effect size only; it weighs *how far* mass moved, so it also reacts to a small
share of requests moving very far (a long-prompt tenant), where PSI and KS stay calm.

**Empty data**: a feature with fewer than ``min_samples`` finite values on either side (or
absent from one side, or a histogram with no observations) is *not* an error: it yields one
finding per method with ``severity="no_data"`` and a NaN statistic, sorted last, so the engine
can say "could not check" instead of "no drift". Malformed input (2-D samples, a histogram
on one side and a sample on the other, different bucket bounds) raises ``BadInput``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from models.drift_hist import (
    BucketCounts,
    histogram_ks,
    histogram_psi,
    histogram_quantiles,
    histogram_wasserstein,
)
from models.drift_stats import as_samples, ks_2sample, psi, psi_pvalue, sample_summary, wasserstein
from rca.errors import BadInput
from rca.types import Span

__all__ = ["ALPHA", "KS_D", "PSI_LEVELS", "SEVERITIES", "WASSERSTEIN_LEVELS", "BucketCounts", "DriftFinding",
           "drift_report", "severity_of", "span_token_samples"]

Severity = Literal["no_data", "none", "moderate", "significant"]
SEVERITIES: tuple[str, ...] = ("no_data", "none", "moderate", "significant")  # ascending
PSI_LEVELS = (0.10, 0.25)
ALPHA = 0.01  # p-value below which PSI / KS drift counts as real
KS_D = (0.10, 0.20)
WASSERSTEIN_LEVELS = (0.30, 0.50)
_LEVELS = {"psi": PSI_LEVELS, "ks": KS_D, "wasserstein": WASSERSTEIN_LEVELS}
_METHODS = ("psi", "ks", "wasserstein")


@dataclass(frozen=True)
class DriftFinding:
    """One drift statistic of one feature.

    ``method`` is ``psi``, ``ks``, ``wasserstein`` (unitless, baseline sd) or ``embedding``
    (centroid cosine distance); ``basis`` says what it was computed from (``samples``,
    ``buckets`` or ``texts``). ``p_value`` is None where the method has none. Summaries are
    small dicts (``n``, ``p50``, ``p90``, ``p99``, …) a human can compare.
    """

    feature: str
    method: str
    statistic: float
    p_value: float | None
    baseline_summary: Mapping[str, Any]
    current_summary: Mapping[str, Any]
    severity: Severity
    basis: str = "samples"
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def strength(self) -> float:
        """Statistic relative to its "significant" level (for ordering within a severity)."""
        lv = _LEVELS.get(self.method)
        return float(self.statistic) / lv[1] if lv and math.isfinite(self.statistic) else 0.0


def severity_of(method: str, statistic: float, p_value: float | None = None) -> Severity:
    """The documented reading of one statistic (see the module doc)."""
    if statistic is None or not math.isfinite(statistic):
        return "no_data"
    if method not in _LEVELS:
        raise BadInput(f"unknown drift method {method!r}", field="method", fix=f"use one of {list(_LEVELS)}")
    if method == "ks" and (p_value is None or not math.isfinite(p_value)):
        return "none"
    if p_value is not None and math.isfinite(p_value) and p_value >= ALPHA:
        return "none"
    moderate, significant = _LEVELS[method]
    return "significant" if statistic >= significant else "moderate" if statistic >= moderate else "none"


def _rank(f: DriftFinding) -> tuple[int, float, str, int]:
    m = _METHODS.index(f.method) if f.method in _METHODS else len(_METHODS)
    return (-SEVERITIES.index(f.severity), -f.strength, f.feature, m)


def drift_report(baseline: Mapping[str, Any], current: Mapping[str, Any], n_bins: int = 10,
                 min_samples: int = 20) -> list[DriftFinding]:
    """PSI + KS + Wasserstein for every feature named in either mapping, most severe first
    (then by strength, feature, method). Sample features are computed in one vectorised pass;
    histogram features (``BucketCounts``) from their buckets. ``min_samples`` is the least
    number of observations per side below which a feature is ``no_data``."""
    findings: list[DriftFinding] = []
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in sorted(set(baseline) | set(current)):
        b, c = baseline.get(name), current.get(name)
        if isinstance(b, BucketCounts) or isinstance(c, BucketCounts):
            findings += _histogram_findings(name, b, c, n_bins, min_samples)
            continue
        pair = []
        for side, v in (("baseline", b), ("current", c)):
            a, one_d = as_samples([] if v is None else v, f"{side}[{name!r}]")
            if not one_d:
                raise BadInput(f"feature {name!r} is not a 1-D sample", field=f"{side}[{name!r}]",
                               fix="pass one flat array of observations per feature")
            pair.append(a[0])
        samples[name] = (pair[0], pair[1])
    findings += _sample_findings(samples, n_bins, min_samples)
    return sorted(findings, key=_rank)


def _no_data(name: str, bs: Mapping[str, Any], cs: Mapping[str, Any], basis: str) -> list[DriftFinding]:
    return [DriftFinding(name, m, math.nan, None, bs, cs, "no_data", basis) for m in _METHODS]


def _sample_findings(samples: dict[str, tuple[np.ndarray, np.ndarray]], n_bins: int,
                     min_samples: int) -> list[DriftFinding]:
    out: list[DriftFinding] = []
    ok = [k for k, (b, c) in samples.items()
          if min(np.isfinite(b).sum(), np.isfinite(c).sum()) >= max(min_samples, 1)]
    for k in samples.keys() - set(ok):
        out += _no_data(k, sample_summary(samples[k][0]), sample_summary(samples[k][1]), "samples")
    if not ok:
        return out
    B = [samples[k][0] for k in ok]
    C = [samples[k][1] for k in ok]
    p = np.atleast_1d(psi(B, C, n_bins=n_bins))
    pp = np.atleast_1d(psi_pvalue(p, [np.isfinite(x).sum() for x in B], [np.isfinite(x).sum() for x in C], n_bins))
    d, pv = (np.atleast_1d(v) for v in ks_2sample(B, C))
    w = np.atleast_1d(wasserstein(B, C))
    for i, k in enumerate(ok):
        bs, cs = sample_summary(samples[k][0]), sample_summary(samples[k][1])
        out += [DriftFinding(k, "psi", float(p[i]), float(pp[i]), bs, cs, severity_of("psi", p[i], pp[i])),
                DriftFinding(k, "ks", float(d[i]), float(pv[i]), bs, cs, severity_of("ks", d[i], pv[i])),
                DriftFinding(k, "wasserstein", float(w[i]), None, bs, cs, severity_of("wasserstein", w[i]))]
    return out


def _hist_summary(h: BucketCounts) -> dict[str, Any]:
    c = np.asarray(h.counts, dtype=np.float64)
    n = float(np.nanmax(c) if h.cumulative else np.nansum(c)) if np.isfinite(c).any() else 0.0
    if not n > 0:
        return {"n": 0}
    q = histogram_quantiles(h.bounds, c, (0.5, 0.9, 0.99), h.cumulative)
    return {"n": n, "p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}


def _histogram_findings(name: str, b: Any, c: Any, n_bins: int, min_samples: int) -> list[DriftFinding]:
    for side, v in (("baseline", b), ("current", c)):
        if v is not None and not isinstance(v, BucketCounts):
            raise BadInput(f"feature {name!r} is a histogram on one side and a sample on the other",
                           field=f"{side}[{name!r}]", fix="pass BucketCounts for both windows")
        if v is not None and np.ndim(v.counts) != 1:
            raise BadInput(f"feature {name!r} must be one histogram", field=f"{side}[{name!r}]",
                           fix="pass counts of shape [n_buckets]")
    bs = _hist_summary(b) if b is not None else {"n": 0}
    cs = _hist_summary(c) if c is not None else {"n": 0}
    if b is None or c is None or min(bs["n"], cs["n"]) < max(min_samples, 1):
        return _no_data(name, bs, cs, "buckets")
    if not np.array_equal(np.asarray(b.bounds, dtype=float), np.asarray(c.bounds, dtype=float)):
        raise BadInput(f"feature {name!r}: the two windows have different bucket bounds",
                       field=f"current[{name!r}]", fix="compare windows of the same histogram layout")
    cb, cc = _cumulative(b), _cumulative(c)
    p = histogram_psi(b.bounds, cb, cc, n_bins=n_bins)
    pp = psi_pvalue(p, bs["n"], cs["n"], n_bins)
    d, pv = histogram_ks(b.bounds, cb, cc)
    w = histogram_wasserstein(b.bounds, cb, cc)
    return [DriftFinding(name, "psi", p, pp, bs, cs, severity_of("psi", p, pp), "buckets"),
            DriftFinding(name, "ks", d, pv, bs, cs, severity_of("ks", d, pv), "buckets"),
            DriftFinding(name, "wasserstein", w, None, bs, cs, severity_of("wasserstein", w), "buckets")]


def _cumulative(h: BucketCounts) -> np.ndarray:
    """One window's counts as cumulative (the two windows may have been given differently)."""
    a = np.asarray(h.counts, dtype=np.float64)
    return a if h.cumulative else np.cumsum(np.where(np.isnan(a), 0.0, a))


_PROMPT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_GEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")


def _num(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for k in keys:
        v = attrs.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def span_token_samples(spans: Iterable[Span]) -> dict[str, np.ndarray]:
    """Per-request token counts from GenAI spans: ``{"prompt_tokens": [...],
    "generation_tokens": [...]}`` (float arrays, possibly empty).

    Reads the current semantic-convention names ``gen_ai.usage.input_tokens`` /
    ``output_tokens`` and the older ``prompt_tokens`` / ``completion_tokens``. One request is
    often described twice — the caller's ``chat`` client span and the model server's span
    under it (the simulator does exactly that) — so a span whose parent span (same trace)
    carries token usage is skipped: each request is counted once, at its outermost span.
    """
    usage: list[tuple[Span, float | None, float | None]] = []  # spans with token usage, in order
    for s in spans:
        if not s.attributes:
            continue
        p, g = _num(s.attributes, _PROMPT_KEYS), _num(s.attributes, _GEN_KEYS)
        if p is not None or g is not None:
            usage.append((s, p, g))
    with_usage = {(s.trace_id, s.span_id) for s, _, _ in usage}
    prompt: list[float] = []
    gen: list[float] = []
    for s, p, g in usage:
        if (s.trace_id, s.parent) in with_usage:
            continue
        if p is not None:
            prompt.append(p)
        if g is not None:
            gen.append(g)
    return {"prompt_tokens": np.asarray(prompt, dtype=np.float64),
            "generation_tokens": np.asarray(gen, dtype=np.float64)}
