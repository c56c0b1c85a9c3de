"""NAB scoring on hand-built corpora (expected values computed by hand from NAB's formulas), plus a
cross-check of the vectorised sweep against a literal port of NAB v1.1's per-row loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rca.bench.nab_score import (
    PROFILES,
    probation_length,
    score_at_threshold,
    score_corpus,
    sweep_scores,
    window_rows,
)

STD = PROFILES["standard"]


def sig(p: float) -> float:
    return -1.0 if p > 3 else 2 / (1 + math.exp(5 * p)) - 1


def tp_at(i: int, win: tuple[int, int]) -> float:
    w = win[1] - win[0] + 1
    return sig(-(win[1] - i + 1) / w) / sig(-1.0)


def fires(n: int, rows: dict[int, float]) -> np.ndarray:
    s = np.zeros(n)
    for i, v in rows.items():
        s[i] = v
    return s


# ---------------------------------------------------------------- hand-computed single file cases
W = (40, 59)  # a 20-row window in a 100-row file; probation = 15 rows


def test_probation_length_is_nab_formula():
    assert probation_length(100) == 15
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750  # capped at 0.15 * 5000


def test_detection_at_first_row_of_window_is_perfect():
    res = score_corpus([fires(100, {40: 1.0})], [[W]], STD)
    assert res.raw == pytest.approx(1.0)
    assert res.null == pytest.approx(-1.0) and res.perfect == 1.0
    assert res.normalised == pytest.approx(100.0)
    assert (res.tp_windows, res.fn_windows, res.fp_rows) == (1, 0, 0)


def test_early_detection_beats_late_detection():
    early = score_corpus([fires(100, {45: 1.0})], [[W]], STD).raw
    late = score_corpus([fires(100, {58: 1.0})], [[W]], STD).raw
    assert early == pytest.approx(tp_at(45, W))  # -(59-45+1)/20 = -0.75
    assert late == pytest.approx(tp_at(58, W))  # -(2)/20 = -0.1
    assert early == pytest.approx((2 / (1 + math.exp(-3.75)) - 1) / (2 / (1 + math.exp(-5)) - 1))
    assert 1.0 > early > late > 0.0


def test_only_the_earliest_of_two_detections_in_a_window_counts():
    both = score_corpus([fires(100, {45: 1.0, 55: 1.0})], [[W]], STD)
    assert both.raw == pytest.approx(tp_at(45, W))
    assert both.tp_rows == 2 and both.tp_windows == 1


def test_false_positive_before_first_window_costs_fp_weight():
    s = fires(100, {20: 1.0, 40: 1.0})
    assert score_at_threshold([s], [[W]], STD, 1.0) == pytest.approx(1.0 - 0.11)


def test_false_positive_after_window_is_discounted_by_distance():
    near = score_at_threshold([fires(100, {40: 1.0, 61: 1.0})], [[W]], STD, 1.0)
    far = score_at_threshold([fires(100, {40: 1.0, 99: 1.0})], [[W]], STD, 1.0)
    assert near == pytest.approx(1.0 + sig(2 / 19) * 0.11)  # |59-61| / (20-1)
    assert far == pytest.approx(1.0 + sig(40 / 19) * 0.11)
    assert 1.0 > near > far > 1.0 - 0.11
    # more than 3 window widths after: the full -fp
    long = score_at_threshold([fires(200, {40: 1.0, 150: 1.0})], [[W]], STD, 1.0)
    assert long == pytest.approx(1.0 - 0.11)


def test_probationary_rows_are_ignored():
    # detection at row 10 (< 15) is neither FP nor TP
    assert score_at_threshold([fires(100, {10: 1.0})], [[W]], STD, 1.0) == pytest.approx(-1.0)
    # a window wholly inside probation is not a miss either
    res = score_corpus([fires(100, {})], [[(2, 8), W]], STD)
    assert res.null == pytest.approx(-1.0) and res.fn_windows == 1 and res.perfect == 2.0


def test_optimiser_prefers_not_firing_when_only_false_positives():
    res = score_corpus([fires(100, {20: 0.9, 30: 0.8})], [[W]], STD)
    assert res.raw == pytest.approx(-1.0) and res.normalised == pytest.approx(0.0)
    assert res.threshold > 0.9 and res.fp_rows == 0


def test_files_share_one_threshold():
    a = fires(100, {40: 0.6})
    b = fires(100, {40: 0.9, **{i: 0.6 for i in range(16, 36)}})  # 20 FPs at 0.6 before b's window
    res = score_corpus([a, b], [[W], [W]], STD)
    # threshold 0.9: a missed (-1), b hit (+1) = 0; threshold 0.6: 1 + 1 - 20 * 0.11 = -0.2
    assert res.threshold == pytest.approx(0.9)
    assert res.raw == pytest.approx(0.0)
    assert res.normalised == pytest.approx(50.0)  # null -2, perfect 2
    assert score_at_threshold([a, b], [[W], [W]], STD, 0.6) == pytest.approx(-0.2)


def test_reward_profiles_move_the_threshold_as_they_should():
    wa, wb = (100, 119), (200, 219)
    # window A caught at 0.9; window B only at 0.5 together with k FPs before the first window
    def corpus(k: int) -> list[np.ndarray]:
        return [fires(300, {100: 0.9, 200: 0.5, **{i: 0.5 for i in range(50, 50 + k)}})]  # probation 45

    std, lfp, lfn = (PROFILES[p] for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
    # k = 12: catching B gains tp + fn = 2, costs 12 fp: standard takes it, low-FP does not
    assert score_corpus(corpus(12), [[wa, wb]], std).threshold == pytest.approx(0.5)
    assert score_corpus(corpus(12), [[wa, wb]], std).raw == pytest.approx(2 - 12 * 0.11)
    assert score_corpus(corpus(12), [[wa, wb]], lfp).threshold == pytest.approx(0.9)
    assert score_corpus(corpus(12), [[wa, wb]], lfp).raw == pytest.approx(0.0)
    # k = 20: standard (gain 2 < 2.2) stops, low-FN (gain 3) still takes it
    assert score_corpus(corpus(20), [[wa, wb]], std).threshold == pytest.approx(0.9)
    r = score_corpus(corpus(20), [[wa, wb]], lfn)
    assert r.threshold == pytest.approx(0.5) and r.raw == pytest.approx(2 - 20 * 0.11)
    assert r.null == pytest.approx(-4.0)


def test_perfect_detector_is_100_and_null_is_0():
    wins = [[(40, 59), (140, 159)], [(300, 399)]]
    perfect = [fires(200, {40: 1.0, 140: 1.0}), fires(500, {300: 1.0})]
    for cost in PROFILES.values():
        assert score_corpus(perfect, wins, cost).normalised == pytest.approx(100.0)
        assert score_corpus([np.zeros(200), np.zeros(500)], wins, cost).normalised == pytest.approx(0.0)
        assert score_corpus([np.full(200, 0.5), np.full(500, 0.5)], wins, cost).normalised == pytest.approx(0.0)


def test_window_rows_maps_label_timestamps():
    ts = pd.date_range("2014-04-01", periods=100, freq="5min").values
    rows = window_rows(ts, [("2014-04-01 03:20:00.000000", "2014-04-01 04:55:00.000000")])
    assert rows == [(40, 59)]


# ---------------------------------------------------------------- literal port of NAB v1.1
def nab_sweep_rows(timestamps, scores, windows, cost, name):
    """``Sweeper.calcSweepScore``, row by row, as NAB writes it."""
    timestamps = list(timestamps)
    windows = list(windows)
    max_tp = sig(-1.0)
    prob = min(math.floor(0.15 * len(timestamps)), 0.15 * 5000)
    rows = []
    cur = cur_name = cur_w = cur_r = prev_w = prev_r = None
    for i, (t, a) in enumerate(zip(timestamps, scores, strict=True)):
        if windows and t == windows[0][0]:
            cur = windows.pop(0)
            cur_name = f"{name}|{cur[0]}"
            cur_r = timestamps.index(cur[1])
            cur_w = float(cur_r - timestamps.index(cur[0]) + 1)
        if cur is not None:
            w = sig(-(cur_r - i + 1) / cur_w) * cost.tp / max_tp
        elif prev_r is None:
            w = -1.0 * cost.fp
        else:
            w = sig(abs(prev_r - i) / float(prev_w - 1)) * cost.fp
        rows.append((a, w, cur_name if i >= prob else "probationary"))
        if i == cur_r:
            prev_r, prev_w = cur_r, cur_w
            cur = cur_name = cur_w = cur_r = None
    return rows


def nab_best(rows, cost):
    """``Sweeper.calcScoreByThreshold`` + ``optimizeThreshold``."""
    rows = sorted([r for r in rows if r[2] != "probationary"], key=lambda r: r[0], reverse=True)
    parts = {"fp": 0.0}
    for r in rows:
        if r[2] is not None:
            parts[r[2]] = -cost.fn
    out = [(1.1, sum(parts.values()))]
    for i, r in enumerate(rows):
        if r[2] is None:
            parts["fp"] += r[1]
        else:
            parts[r[2]] = max(parts[r[2]], r[1])
        if i + 1 < len(rows) and rows[i + 1][0] == r[0]:
            continue
        out.append((r[0], sum(parts.values())))
    return sorted(out, key=lambda x: x[1], reverse=True)[0]


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_sweep_equals_literal_nab(seed):
    rng = np.random.default_rng(seed)
    files, scores, wins, rows = [], [], [], {p: [] for p in PROFILES}
    for f in range(3):
        n = int(rng.integers(60, 400))
        ts = pd.date_range("2015-01-01", periods=n, freq="5min")
        k = int(rng.integers(0, 4))
        width = max(n // 10 // max(k, 1), 2)
        starts = np.sort(rng.choice(np.arange(0, n - width, width + 1), size=k, replace=False)) if k else []
        lim = [(ts[s], ts[s + width - 1]) for s in starts]
        s = np.round(rng.random(n), 2)  # ties on purpose
        files.append(str(f))
        scores.append(s)
        wins.append(window_rows(ts.values, [(a.to_datetime64(), b.to_datetime64()) for a, b in lim]))
        for p, cost in PROFILES.items():
            rows[p] += nab_sweep_rows(list(ts), s, lim, cost, str(f))
    for p, cost in PROFILES.items():
        thr, best = nab_best(rows[p], cost)
        res = score_corpus(scores, wins, cost)
        assert res.raw == pytest.approx(best, abs=1e-9)
        assert res.threshold == pytest.approx(thr)


def test_sweep_scores_match_literal_nab_row_by_row():
    ts = list(pd.date_range("2015-01-01", periods=300, freq="5min"))
    lim = [(ts[50], ts[79]), (ts[200], ts[229])]
    ref = nab_sweep_rows(ts, np.zeros(300), lim, STD, "f")
    w, win, scorable = sweep_scores(300, [(50, 79), (200, 229)], STD)
    np.testing.assert_allclose(w, [r[1] for r in ref])
    assert list(scorable) == [r[2] != "probationary" for r in ref]
    assert list(win >= 0) == [r[2] not in (None, "probationary") for r in ref][:45] + list(win[45:] >= 0)


# ---------------------------------------------------------------- the bench harness on a tiny corpus
def test_run_nab_bench_on_a_tiny_corpus(tmp_path):
    from rca.bench.nab import render_table, run_nab_bench

    rng = np.random.default_rng(0)
    labels = {}
    for k in range(2):
        n = 600
        ts = pd.date_range("2014-04-01", periods=n, freq="5min")
        v = rng.normal(10, 1, n)
        v[400 + 20 * k] += 30  # a clear spike inside the window
        (tmp_path / "data" / "cat").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(
            tmp_path / "data" / "cat" / f"f{k}.csv", index=False)
        labels[f"cat/f{k}.csv"] = [[ts[370 + 20 * k].strftime("%Y-%m-%d %H:%M:%S.%f"),
                                    ts[429 + 20 * k].strftime("%Y-%m-%d %H:%M:%S.%f")]]
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    res = run_nab_bench(tmp_path, progress=False)
    assert res["files"] == 2 and res["windows"] == 2
    ours = res["detectors"]["ours"]["standard"]
    assert ours["tp_windows"] == 2 and ours["normalised"] > 60
    assert res["detectors"]["null"]["standard"]["normalised"] == pytest.approx(0.0)
    assert {"ours", "windowed_gaussian", "null", "random"} <= set(res["detectors"])
    assert render_table(res) is not None
