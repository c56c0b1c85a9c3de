"""Domain detectors: GPU (XID, saturation, drops), latency quantiles, LLM load and loops."""

from __future__ import annotations

import numpy as np
import pytest

from models.gpu import DropToZero, SaturationLevel, XidEvents, xid_severity
from models.latency import QuantileShift, TailShift
from models.llm import LOOP_THRESHOLD, LoadAdjustedLatency, repetition_scores
from rca.errors import BadInput
from rca.signals import derive
from rca.types import MetricFrame, SeriesKey


def test_xid_gauge_is_a_last_value_not_a_count():
    X = np.array([[0, 0, 0, 79, 79, np.nan, 79],   # new XID 79 -> severe from the change on
                  [13, 13, 13, 13, 13, 13, 13],     # an old XID held through the baseline
                  [0, 0, 0, 0, 43, 43, 0]], float)  # an app fault, then the gauge is reset
    s = XidEvents().fit(X[:, :3]).anomaly_score(X[:, 3:])
    assert s[0, 0] == 1.0 and s[0, 1] == 1.0 and np.isnan(s[0, 2]) and s[0, 3] == 1.0
    assert (s[1] == 0).all()
    assert s[2, 0] == 0 and 0 < s[2, 1] < 0.5 and s[2, 3] == 0
    assert xid_severity(np.array([79, 13, 999, 0]))[2] == 0.5


def test_saturation_level_is_zero_in_range_and_one_at_the_limit():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.6, size=(2, 200))
    inc = np.array([[0.55, 0.8, 1.0], [0.5, 0.5, 0.5]])
    s = SaturationLevel(limit=1.0).fit(base).anomaly_score(inc)
    assert s[0, 0] == 0 and 0.3 < s[0, 1] < 0.7 and s[0, 2] == pytest.approx(1.0)
    assert (s[1] == 0).all()


def test_drop_to_zero_only_for_series_that_flowed():
    base = np.array([[100.0] * 10, [0.0] * 10])
    s = DropToZero().fit(base).anomaly_score(np.array([[90.0, 3.0], [0.0, 0.0]]))
    assert s.tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_quantile_shift_respects_bucket_resolution():
    base = np.full((1, 100), 0.25)  # a quantile sitting on a bucket bound (next bound: 0.5)
    one_bucket_up = np.array([[0.25, 0.5]])
    coarse = QuantileShift(resolution=0.25).fit(base).anomaly_score(one_bucket_up)
    blind = QuantileShift().fit(base).anomaly_score(one_bucket_up)
    assert coarse[0, 0] == 0 and coarse[0, 1] <= 1.01 and blind[0, 1] > 4
    assert QuantileShift(resolution=0.25).fit(base).anomaly_score(np.array([[2.0]]))[0, 0] > 2


def test_tail_shift_fires_on_tail_only_moves():
    rng = np.random.default_rng(1)
    p50 = rng.lognormal(np.log(0.2), 0.05, (2, 120))
    p99 = p50 * 3 * rng.lognormal(0, 0.05, (2, 120))
    p99[:, 80:] *= 3          # both tails triple
    p50[1, 80:] *= 3          # but series 1's median moves too: a whole-distribution shift
    det = TailShift().fit(p99[:, :60], p50[:, :60])
    s = det.anomaly_score(p99[:, 60:], p50[:, 60:])
    assert s[0, 25:].min() > 4 and s[1, 25:].max() < 2 and s[:, :20].max() < 4
    assert TailShift().fit(p99[:, :60]).anomaly_score(p99[:, 60:])[1, 25:].min() > 4  # without p50


def test_load_adjusted_latency_forgives_latency_explained_by_load():
    rng = np.random.default_rng(2)
    load = rng.lognormal(0, 0.3, (1, 300))
    load[:, 200:] *= 4  # a surge
    lat = 0.1 * load ** 0.8 * rng.lognormal(0, 0.05, (1, 300))
    sick = lat.copy()
    sick[:, 250:] *= 3  # slower at the same load
    det = LoadAdjustedLatency().fit(lat[:, :150], load[:, :150])
    assert 0.5 < det.slope_[0] < 1.1
    assert det.anomaly_score(lat[:, 200:250], load[:, 200:250]).max() < 5
    assert det.anomaly_score(sick[:, 250:], load[:, 250:]).min() > 5
    plain = LoadAdjustedLatency().fit(lat[:, :150])
    assert plain.anomaly_score(lat[:, 200:250]).max() > 5  # blind to load, the surge looks sick
    with pytest.raises(BadInput):
        det.anomaly_score(lat[:, :5], load[:, :4])


def test_repetition_scores_separate_loops_from_prose():
    prose = ("The deployment finished at noon; we rolled back the config after checking the "
             "dashboard, then paged the owner of the vector index to confirm the rebuild.")
    loop = " ".join(["I will now check the answer again."] * 10)
    s = repetition_scores([prose, loop, "too short"])
    assert s[0] < 0.1 and s[1] > LOOP_THRESHOLD and np.isnan(s[2])


def test_dcgm_violation_counters_become_rates():
    ts = np.arange(0, 600, 15, dtype=np.int64)
    ns = np.cumsum(np.full(len(ts), 15 * 0.25e9))  # throttled a quarter of the time
    key = SeriesKey.of("DCGM_FI_DEV_THERMAL_VIOLATION", gpu="0", Hostname="n1")
    sig = derive(MetricFrame((key,), ts, ns[None, :]))
    (j,) = [i for i, k in enumerate(sig.frame.keys) if k.name == key.name]
    assert sig.stat(j) == "rate"
    assert np.nanmedian(sig.frame.values[j]) / 1e9 == pytest.approx(0.25)
