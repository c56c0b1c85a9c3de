"""Behaviour of the temporal detectors, the calibrated thresholder, the fleet scanner and the scan bench."""

from __future__ import annotations

import numpy as np
import pytest

from models import (
    BOCPDDetector,
    CalibratedThreshold,
    CUSUMDetector,
    EWMAResidual,
    HoltWintersResidual,
    RobustDeviation,
    SeasonalDeviation,
)
from models.scan import FleetScanner, missing_run_length
from rca.errors import BadInput

STEP = 300.0  # 5-minute samples keep multi-day fixtures small
DAY = 288


def _business_hours(n: int, days: int, seed: int = 0, bump: float = 10.0) -> np.ndarray:
    """A daily +bump from 12:00 to 16:00 UTC on top of N(20, 1): a peak a plain baseline hates."""
    rng = np.random.default_rng(seed)
    hour = (np.arange(days * DAY) * STEP % 86_400) / 3600
    return 20 + bump * ((hour >= 12) & (hour < 16))[None, :] + rng.normal(0, 1, (n, days * DAY))


def test_seasonal_ignores_the_daily_ramp_that_robust_deviation_flags():
    X = _business_hours(6, 4)
    fit, new = X[:, : 3 * DAY], X[:, 3 * DAY:].copy()
    new[0, 12:60] += 6  # 01:00-05:00: the night level moved, off the profile
    robust = RobustDeviation().fit(fit).anomaly_score(new)
    det = SeasonalDeviation(step_s=STEP).fit(fit)
    seasonal = det.anomaly_score(new)
    assert (det.model_names() == "daily").all()
    # robust deviation treats every office hour as anomalous (the baseline median is night-time)
    assert np.median(robust[1:, 12 * 12: 16 * 12]) > 4
    assert np.nanmax(seasonal[1:]) < 5.5
    assert np.median(seasonal[0, 12:60]) > 4
    assert np.median(seasonal[1:, 12:60]) < 1.5


def test_seasonal_falls_back_without_history_or_seasonality():
    rng = np.random.default_rng(1)
    noise = 20 + rng.normal(0, 1, (3, 3 * DAY))
    assert (SeasonalDeviation(step_s=STEP).fit(noise).model_names() == "robust").all()
    short = _business_hours(3, 1)  # one day: fewer than min_periods full days
    det = SeasonalDeviation(step_s=STEP).fit(short)
    assert (det.model_names() == "robust").all()
    np.testing.assert_allclose(det.anomaly_score(short), RobustDeviation().fit(short).anomaly_score(short))


def test_seasonal_phase_comes_from_the_time_parameters():
    X = _business_hours(3, 4)
    fit, new = X[:, : 3 * DAY], X[:, 3 * DAY:]
    det = SeasonalDeviation(step_s=STEP, t0_s=0.0).fit(fit)
    follows = det.anomaly_score(new)
    explicit = det.set_params(score_t0_s=3 * 86_400.0).anomaly_score(new)
    np.testing.assert_array_equal(follows, explicit)
    half_day_off = det.set_params(score_t0_s=3 * 86_400.0 + 43_200).anomaly_score(new)
    assert np.nanmax(half_day_off) > 2 * np.nanmax(follows)


def test_seasonal_weekly_profile_and_stl_option():
    rng = np.random.default_rng(2)
    t = np.arange(24 * 7 * 3) * 3600.0
    weekend = (t // 86_400) % 7 >= 5
    X = 100 - 30 * weekend[None, :] + rng.normal(0, 2, (3, t.size))
    assert (SeasonalDeviation(step_s=3600.0, bin_s=3600.0).fit(X).model_names() == "weekly").all()
    B = _business_hours(3, 4)
    stl = SeasonalDeviation(step_s=STEP, method="stl").fit(B[:, : 3 * DAY])
    assert (stl.model_names() == "daily").all()
    assert np.nanmax(stl.anomaly_score(B[:, 3 * DAY:])) < 6
    with pytest.raises(BadInput):
        SeasonalDeviation(method="fourier").fit(B)


@pytest.mark.parametrize("make", [lambda: EWMAResidual(), lambda: HoltWintersResidual(step_s=STEP)])
def test_smoothing_residuals_flag_a_spike(make):
    rng = np.random.default_rng(3)
    t = np.arange(4 * DAY) * STEP
    X = 20 + 5 * np.sin(2 * np.pi * t / 86_400)[None, :] + rng.normal(0, 1, (4, t.size))
    new = X[:, 3 * DAY:].copy()
    new[2, 100] += 12
    det = make().fit(X[:, : 3 * DAY])
    s = det.anomaly_score(new)
    assert s[2, 100] > 5
    others = np.delete(s.ravel(), 2 * new.shape[1] + 100)
    assert s[2, 100] > 1.5 * np.nanmax(others)


def test_ewma_state_continues_from_the_fit_and_skips_gaps():
    rng = np.random.default_rng(4)
    X = 50 + rng.normal(0, 1, (2, 400))
    det = EWMAResidual().fit(X[:, :300])
    Y = X[:, 300:].copy()
    Y[1, 10:13] = np.nan
    s = det.anomaly_score(Y)
    assert np.isnan(s[1, 10:13]).all() and not np.isnan(s[1, 13:]).any()
    assert np.nanmax(s[:, :5]) < 4  # no warm-up transient: the state is the fit's last state


def test_cusum_flags_a_small_sustained_shift_that_pointwise_z_misses():
    rng = np.random.default_rng(5)
    X = 10 + rng.normal(0, 1, (6, 600))
    X[0, 400:] += 1.0  # one noise sd
    fit, new = X[:, :300], X[:, 300:]
    z = RobustDeviation().fit(fit).anomaly_score(new)
    assert np.mean(z[0, 100:] > 4) < 0.05  # the pointwise score almost never crosses 4
    cus = CUSUMDetector().fit(fit)
    s = cus.anomaly_score(new)
    assert s[0, -1] > 5 and s[0, -1] > 3 * np.nanmax(s[1:])
    alarm = int(np.argmax(s[0] > 1.0))
    assert 100 <= alarm < 160
    assert abs(int(cus.onset(new[:1], np.array([alarm]), np.array([0]))[0]) - 100) <= 15


def test_cusum_variance_side_flags_a_noise_increase():
    rng = np.random.default_rng(6)
    X = rng.normal(0, 1, (4, 600))
    X[0, 400:] *= 3
    s = CUSUMDetector().fit(X[:, :300]).anomaly_score(X[:, 300:])
    assert s[0, -1] > 5 and s[0, -1] > 3 * np.nanmax(s[1:])


def test_bocpd_score_peaks_just_after_a_change_point():
    rng = np.random.default_rng(1)
    X = rng.normal(10, 1, (6, 500))
    X[1, 300:] += 3.0
    s = BOCPDDetector().fit(X[:, :200]).anomaly_score(X[:, 200:])
    assert ((s[~np.isnan(s)] >= 0) & (s[~np.isnan(s)] <= 1)).all()
    assert 100 <= int(np.argmax(s[1])) <= 110
    assert s[1].max() > 0.8
    assert np.median(s[[0, 2, 3, 4, 5]]) < 0.1
    assert s[1].max() > 2 * np.quantile(s[[0, 2, 3, 4, 5]], 0.99)


def test_calibrated_threshold_maps_to_unit_interval_monotone_per_series():
    rng = np.random.default_rng(7)
    normal = np.abs(rng.normal(size=(3, 2000))) * np.array([[1.0], [10.0], [0.1]])
    cal = CalibratedThreshold().fit(normal)
    test = np.abs(rng.normal(size=(3, 500))) * np.array([[1.0], [10.0], [0.1]])
    p = cal.transform(test)
    assert ((p >= 0) & (p <= 1)).all()
    assert (p < 0.9).mean() > 0.85
    assert cal.transform(np.array([[8.0], [80.0], [0.8]])).min() > 0.999
    grid = np.sort(rng.uniform(0, 100, (3, 300)), axis=1)
    assert (np.diff(cal.transform(grid), axis=1) >= 0).all()
    t = cal.thresholds(0.99)
    assert t[1] > 5 * t[0] > 25 * t[2]  # per-series: the same level sits at that series' scale
    flags = cal.flag(test)
    np.testing.assert_array_equal(flags, cal.transform(test) >= 0.99 - 1e-12)
    assert not cal.flag(np.array([[np.nan], [1.0], [0.0]]))[0, 0]
    assert np.isnan(cal.transform(np.array([[np.nan], [1.0], [0.0]]))[0, 0])


def test_calibrated_threshold_borrows_for_rows_without_history():
    rng = np.random.default_rng(8)
    normal = np.abs(rng.normal(size=(3, 500)))
    normal[2] = np.nan
    cal = CalibratedThreshold().fit(normal)
    assert np.isfinite(cal.thresholds()).all()
    with pytest.raises(BadInput):
        CalibratedThreshold(q_tail=1.0).fit(normal)


def _fleet(n: int, days: int, seed: int) -> np.ndarray:
    """Clean fleet at 5-minute steps: levels, AR-ish noise, daily bumps on half, counts on a fifth."""
    rng = np.random.default_rng(seed)
    T = days * DAY
    hour = (np.arange(T) * STEP % 86_400) / 3600
    level = 10 ** rng.uniform(0, 3, n)
    sd = level * rng.uniform(0.02, 0.1, n)
    e = rng.normal(size=(n, T))
    e[:, 1:] = 0.6 * e[:, 1:] + 0.8 * e[:, :-1]  # lag-1 correlated, unit variance
    bump = (rng.random(n) < 0.5) * rng.uniform(2, 6, n) * sd
    X = level[:, None] + sd[:, None] * e + bump[:, None] * ((hour >= 8) & (hour < 18))[None, :]
    counts = rng.random(n) < 0.2
    X[counts] = np.round(X[counts])
    X[rng.random(X.shape) < 0.002] = np.nan
    return X, sd


def test_fleet_scanner_finds_injected_anomalies_with_their_onset():
    X, sd = _fleet(120, 4, seed=9)
    base, new = X[:, : 3 * DAY], X[:, 3 * DAY:].copy()
    new[3, 200] += 25 * sd[3]  # spike
    new[7, 150:] += 6 * sd[7]  # level shift
    new[11, 180:] = np.nan  # vanished
    new[15, 100:] -= 2.5 * sd[15]  # small sustained drop
    scanner = FleetScanner(step_s=STEP, chunk_size=50)
    res = scanner.fit(base).score(new)
    assert set(np.flatnonzero(res.flagged)) == {3, 7, 11, 15}
    assert res.onset[3] == 200 and res.peak[3] == 200 and res.direction[3] == "up"
    assert abs(res.onset[7] - 150) <= 2 and res.direction[7] == "up"
    assert res.onset[11] == 180 and res.direction[11] == "missing" and res.detector[11] == "vanished"
    assert abs(res.onset[15] - 100) <= 10 and res.direction[15] == "down"
    assert res.score[[3, 7, 11, 15]].min() >= 0.999
    assert ((res.score >= 0) & (res.score <= 1)).all()
    assert list(res.flagged_rows()[:1]) and set(res.flagged_rows()) == {3, 7, 11, 15}
    # chunking and threads change nothing
    again = FleetScanner(step_s=STEP, chunk_size=1000, n_jobs=1).fit(base).score(new)
    np.testing.assert_array_equal(again.onset, res.onset)
    np.testing.assert_allclose(again.score, res.score)


def test_fleet_scanner_is_quiet_on_a_clean_fleet():
    X, _ = _fleet(300, 4, seed=10)
    res = FleetScanner(step_s=STEP).fit(X[:, : 3 * DAY]).score(X[:, 3 * DAY:])
    assert not res.flagged.any()
    assert (res.detector == "").all() and (res.onset == -1).all()


def test_fleet_scanner_rejects_bad_input():
    X, _ = _fleet(5, 1, seed=11)
    sc = FleetScanner(step_s=STEP)
    with pytest.raises(BadInput):
        sc.score(X)
    sc.fit(X[:, :100])
    with pytest.raises(BadInput):
        sc.score(X[:3, 100:])
    with pytest.raises(BadInput):
        FleetScanner(detectors=("deviation", "magic")).fit(X)


def test_missing_run_length_counts_consecutive_gaps():
    m = np.array([[0, 1, 1, 0, 1, 1, 1], [0, 0, 1, 0, 0, 0, 0], [np.nan] * 7])
    r = missing_run_length(m)
    np.testing.assert_array_equal(r[0], [0, 1, 2, 0, 1, 2, 3])
    np.testing.assert_array_equal(r[1], [0, 0, 1, 0, 0, 0, 0])
    assert np.isnan(r[2]).all()


def test_scan_bench_small_run_returns_the_documented_keys():
    from rca.bench.scan_bench import render_table, run_scan_bench

    res = run_scan_bench(n_series=200, n_points=500, seed=0, loop_sample=5, progress=False)
    for key in ("wall_s", "cpu_s", "fit_s", "score_s", "points_per_s", "peak_mem_mib_tracemalloc",
                "maxrss_mib", "loop_s", "loop_extrapolated_s", "speedup", "detection", "false_positives",
                "clean_series"):
        assert key in res, key
    assert res["n_series"] == 200 and res["n_points"] == 500
    assert set(res["detection"]) == {"shift", "spike", "vanish"}
    found = sum(d["found"] for d in res["detection"].values())
    assert found >= 5 and res["false_positives"] <= 2
    assert render_table(res).row_count > 8
