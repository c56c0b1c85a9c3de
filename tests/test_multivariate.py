"""Multivariate detectors, the anomaly-detection metrics and the SMD/ASD bench on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from models import DETECTORS
from models.multivariate import IsolationForestScore, LOFScore, PCAReconstruction, RobustPCAEnsemble
from rca.bench.ad_metrics import best_composite_f1, best_f1, best_pa_f1, hit_rate, segments
from rca.bench.smd import MaxZBaseline, discover_entities, render_table, run_smd_bench
from rca.errors import BadInput

MULTI = (IsolationForestScore, LOFScore, PCAReconstruction, RobustPCAEnsemble)


def _group(seed: int = 0, t: int = 400, brk: tuple[int, int] = (300, 340)) -> np.ndarray:
    """Dims 0-5 follow one latent wave, 6-7 are independent noise. In ``brk`` dims 0 and 1
    flip sign: every value stays inside its usual range, only the correlation breaks."""
    rng = np.random.default_rng(seed)
    f = np.sin(np.arange(t) * 2 * np.pi / 37) + 0.3 * np.sin(np.arange(t) * 2 * np.pi / 11)
    X = np.vstack([f + 0.05 * rng.normal(size=t) for _ in range(6)] + [rng.normal(size=(2, t))])
    a, b = brk
    X[:2, a:b] = -f[a:b] + 0.05 * rng.normal(size=(2, b - a))
    return X


def test_registered():
    for cls in MULTI:
        assert cls in DETECTORS.values()


def test_pca_catches_a_correlated_break_that_single_dim_z_misses():
    X = _group()
    train, test = X[:, :250], X[:, 250:]
    inside = np.zeros(test.shape[1], bool)
    inside[50:90] = True
    z = MaxZBaseline().fit(train).time_score(test)
    # single-dim z: the break is not above the normal part of the test
    assert np.nanmax(z[inside]) < np.nanquantile(z[~inside], 0.99) * 1.5
    for cls in (PCAReconstruction, RobustPCAEnsemble):
        det = cls().fit(train)
        s = det.time_score(test)
        # most of the break scores above everything outside it (where the wave crosses 0 the
        # flip is invisible, so not every point)
        assert np.median(s[inside]) > np.max(s[~inside][5:]), cls.__name__
        assert np.mean(s[inside] > np.max(s[~inside][5:])) > 0.7, cls.__name__
        per_dim = det.anomaly_score(test)
        top2 = np.argsort(-np.nanmean(per_dim[:, inside], axis=1))[:2]
        assert set(top2.tolist()) == {0, 1}, cls.__name__


@pytest.mark.parametrize("cls", MULTI)
def test_attribution_shape_nan_and_interpretation(cls):
    X = _group(seed=1, brk=(0, 0))
    X[[2, 5], 300:340] += 4.0  # two dims jump: visible to |z| and to the residual
    X[3, 260:270] = np.nan  # a gap in the test part
    X[7, :] = 2.0  # a constant dim
    det = cls().fit(X[:, :250])
    S = det.anomaly_score(X[:, 250:])
    assert S.shape == (8, 150)
    assert np.isnan(S[3, 10:20]).all()
    assert np.isfinite(S[~np.isnan(X[:, 250:])]).all() and (np.nan_to_num(S) >= 0).all()
    # the jumping dims carry the anomaly
    top2 = np.argsort(-np.nanmean(S[:, 50:90], axis=1))[:2]
    assert set(top2.tolist()) == {2, 5}
    total = det.time_score(X[:, 250:])
    assert np.median(total[52:90]) > np.median(total[:40])


@pytest.mark.parametrize("cls", (IsolationForestScore, LOFScore))
def test_joint_score_is_split_without_loss(cls):
    X = _group(seed=2)
    det = cls().fit(X[:, :250])
    S = det.anomaly_score(X[:, 250:])
    joint = -det.model_.score_samples(det._prepared(X[:, 250:]).T)
    np.testing.assert_allclose(S.sum(axis=0), joint, rtol=1e-9)
    np.testing.assert_allclose(det.time_score(X[:, 250:]), joint, rtol=1e-9)


def test_random_state_and_constant_baseline():
    X = _group(seed=3)
    a = IsolationForestScore(random_state=1).fit(X[:, :250]).anomaly_score(X[:, 250:])
    b = IsolationForestScore(random_state=1).fit(X[:, :250]).anomaly_score(X[:, 250:])
    c = IsolationForestScore(random_state=2).fit(X[:, :250]).anomaly_score(X[:, 250:])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    flat = np.ones((3, 50))  # every dim constant: scores stay finite
    for cls in MULTI:
        s = cls().fit(flat).anomaly_score(np.ones((3, 5)))
        assert np.isfinite(s).all() and (s >= 0).all(), cls.__name__


def test_ensemble_flags_a_level_shift_in_one_independent_dim():
    X = _group(seed=4, brk=(0, 0))
    X[6, 330:360] += 6.0  # an independent dim jumps: the |z| part of the ensemble
    det = RobustPCAEnsemble().fit(X[:, :250])
    s = det.time_score(X[:, 250:])
    assert np.median(s[82:110]) > np.max(s[:40])
    assert np.argmax(np.nanmean(det.anomaly_score(X[:, 250:])[:, 82:110], axis=1)) == 6


# ---- metrics on hand-computed examples -------------------------------------------------

Y = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 0])
S = np.array([0.1, 0.2, 0.9, 0.05, 0.05, 0.05, 0.8, 0.0, 0.4, 0.1])


def test_segments():
    np.testing.assert_array_equal(segments(Y), [[2, 6], [8, 9]])
    assert segments(np.zeros(4)).shape == (0, 2)


def test_point_f1_by_hand():
    # at 0.05 all 5 positives and 4 negatives are flagged: P = 5/9, R = 1 -> F1 = 10/14
    f1, thr = best_f1(S, Y)
    assert f1 == pytest.approx(10 / 14) and thr == pytest.approx(0.05)


def test_composite_f1_by_hand():
    # at 0.4: points {2, 6, 8} flagged, P = 2/3; both segments hit, event R = 1 -> F1 = 0.8
    f1, thr = best_composite_f1(S, Y)
    assert f1 == pytest.approx(0.8) and thr == pytest.approx(0.4)


def test_pa_f1_by_hand():
    # at 0.4 both segments are found -> TP = 5, FP = 1 (point 6): P = 5/6, R = 1 -> F1 = 10/11
    f1, thr = best_pa_f1(S, Y)
    assert f1 == pytest.approx(10 / 11) and thr == pytest.approx(0.4)


def test_metrics_nan_and_no_positive():
    s = S.copy()
    s[2] = np.nan  # never flagged: the first segment's best point is gone
    assert best_composite_f1(s, Y)[0] < 0.8
    assert best_f1(S, np.zeros(10))[0] == 0.0
    assert best_pa_f1(S, np.zeros(10))[0] == 0.0
    with pytest.raises(BadInput):
        best_f1(S, Y[:5])


def test_hit_rate_by_hand():
    dims = np.array([[0.9, 0.1, 0.8, 0.0],   # G = {0, 1}: top-2 {0, 2} -> 1/2; top-3 -> 1
                     [0.5, 0.1, 0.2, 0.4]])  # G = {3}: top-1 {0} -> 0; floor(1.5) = 1 -> 0
    assert hit_rate(dims, [[0, 1], [3]], 1.0) == pytest.approx(0.25)
    assert hit_rate(dims, [[0, 1], [3]], 1.5) == pytest.approx(0.5)


# ---- the bench on a tiny generated folder ----------------------------------------------

def _write_entity(d, seed: int, gz: bool, interp: bool = True) -> None:
    d.mkdir(parents=True)
    X = _group(seed=seed, t=500, brk=(400, 430))
    X[7, 460:470] += 8.0  # a spike in an independent dim
    cols = {f"m{i}": X[i] for i in range(X.shape[0])}
    frame = pd.DataFrame({"timestamp": 1700000000 + 60 * np.arange(500), **cols})
    ext = ".csv.gz" if gz else ".csv"
    frame.iloc[:300].to_csv(d / f"train{ext}", index=False)
    frame.iloc[300:].to_csv(d / f"test{ext}", index=False)
    lab = np.zeros(200, int)
    lab[100:130] = 1
    lab[160:170] = 1
    pd.DataFrame({"timestamp": frame.timestamp.iloc[300:], "label": lab}).to_csv(d / "test_label.csv", index=False)
    if interp:
        (d / "interpretation_label.txt").write_text("100-129:1,2\n160-169:8\n")


def test_run_smd_bench_on_a_generated_folder(tmp_path):
    _write_entity(tmp_path / "smd" / "machine-a", 5, gz=True)
    _write_entity(tmp_path / "smd" / "machine-b", 6, gz=False)
    _write_entity(tmp_path / "other" / "e1", 7, gz=True, interp=False)
    assert [(ds, e) for ds, e, _ in discover_entities(tmp_path)] == [
        ("other", "e1"), ("smd", "machine-a"), ("smd", "machine-b")]
    res = run_smd_bench(tmp_path, progress=False)
    assert not res["errors"]
    smd = res["summary"]["smd"]
    assert set(smd) == {"robust_pca_ensemble", "max_z", "isolation_forest", "lof", "pca_reconstruction"}
    ours = smd["robust_pca_ensemble"]
    assert ours["entities"] == 2
    assert ours["point_f1"] > 0.7 and ours["event_f1"] > 0.9
    assert ours["hr100"] > 0.9  # the flipped dims and the spiking dim rank first
    # the correlation break is invisible to max |z|: it finds only the spike segment
    assert smd["max_z"]["event_f1"] < ours["event_f1"]
    assert res["beats_baseline"]["smd"] == {"point_f1": True, "event_f1": True}
    assert res["summary"]["other"]["robust_pca_ensemble"]["hr100"] is None  # no interpretation file
    console = Console(record=True, width=120)
    console.print(render_table(res))
    text = console.export_text()
    assert "ours" in text and "machine-b" in text and "Garg" in text


def test_run_smd_bench_rejects_a_folder_without_entities(tmp_path):
    with pytest.raises(BadInput):
        run_smd_bench(tmp_path, progress=False)
