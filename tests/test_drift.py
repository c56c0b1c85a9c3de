"""Input drift: sample statistics, histogram statistics, the detector, embedding drift, report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from models import DETECTORS
from models.drift import (
    BucketCounts,
    DriftFinding,
    drift_report,
    severity_of,
    span_token_samples,
)
from models.drift_detector import DistributionDrift
from models.drift_embedding import embedding_drift
from models.drift_hist import histogram_ks, histogram_psi, histogram_quantiles, histogram_wasserstein
from models.drift_stats import ks_2sample, psi, psi_pvalue, wasserstein
from models.embeddings import Embedder
from rca.errors import BadInput
from rca.types import Span


def _logn(seed: int, n: int = 5000, mu: float = 5.0, sigma: float = 0.6) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mu, sigma, n)


# --- sample statistics ---------------------------------------------------------------------

def test_identical_distributions_do_not_drift():
    a, b = _logn(1), _logn(2)
    assert psi(a, b) < 0.02
    d, p = ks_2sample(a, b)
    assert d < 0.05 and p > 0.05
    assert wasserstein(a, b) < 0.1


def test_shifted_lognormal_drifts():
    a, c = _logn(1), _logn(2, mu=5.6)
    assert psi(a, c) > 0.25
    d, p = ks_2sample(a, c)
    assert d > 0.3 and p < 1e-12
    assert wasserstein(a, c) > 0.5


def test_ks_matches_scipy_and_wasserstein_matches_scipy():
    a, c = _logn(3, 400), _logn(4, 300, mu=5.2)
    ref = stats.ks_2samp(a, c)
    assert ks_2sample(a, c) == pytest.approx((ref.statistic, ref.pvalue))
    assert wasserstein(a, c, normalise=False) == pytest.approx(stats.wasserstein_distance(a, c))


def test_wasserstein_is_scale_free_and_in_baseline_sd_units():
    rng = np.random.default_rng(5)
    a, c = rng.normal(0, 1, 20000), rng.normal(0.7, 1, 20000)
    w = wasserstein(a, c)
    assert w == pytest.approx(0.7, abs=0.05)
    assert wasserstein(a * 1000, c * 1000) == pytest.approx(w, rel=1e-9)
    assert psi(a * 1000, c * 1000) == pytest.approx(psi(a, c), rel=1e-9)


def test_statistics_are_vectorised_over_ragged_features():
    rng = np.random.default_rng(6)
    base = [rng.normal(0, 1, 300), rng.normal(0, 1, 120), rng.exponential(1, 250)]
    cur = [rng.normal(0, 1, 200), rng.normal(2, 1, 90), rng.exponential(3, 310)]
    p = psi(base, cur)
    d, pv = ks_2sample(base, cur)
    w = wasserstein(base, cur)
    assert p.shape == d.shape == pv.shape == w.shape == (3,)
    for i in range(3):
        assert p[i] == pytest.approx(psi(base[i], cur[i]))
        assert d[i] == pytest.approx(ks_2sample(base[i], cur[i])[0])
        assert pv[i] == pytest.approx(ks_2sample(base[i], cur[i])[1])
        assert w[i] == pytest.approx(wasserstein(base[i], cur[i]))
    assert p[0] < 0.25 < p[1]


def test_nan_is_ignored_and_empty_gives_nan():
    a, b = _logn(7, 500), _logn(8, 500)
    a_nan = np.concatenate([a, [np.nan, np.inf]])
    assert psi(a_nan, b) == pytest.approx(psi(a, b))
    assert math.isnan(psi([], b)) and math.isnan(wasserstein(a, [np.nan])) and math.isnan(ks_2sample([], b)[1])


def test_constant_baseline_is_finite():
    flat = np.full(200, 512.0)
    assert psi(flat, np.full(50, 512.0)) == pytest.approx(0.0)
    moved = psi(flat, np.full(50, 1024.0))
    assert math.isfinite(moved) and moved > 1
    assert math.isfinite(wasserstein(flat, np.full(50, 1024.0)))


def test_structural_mistakes_raise_bad_input():
    with pytest.raises(BadInput):
        psi(np.zeros((2, 10)), np.zeros((3, 10)))
    with pytest.raises(BadInput):
        psi("123", [1.0])


# --- histograms ------------------------------------------------------------------------------

def _cum(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.array([(x <= b).sum() for b in bounds], dtype=float)


FINE = np.concatenate([np.geomspace(1, 1e5, 400), [np.inf]])
VLLM_TOKENS = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, np.inf])


@pytest.mark.parametrize("mu", [5.0, 5.5])
def test_histogram_statistics_agree_with_samples_when_buckets_are_fine(mu):
    a, c = _logn(9, 20000), _logn(10, 20000, mu=mu)
    hb, hc = _cum(a, FINE), _cum(c, FINE)
    assert histogram_psi(FINE, hb, hc) == pytest.approx(psi(a, c), abs=0.01, rel=0.05)
    assert histogram_wasserstein(FINE, hb, hc) == pytest.approx(wasserstein(a, c), abs=0.01, rel=0.05)
    assert histogram_ks(FINE, hb, hc)[0] == pytest.approx(ks_2sample(a, c)[0], abs=0.005)
    assert histogram_quantiles(FINE, hb, (0.5,))[0] == pytest.approx(np.median(a), rel=0.02)


def test_histogram_drift_on_vllm_buckets():
    a, b, c = _logn(11, 5000), _logn(12, 5000), _logn(13, 5000, mu=5.9)  # prompts ~2.5x longer
    base, same, moved = (_cum(x, VLLM_TOKENS) for x in (a, b, c))
    assert histogram_psi(VLLM_TOKENS, base, same) < 0.02
    assert histogram_psi(VLLM_TOKENS, base, moved) > 0.25
    assert histogram_psi(VLLM_TOKENS, base, moved, n_bins=None) > 0.25  # raw bucket shares
    d, p = histogram_ks(VLLM_TOKENS, base, moved)
    assert d > 0.3 and p < 1e-12
    assert histogram_ks(VLLM_TOKENS, base, same)[1] > 0.01
    # per-bucket counts give the same answer as cumulative ones
    per = np.diff(moved, prepend=0.0)
    assert histogram_psi(VLLM_TOKENS, np.diff(base, prepend=0.0), per, cumulative=False) == pytest.approx(
        histogram_psi(VLLM_TOKENS, base, moved))


def test_histogram_is_vectorised_and_empty_is_nan():
    a, c = _logn(14, 3000), _logn(15, 3000, mu=5.8)
    base = np.stack([_cum(a, VLLM_TOKENS), _cum(a, VLLM_TOKENS), np.zeros(len(VLLM_TOKENS))])
    cur = np.stack([_cum(a, VLLM_TOKENS), _cum(c, VLLM_TOKENS), _cum(c, VLLM_TOKENS)])
    p = histogram_psi(VLLM_TOKENS, base, cur)
    assert p.shape == (3,) and p[0] == pytest.approx(0.0) and p[1] > 0.25 and math.isnan(p[2])
    assert math.isnan(histogram_wasserstein(VLLM_TOKENS, base, cur)[2])


def test_histogram_bad_input():
    with pytest.raises(BadInput):
        histogram_psi([5, 1, np.inf], [1, 2, 3], [1, 2, 3])
    with pytest.raises(BadInput):
        histogram_psi([1, 5, np.inf], [1, 2], [1, 2, 3])


# --- the detector ----------------------------------------------------------------------------

def _series(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.lognormal(5, 0.4, size=(2, 600))
    X[1, 400:] = rng.lognormal(5, 1.2, 200)  # same median, much wider: a level detector misses it
    return X


def test_distribution_drift_is_registered_and_flags_only_the_changed_series():
    assert DETECTORS["distribution_drift"] is DistributionDrift
    X = _series()
    det = DistributionDrift(window=30).fit(X[:, :300])
    s = det.anomaly_score(X[:, 300:])
    quiet, drifted = s[0], s[1, 130:]  # drifted: windows fully after the change
    assert np.nanmax(quiet) < 0.8
    assert np.nanmedian(drifted) > 1.0
    assert np.nanmedian(drifted) > 3 * np.nanmedian(quiet)
    assert np.nanmedian(s[1, :90]) < 0.5  # before the change


def test_distribution_drift_score_is_the_psi_of_the_trailing_window():
    X = _series(1)
    fit, cur = X[:, :300], X[:, 300:]
    s = DistributionDrift(window=30, n_bins=5).fit(fit).anomaly_score(cur)
    for i, t in [(0, 40), (1, 150), (1, 299)]:
        assert s[i, t] == pytest.approx(psi(fit[i], cur[i, t - 29 : t + 1], n_bins=5))


def test_distribution_drift_is_causal_and_nan_aware():
    X = _series(2)
    det = DistributionDrift(window=20, min_count=5).fit(X[:, :300])
    Y = X[:, 300:].copy()
    Y[0, 50:55] = np.nan
    a = det.anomaly_score(Y)
    assert np.isnan(a[0, 50:55]).all() and np.isfinite(a[0, 56:70]).all()
    assert np.isnan(a[:, :4]).all() and np.isfinite(a[:, 4:50]).all()  # fewer than min_count samples
    Y2 = Y.copy()
    Y2[:, 120:] = 1e9
    b = det.anomaly_score(Y2)
    np.testing.assert_array_equal(a[:, :120], b[:, :120])
    assert (b[:, 125:] > a[:, 125:]).all()


def test_distribution_drift_constant_and_empty_baselines():
    base = np.vstack([np.full(100, 7.0), np.full(100, np.nan)])
    cur = np.vstack([np.r_[np.full(40, 7.0), np.full(40, 9.0)], np.ones(80)])
    s = DistributionDrift(window=20).fit(base).anomaly_score(cur)
    assert np.all(s[0, 19:40] == 0) and np.isfinite(s[0]).sum() > 0 and np.nanmax(s[0]) > 1
    assert np.isfinite(s[0, 19:]).all() and np.isnan(s[1]).all()


# --- embedding drift -------------------------------------------------------------------------

SUBJECTS = ["my order", "the invoice", "a refund", "my subscription", "the delivery", "my password",
            "the shipping address", "a discount code"]
VERBS = ["How do I change", "Can you help me with", "I have a problem with", "Please explain",
         "Why was I charged for", "What is the status of"]
CODE = ["Write a Python function that parses JSON and returns a dict",
        "Explain the segmentation fault in this C++ template code",
        "SELECT * FROM users WHERE id = 42; optimise this SQL query"]


def _support(n: int, seed: int) -> list[str]:
    r = np.random.default_rng(seed)
    return [f"{VERBS[r.integers(len(VERBS))]} {SUBJECTS[r.integers(len(SUBJECTS))]} from {r.integers(1, 28)} March?"
            for _ in range(n)]


def _coding(n: int, seed: int) -> list[str]:
    r = np.random.default_rng(seed)
    return [f"{CODE[r.integers(len(CODE))]} (variant {r.integers(1000)})" for _ in range(n)]


@pytest.fixture(scope="module")
def tfidf() -> Embedder:
    return Embedder("tfidf")


def test_embedding_same_topic_does_not_drift(tfidf):
    r = embedding_drift(_support(150, 1), _support(150, 2), tfidf, n_permutations=200)
    assert r.severity == "none" and r.p_value > 0.05 and r.centroid_distance < 0.03
    assert r.backend == "tfidf"


def test_embedding_new_kind_of_prompt_drifts_and_lists_the_outliers(tfidf):
    new = _coding(30, 4)
    r = embedding_drift(_support(150, 1), _support(120, 3) + new, tfidf, n_permutations=200, n_examples=3)
    assert r.p_value < 0.01 and r.severity in ("moderate", "significant")
    assert len(r.outliers) == 3 and all(t in new for t, _ in r.outliers)
    assert len({t.split(" (")[0] for t, _ in r.outliers}) == 3  # near-duplicates skipped
    whole = embedding_drift(_support(150, 1), _coding(150, 5), tfidf, n_permutations=200)
    assert whole.severity == "significant" and whole.centroid_distance > 0.3
    f = whole.finding("prompts")
    assert isinstance(f, DriftFinding) and f.method == "embedding" and f.severity == "significant"


def test_embedding_drift_is_deterministic_and_capped(tfidf):
    base, cur = _support(400, 1), _support(300, 7)
    a = embedding_drift(base, cur, tfidf, max_samples=100, n_permutations=100, random_state=3)
    b = embedding_drift(base, cur, tfidf, max_samples=100, n_permutations=100, random_state=3)
    assert a == b and a.n_baseline == a.n_current == 100


def test_embedding_empty_is_no_data_and_a_string_is_bad_input(tfidf):
    r = embedding_drift([], ["hello"], tfidf)
    assert r.severity == "no_data" and math.isnan(r.p_value) and r.outliers == ()
    assert embedding_drift(["a b c"], ["", "  "], tfidf).severity == "no_data"
    with pytest.raises(BadInput):
        embedding_drift("one prompt", ["hello"], tfidf)


# --- findings and the report -----------------------------------------------------------------

def test_severity_thresholds():
    assert [severity_of("psi", v) for v in (0.05, 0.1, 0.3)] == ["none", "moderate", "significant"]
    assert severity_of("ks", 0.5, 0.2) == "none"  # not significant: effect size alone is not enough
    assert severity_of("ks", 0.05, 1e-9) == "none"  # significant but negligible
    assert severity_of("ks", 0.25, 1e-9) == "significant"
    assert severity_of("wasserstein", 0.35) == "moderate"
    assert severity_of("psi", math.nan) == "no_data"
    assert severity_of("psi", 0.3, 0.2) == "none"  # large PSI from a small sample: noise


def test_psi_pvalue_separates_small_sample_noise_from_drift():
    raw, flagged = [], 0
    for seed in range(20):  # no drift, a sampled-trace-sized window: raw PSI reads "moderate"
        a, b = _logn(100 + seed, 130), _logn(200 + seed, 80)
        raw.append(psi(a, b))
        flagged += severity_of("psi", raw[-1], psi_pvalue(raw[-1], 130, 80)) != "none"
    assert np.median(raw) > 0.1 and flagged <= 1
    a, c = _logn(300, 130), _logn(301, 80, mu=5.9)
    assert psi_pvalue(psi(a, c), 130, 80) < 1e-6


def test_report_sorts_by_severity_and_marks_missing_data():
    base = {"prompt_tokens": _logn(20, 2000), "generation_tokens": _logn(21, 2000, mu=4),
            "tiny": np.array([1.0, 2.0]), "only_baseline": _logn(22, 500)}
    cur = {"prompt_tokens": _logn(23, 800, mu=5.9), "generation_tokens": _logn(24, 800, mu=4),
           "tiny": np.array([1.0, 2.0, 3.0])}
    rep = drift_report(base, cur)
    assert len(rep) == 4 * 3
    assert [f.severity for f in rep[:3]] == ["significant"] * 3
    assert {f.feature for f in rep[:3]} == {"prompt_tokens"}
    assert {f.method for f in rep[:3]} == {"psi", "ks", "wasserstein"}
    gen = [f for f in rep if f.feature == "generation_tokens"]
    assert all(f.severity == "none" for f in gen)
    assert [f.severity for f in rep[-6:]] == ["no_data"] * 6
    assert {f.feature for f in rep[-6:]} == {"tiny", "only_baseline"}
    order = ["no_data", "none", "moderate", "significant"]
    ranks = [order.index(f.severity) for f in rep]
    assert ranks == sorted(ranks, reverse=True)
    assert rep[0].current_summary["p50"] > 2 * rep[0].baseline_summary["p50"]


def test_report_on_histograms():
    a, c = _logn(25, 4000), _logn(26, 4000, mu=5.9)
    rep = drift_report({"vllm:request_prompt_tokens": BucketCounts(VLLM_TOKENS, _cum(a, VLLM_TOKENS)),
                        "prompt_tokens": a},
                       {"vllm:request_prompt_tokens": BucketCounts(VLLM_TOKENS, _cum(c, VLLM_TOKENS)),
                        "prompt_tokens": c})
    hist = [f for f in rep if f.basis == "buckets"]
    assert len(hist) == 3 and all(f.severity == "significant" for f in hist)
    assert hist[0].current_summary["p50"] > 2 * hist[0].baseline_summary["p50"]
    empty = drift_report({"h": BucketCounts(VLLM_TOKENS, np.zeros(len(VLLM_TOKENS)))},
                         {"h": BucketCounts(VLLM_TOKENS, _cum(c, VLLM_TOKENS))})
    assert all(f.severity == "no_data" for f in empty)
    with pytest.raises(BadInput):
        drift_report({"h": BucketCounts(VLLM_TOKENS, _cum(a, VLLM_TOKENS))}, {"h": c})
    with pytest.raises(BadInput):
        drift_report({"h": np.zeros((2, 3))}, {"h": c})


def _span(trace: str, sid: str, parent: str | None, attrs: dict) -> Span:
    return Span(trace_id=trace, span_id=sid, parent=parent, service="s", name="n", start_ns=0, end_ns=1,
                attributes=attrs)


def test_span_token_samples_count_each_request_once():
    spans = [
        _span("t1", "a", None, {"http.route": "/chat"}),
        _span("t1", "b", "a", {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 7}),
        _span("t1", "c", "b", {"gen_ai.usage.prompt_tokens": 100, "gen_ai.usage.completion_tokens": 7}),
        _span("t2", "d", None, {"gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 3}),
        _span("t3", "e", None, {"gen_ai.usage.input_tokens": "oops"}),
    ]
    got = span_token_samples(spans)
    assert sorted(got["prompt_tokens"]) == [50.0, 100.0]
    assert sorted(got["generation_tokens"]) == [3.0, 7.0]
    assert span_token_samples([])["prompt_tokens"].size == 0
