"""detect_onset: the first sustained multivariate change, on generated frames."""

from __future__ import annotations

import numpy as np
import pytest

from rca.errors import BadInput
from rca.onset import detect_onset
from rca.types import MetricFrame, SeriesKey

STEP = 60
T0 = 1_700_000_000


def _frame(values: np.ndarray, names: list[str]) -> MetricFrame:
    keys = tuple(SeriesKey.of(n, service=f"svc{i}") for i, n in enumerate(names))
    return MetricFrame(keys, T0 + STEP * np.arange(values.shape[1]), values)


def _noise(rng: np.random.Generator, n_series: int, n: int, level: float = 0.2) -> np.ndarray:
    return level + 0.01 * rng.standard_normal((n_series, n))


def _index(frame: MetricFrame, t: int) -> int:
    return int(np.searchsorted(frame.timestamps, t))


@pytest.mark.parametrize(("n_normal", "n_anomalous"), [(3, 8), (5, 9), (30, 10), (1400, 10)])
@pytest.mark.parametrize("seed", [0, 1])
def test_step_change_found_within_one_step(n_normal, n_anomalous, seed):
    rng = np.random.default_rng(seed)
    n = n_normal + n_anomalous
    V = _noise(rng, 40, n)
    V[:8, n_normal:] += 0.1  # 10 sigma slower on a fifth of the latency series
    f = _frame(V, ["server_latency_p99_s"] * 40)
    assert abs(_index(f, detect_onset(f)) - n_normal) <= 1


def test_one_series_two_row_fault_in_a_long_frame():
    """A single SLI out for two rows after 1,440 normal rows of 50 series (the CIRCA shape)."""
    rng = np.random.default_rng(3)
    V = rng.standard_normal((50, 1450))
    V[0, 1440:1442] += 8.0
    f = _frame(V, ["value"] * 50)
    assert _index(f, detect_onset(f)) == 1440


def test_nan_gaps_neither_hide_nor_fake_the_onset():
    rng = np.random.default_rng(4)
    V = _noise(rng, 40, 200)
    V[:10, 150:] += 0.1
    V[rng.random(V.shape) < 0.05] = np.nan
    V[:, 40] = np.nan  # a scrape that lost every series
    spikes = rng.integers(0, 40, size=20), rng.integers(5, 140, size=20)
    V[spikes] += 0.2  # isolated spikes next to gaps must not read as sustained
    f = _frame(V, ["client_latency_p90_s"] * 40)
    assert abs(_index(f, detect_onset(f)) - 150) <= 1


def test_first_sustained_change_beats_a_later_bigger_peak():
    rng = np.random.default_rng(5)
    V = _noise(rng, 40, 300)
    V[:6, 120:] += 0.08   # the incident starts here ...
    V[:30, 220:] += 0.5   # ... and gets much worse later
    f = _frame(V, ["request_latency_seconds"] * 40)
    assert abs(_index(f, detect_onset(f)) - 120) <= 1


def test_symptoms_are_preferred_over_a_noisier_earlier_cause():
    """CPU wanders off early; latency/errors say when users were hurt."""
    rng = np.random.default_rng(6)
    lat = _noise(rng, 20, 120)
    lat[:5, 80:] += 0.1
    cpu = 50 + rng.standard_normal((20, 120))
    cpu[:, 30:] += 20
    f = _frame(np.vstack([lat, cpu]), ["server_latency_p99_s"] * 20 + ["cpu_usage_rate_pct"] * 20)
    assert abs(_index(f, detect_onset(f)) - 80) <= 1


def test_falls_back_to_every_series_without_symptoms():
    rng = np.random.default_rng(7)
    V = rng.standard_normal((20, 100))
    V[3:6, 70:] += 6
    f = _frame(V, ["value"] * 20)
    assert abs(_index(f, detect_onset(f)) - 70) <= 1


def test_constant_symptoms_do_not_block_the_fallback():
    rng = np.random.default_rng(8)
    V = np.vstack([np.full((3, 60), 0.5), rng.standard_normal((10, 60))])
    V[5:9, 40:] += 6
    f = _frame(V, ["server_latency_p99_s"] * 3 + ["value"] * 10)
    assert abs(_index(f, detect_onset(f)) - 40) <= 1


def test_recovery_from_an_earlier_fault_is_not_the_onset():
    """Latency falls back to normal in the first rows (the tail of the previous fault)."""
    rng = np.random.default_rng(9)
    V = _noise(rng, 30, 14)
    V[:10, :3] += 0.3
    V[:10, 8:] += 0.1
    f = _frame(V, ["server_latency_p95_s"] * 30)
    assert abs(_index(f, detect_onset(f)) - 8) <= 1


def test_bad_direction_counts_for_success_rate():
    rng = np.random.default_rng(10)
    V = 99.5 + 0.05 * rng.standard_normal((10, 80))
    V[:4, 50:] -= 5
    f = _frame(V, ["success_rate_pct"] * 10)
    assert abs(_index(f, detect_onset(f)) - 50) <= 1


def test_returns_a_sample_time():
    rng = np.random.default_rng(11)
    V = rng.standard_normal((5, 30))
    V[:, 20:] += 8
    f = _frame(V, ["value"] * 5)
    assert detect_onset(f) in set(f.timestamps.tolist())


@pytest.mark.parametrize("n", [0, 1, 4])
def test_too_little_data_is_bad_input(n):
    f = _frame(np.ones((3, n)), ["value"] * 3)
    with pytest.raises(BadInput) as e:
        detect_onset(f)
    assert e.value.field == "metrics"


def test_no_series_is_bad_input():
    with pytest.raises(BadInput):
        detect_onset(MetricFrame.empty(T0 + STEP * np.arange(20)))


def test_nothing_varies_is_bad_input():
    with pytest.raises(BadInput, match="no series varies"):
        detect_onset(_frame(np.full((4, 20), 1.0), ["value"] * 4))
