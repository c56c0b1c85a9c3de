"""One suite over every registered detector, thresholder and ranker (scikit-learn style)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import DETECTORS, THRESHOLDERS
from rca.errors import BadInput
from rca.graph import DependencyGraph
from rca.protocols import Detector, RankContext, Ranker, Thresholder
from rca.rank import RANKERS
from rca.types import Hypothesis, MetricFrame, SeriesKey, Snapshot, Window


def _data(seed: int = 0, n: int = 6, t: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(10, 1, size=(n, t))
    X[1, 50:] += 8  # a level shift
    X[2, 10:20] = np.nan  # a gap
    return X


@pytest.fixture(params=sorted(DETECTORS))
def detector(request):
    return DETECTORS[request.param]()


def test_detector_fits_protocol_and_returns_self(detector):
    assert isinstance(detector, Detector)
    assert detector.fit(_data()[:, :40]) is detector


def test_detector_constructor_only_stores_params(detector):
    params = detector.get_params()
    json.dumps(params)  # JSON-serialisable, never pickle
    assert not [k for k in vars(detector) if k.endswith("_")]  # nothing learned before fit
    clone = type(detector)(**params)
    assert clone.get_params() == params


def test_detector_score_shape_nan_and_direction(detector):
    X = _data()
    det = detector.fit(X[:, :40])
    s = det.anomaly_score(X[:, 40:])
    assert s.shape == X[:, 40:].shape
    finite = s[~np.isnan(s)]
    assert (finite >= 0).all()
    s_all = det.anomaly_score(X)
    # NaN in -> NaN out for value detectors; presence detectors flag the gap instead
    assert np.isnan(s_all[2, 10:20]).all() or (s_all[2, 10:20] > 0).all()


def test_detector_is_deterministic_and_does_not_mutate(detector):
    X = _data()
    det = detector.fit(X[:, :40])
    before = {k: np.copy(v) for k, v in vars(det).items() if k.endswith("_")}
    a = det.anomaly_score(X[:, 40:])
    b = det.anomaly_score(X[:, 40:])
    np.testing.assert_array_equal(a, b)
    for k, v in before.items():
        np.testing.assert_array_equal(v, getattr(det, k))
    again = type(det)(**det.get_params()).fit(X[:, :40]).anomaly_score(X[:, 40:])
    np.testing.assert_array_equal(a, again)


def test_detector_is_causal(detector):
    """The score at column t must not change when columns after t change."""
    X = _data()
    det = detector.fit(X[:, :40])
    Y = X[:, 40:].copy()
    a = det.anomaly_score(Y)
    Y[:, 20:] = 1e6
    b = det.anomaly_score(Y)
    np.testing.assert_array_equal(a[:, :20], b[:, :20])


def test_detector_handles_empty_input(detector):
    det = detector.fit(np.empty((0, 10)))
    assert det.anomaly_score(np.empty((0, 5))).shape == (0, 5)


def test_detector_rejects_mismatched_rows(detector):
    det = detector.fit(_data()[:, :40])
    with pytest.raises(BadInput):
        det.anomaly_score(np.zeros((3, 5)))


def test_value_detectors_flag_the_level_shift():
    X = _data()
    for name in ("robust_deviation", "nsigma"):
        s = DETECTORS[name]().fit(X[:, :40]).anomaly_score(X[:, 40:])
        assert np.nanmin(s[1, 10:]) > 4, name
        assert np.nanmax(s[0]) < np.nanmin(s[1, 10:]), name


@pytest.mark.parametrize("name", sorted(THRESHOLDERS))
def test_thresholders(name):
    th = THRESHOLDERS[name]()
    assert isinstance(th, Thresholder)
    rng = np.random.default_rng(1)
    normal = np.abs(rng.normal(size=(3, 200)))
    assert th.fit(normal) is th
    test = np.abs(rng.normal(size=(3, 50)))
    test[0, 5] = 50.0
    test[1, 7] = np.nan
    flags = th.flag(test)
    assert flags.shape == test.shape and flags.dtype == bool
    assert flags[0, 5] and not flags[1, 7]
    assert flags.mean() < 0.2


def _ctx(shift_entity: str | None) -> RankContext:
    rng = np.random.default_rng(3)
    ts = np.arange(0, 60 * 60, 60, dtype=np.int64)
    names = ["a", "b", "c"]
    keys = tuple(SeriesKey.of("latency_seconds", service=s, stat="p99") for s in names)
    vals = rng.normal(1.0, 0.05, size=(3, len(ts)))
    if shift_entity:
        i = names.index(shift_entity)
        vals[i, 45:] += 2.0
        vals[0, 46:] += 1.0  # the caller suffers a bit later
    frame = MetricFrame(keys, ts, vals)
    g = DependencyGraph.from_edges([("service:a", "service:b", "calls"), ("service:b", "service:c", "calls")])
    snap = Snapshot(Window(int(ts[0]), int(ts[-1]), 60), frame)
    return RankContext(snapshot=snap, signals=frame, signal_entities=tuple(f"service:{s}" for s in names),
                       anomalies=(), graph=g, baseline=Window(0, 44 * 60, 60),
                       incident=Window(45 * 60, int(ts[-1]), 60))


@pytest.fixture(params=sorted(RANKERS))
def ranker(request):
    return RANKERS[request.param]()


def test_ranker_protocol_sorted_unique_roots(ranker):
    assert isinstance(ranker, Ranker)
    hyps = ranker.rank(_ctx("c"))
    assert hyps and all(isinstance(h, Hypothesis) for h in hyps)
    roots = [h.root for h in hyps]
    assert len(roots) == len(set(roots))
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert all(0.0 <= h.confidence <= 1.0 for h in hyps)


def test_ranker_prefers_the_deepest_anomalous_dependency(ranker):
    hyps = ranker.rank(_ctx("c"))
    assert hyps[0].root == "service:c"
    assert hyps[0].evidence and hyps[0].evidence[0].status == "anomalous"


def test_ranker_is_deterministic(ranker):
    a = ranker.rank(_ctx("b"))
    b = ranker.rank(_ctx("b"))
    assert [(h.root, h.score, h.category) for h in a] == [(h.root, h.score, h.category) for h in b]


def test_ranker_on_quiet_data_is_not_confident(ranker):
    hyps = ranker.rank(_ctx(None))
    assert all(h.confidence < 0.3 for h in hyps)


def test_ranker_on_empty_snapshot(ranker):
    ts = np.arange(0, 600, 60, dtype=np.int64)
    empty = MetricFrame.empty(ts)
    snap = Snapshot(Window(0, 540, 60), empty)
    ctx = RankContext(snapshot=snap, signals=empty, signal_entities=(), anomalies=(),
                      graph=DependencyGraph(), baseline=Window(0, 240, 60), incident=Window(300, 540, 60))
    assert ranker.rank(ctx) == []
