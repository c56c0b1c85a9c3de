"""Fleet scan: which of many series misbehave in a window, when it started, and which detector saw it.

The default detector set (``SCAN_DETECTORS``), each calibrated per series by
``CalibratedThreshold`` on its own scores over the baseline:

* ``deviation`` — ``SeasonalDeviation``: a daily/weekly profile where the baseline holds enough
  periods and the profile explains the variance, else the plain robust deviation (so the robust
  and the seasonal deviation are one pass; the result names which one a series used:
  ``robust_deviation`` or ``seasonal_deviation``);
* ``cusum`` — ``CUSUMDetector`` on the signed deviation above (seasonally adjusted where the
  profile applies): small sustained shifts and variance changes. When the baseline is too short
  to test for seasonality (< ``min_periods`` days), z is measured against a slow reference
  (half-life ``cusum_ref_halflife_s``) so a drift the baseline did not cover (the diurnal ramp)
  is not an incident; that costs sensitivity to slow or small shifts;
* ``ewma`` — ``EWMAResidual`` on the same signed deviation (for a robust-baseline series that is an
  affine map of the raw values, to which the EWMA score is invariant; for a seasonal one it removes
  the daily steps): spikes against the recent past;
* ``vanished`` — ``Vanished`` turned into the length of the current gap (in columns), so one
  lost scrape is not an incident but a series gone for longer than it ever was is.

Window score. The calibrated per-point tail probability p of a series' window maximum is
Bonferroni-adjusted over the T scored columns: score = clip(1 - T * p, 0, 1) (conservative for
autocorrelated scores). A series is flagged when score >= 1 - ``fp_per_series``, i.e. when its
maximum exceeds the per-series raw threshold at calibrated level 1 - fp_per_series / T; with a
calibrated null, about ``fp_per_series`` of clean series per detector would fire per scan.
The tail scale of each calibration is floored at what clean i.i.d. Gaussian data would give
(|z| and EWMA: 0.4, the mean excess of |N(0, 1)| over its 95% quantile; CUSUM: 1 / (2 k h), the
exponential tail of a CUSUM of unit normal increments; gaps: a minute), because a day of
autocorrelated scores holds only a few independent excursions above the tail quantile and the
fitted scale is often too small. The onset is the earliest column over threshold among the
detectors that fired (for CUSUM: the start of the run that led to the alarm); ``detector``,
``peak`` (the column of that detector's maximum score — for CUSUM the end of the excursion) and
``direction`` (sign of the deviation there) come from the detector with the smallest p.

Work is done in chunks of ``chunk_size`` series (float32 by default), which bounds memory;
every step is vectorised over the series of a chunk, and chunks run on ``n_jobs`` threads
(numpy and scipy release the GIL inside their kernels; results do not depend on n_jobs).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from models._robust import as_float_matrix
from models.base import BaseDetector
from models.changepoint import CUSUMDetector
from models.presence import Vanished
from models.seasonal import SeasonalDeviation
from models.smoothing import EWMAResidual
from models.thresholds import CalibratedThreshold
from rca.errors import BadInput

__all__ = ["SCAN_DETECTORS", "FleetScanner", "ScanResult", "missing_run_length"]

SCAN_DETECTORS = ("deviation", "cusum", "ewma", "vanished")


@dataclass(frozen=True, eq=False)
class ScanResult:
    """Per series (row of the scored matrix). ``onset``/``peak`` are column indices of the scored
    matrix (-1 where not flagged / no data). ``direction``: 'up', 'down', 'missing' or ''.
    ``detector``: the detector that fired ('' if none). ``detector_scores[name]``: that
    detector's window score in [0, 1]."""

    score: np.ndarray
    flagged: np.ndarray
    onset: np.ndarray
    peak: np.ndarray
    peak_value: np.ndarray
    direction: np.ndarray
    detector: np.ndarray
    detector_scores: dict[str, np.ndarray] = field(default_factory=dict)

    def flagged_rows(self) -> np.ndarray:
        """Indices of flagged series, most anomalous first."""
        rows = np.flatnonzero(self.flagged)
        return rows[np.argsort(-self.score[rows], kind="stable")]


def missing_run_length(missing: np.ndarray) -> np.ndarray:
    """Per column, how many consecutive columns up to and including it were missing (1.0 flags);
    NaN rows stay NaN. Causal, counted from column 0 of the input."""
    m = np.asarray(missing)
    gone = m > 0  # NaN compares False
    run = gone.astype(np.float32)
    if m.shape[1] > 1:  # only rows with consecutive gaps need the running index
        rows = np.flatnonzero((gone[:, 1:] & gone[:, :-1]).any(axis=1))
        if rows.size:
            cols = np.arange(m.shape[1], dtype=np.int32)[None, :]
            last_present = np.where(gone[rows], -1, cols)
            np.maximum.accumulate(last_present, axis=1, out=last_present)
            run[rows] = cols - last_present
    nan_rows = np.isnan(m[:, 0]) if m.shape[1] else np.zeros(m.shape[0], bool)
    if nan_rows.any():
        run[nan_rows] = np.where(np.isnan(m[nan_rows]), np.nan, run[nan_rows])
    return run


@dataclass
class _Chunk:
    rows: slice
    deviation: SeasonalDeviation
    cusum: CUSUMDetector
    ewma: EWMAResidual
    vanished: Vanished
    cal: dict[str, CalibratedThreshold]


class FleetScanner(BaseDetector):
    """``fit(X_baseline)`` then ``score(X) -> ScanResult``; X's column 0 follows the baseline
    unless ``score_t0_s`` is set (see ``SeasonalDeviation`` for the time parameters)."""

    def __init__(self, step_s: float = 30.0, t0_s: float = 0.0, score_t0_s: float | None = None,
                 fp_per_series: float = 1e-4, q_tail: float = 0.95, min_periods: int = 2,
                 ewma_alpha: float = 0.05, cusum_k: float = 0.5, cusum_ref_halflife_s: float = 1800.0,
                 detectors: tuple[str, ...] = SCAN_DETECTORS,
                 chunk_size: int = 2048, n_jobs: int = 2, float32: bool = True) -> None:
        self.step_s = step_s
        self.t0_s = t0_s
        self.score_t0_s = score_t0_s
        self.fp_per_series = fp_per_series
        self.q_tail = q_tail
        self.min_periods = min_periods
        self.ewma_alpha = ewma_alpha
        self.cusum_k = cusum_k
        self.cusum_ref_halflife_s = cusum_ref_halflife_s
        self.detectors = detectors
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.float32 = float32

    def _matrix(self, X: np.ndarray, name: str) -> np.ndarray:
        X = as_float_matrix(X, name)
        return X.astype(np.float32 if self.float32 else np.float64, copy=False)

    def _map(self, fn, items: list) -> list:
        """``fn`` over chunks, on ``n_jobs`` threads (numpy releases the GIL in its kernels)."""
        if int(self.n_jobs) <= 1 or len(items) <= 1:
            return [fn(it) for it in items]
        with ThreadPoolExecutor(max_workers=int(self.n_jobs)) as ex:
            return list(ex.map(fn, items))

    def fit(self, X_baseline: np.ndarray) -> FleetScanner:
        unknown = set(self.detectors) - set(SCAN_DETECTORS)
        if unknown:
            raise BadInput(f"unknown scan detectors {sorted(unknown)}", field="detectors",
                           fix=f"use a subset of {list(SCAN_DETECTORS)}")
        X = self._matrix(X_baseline, "X_baseline")
        size = max(1, int(self.chunk_size))
        rows = [slice(lo, min(lo + size, X.shape[0])) for lo in range(0, X.shape[0], size)]
        self.chunks_ = self._map(lambda r: self._fit_chunk(r, X[r]), rows)
        self.n_series_ = int(X.shape[0])
        return self

    def _fit_chunk(self, rows: slice, Xb: np.ndarray) -> _Chunk:
        gap_floor = max(1.0, 60.0 / self.step_s)  # a gap shorter than ~a minute never counts
        dev = SeasonalDeviation(step_s=self.step_s, t0_s=self.t0_s, min_periods=self.min_periods)
        zb = dev.fit_signed_deviation(Xb)
        # with enough history for the seasonal test, z is already seasonally adjusted (or the series
        # is not seasonal): keep CUSUM's full sensitivity. Without it, follow slow drifts.
        can_test_season = Xb.shape[1] * self.step_s >= self.min_periods * dev.period_s
        cus = CUSUMDetector(k=self.cusum_k, standardize=False,
                            ref_halflife=None if can_test_season else self.cusum_ref_halflife_s / self.step_s)
        cus_b = cus.fit_score(zb)
        # EWMA runs on z: its std is floored at half the baseline scale
        ew = EWMAResidual(alpha=self.ewma_alpha, abs_floor=0.5)
        cal = {}
        if "deviation" in self.detectors:
            cal["deviation"] = self._cal(0.4).fit(np.abs(zb))
        if "cusum" in self.detectors:
            cal["cusum"] = self._cal(1.0 / (2 * self.cusum_k * cus.h)).fit(cus_b)
        if "ewma" in self.detectors:
            cal["ewma"] = self._cal(0.4).fit(ew.fit_score(zb))
        van = Vanished().fit(Xb)
        if "vanished" in self.detectors:
            cal["vanished"] = self._cal(gap_floor).fit(missing_run_length(van.anomaly_score(Xb)))
        return _Chunk(rows, dev, cus, ew, van, cal)

    def _cal(self, min_tail_scale: float) -> CalibratedThreshold:
        return CalibratedThreshold(q_tail=self.q_tail, min_tail_scale=min_tail_scale)

    def score(self, X: np.ndarray) -> ScanResult:
        X = self._matrix(X, "X")
        if not hasattr(self, "chunks_"):
            raise BadInput("FleetScanner is not fitted", field="fit", fix="call fit(baseline) first")
        if X.shape[0] != self.n_series_:
            raise BadInput(f"X has {X.shape[0]} series, fit saw {self.n_series_}", field="X",
                           fix="score the same rows the scanner was fitted on")
        names = [d for d in SCAN_DETECTORS if d in self.detectors]
        parts = self._map(lambda ch: self._score_chunk(ch, X[ch.rows], names), self.chunks_)
        if parts:
            logp, onset, peak = (np.concatenate([p[i] for p in parts], axis=1) for i in range(3))
            sign, model = (np.concatenate([p[i] for p in parts]) for i in (3, 4))
        else:
            logp = np.zeros((len(names), 0))
            onset = peak = np.zeros((len(names), 0), dtype=np.intp)
            sign, model = np.zeros(0, dtype=np.int8), np.zeros(0, dtype=object)
        return self._combine(X, names, logp, onset, peak, sign, model, X.shape[1])

    def _score_chunk(self, ch: _Chunk, Xc: np.ndarray, names: list[str]) -> tuple[np.ndarray, ...]:
        n, t = Xc.shape
        level = 1.0 - self.fp_per_series / max(t, 1)
        logp = np.full((len(names), n), np.inf)  # log10 of the Bonferroni window tail probability
        onset = np.full((len(names), n), -1, dtype=np.intp)
        peak = np.full((len(names), n), -1, dtype=np.intp)
        model = np.where(ch.deviation.kind_ > 0, "seasonal_deviation", "robust_deviation").astype(object)
        z = ch.deviation.signed_deviation(Xc, t0_s=self.score_t0_s)
        for j, name in enumerate(names):
            if name == "deviation":
                S = np.abs(z)
            elif name == "cusum":
                S = ch.cusum.anomaly_score(z)
            elif name == "ewma":
                S = ch.ewma.anomaly_score(z)
            else:
                S = missing_run_length(ch.vanished.anomaly_score(Xc))
            lp, on, pk = self._window(S, ch.cal[name], level, t)
            if name == "cusum" and (on >= 0).any():
                rows = np.flatnonzero(on >= 0)
                on[rows] = ch.cusum.onset(z[rows], on[rows], rows)
            elif name == "vanished" and (on >= 0).any():  # the gap started run-length - 1 earlier
                rows = np.flatnonzero(on >= 0)
                on[rows] = on[rows] - S[rows, on[rows]].astype(np.intp) + 1
            logp[j], onset[j], peak[j] = lp, on, pk
        pk_best = peak[np.argmin(logp, axis=0), np.arange(n)] if names else np.zeros(n, dtype=np.intp)
        zc = z[np.arange(n), np.clip(pk_best, 0, max(t - 1, 0))] if t else np.zeros(n)
        sign = np.sign(np.nan_to_num(zc)).astype(np.int8)
        return logp, onset, peak, sign, model

    @staticmethod
    def _window(S: np.ndarray, cal: CalibratedThreshold, level: float,
                t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log10 Bonferroni tail prob of the row max, first column over threshold or -1, peak column)."""
        n = S.shape[0]
        if t == 0:
            return np.zeros(n), np.full(n, -1, dtype=np.intp), np.full(n, -1, dtype=np.intp)
        S[np.isnan(S)] = -np.inf
        pk = np.argmax(S, axis=1)
        smax = S[np.arange(n), pk].astype(np.float64)
        thr = cal.thresholds(level)
        fired = smax >= thr
        on = np.full(n, -1, dtype=np.intp)
        if fired.any():
            rows = np.flatnonzero(fired)
            on[rows] = np.argmax(S[rows] >= thr[rows, None].astype(S.dtype), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = cal.tail_probability(smax)
            lp = np.log10(np.clip(p * t, 1e-300, None))
        lp = np.where(np.isfinite(smax) & ~np.isnan(p), lp, 0.0)
        pk = np.where(np.isfinite(smax), pk, -1)
        return lp, on, pk

    def _combine(self, X: np.ndarray, names: list[str], logp: np.ndarray, onset: np.ndarray, peak: np.ndarray,
                 sign: np.ndarray, model: np.ndarray, t: int) -> ScanResult:
        n = X.shape[0]
        cols = np.arange(n)
        best = np.argmin(logp, axis=0) if names else np.zeros(n, dtype=np.intp)
        det_scores = {nm: np.clip(1.0 - 10.0 ** logp[j], 0.0, 1.0) for j, nm in enumerate(names)}
        score = np.clip(1.0 - 10.0 ** logp[best, cols], 0.0, 1.0) if names else np.zeros(n)
        fired = onset >= 0
        flagged = fired.any(axis=0)
        on = np.where(fired, onset, np.iinfo(np.intp).max).min(axis=0)
        on = np.where(flagged, on, -1)
        pk = np.where(flagged, peak[best, cols], -1)
        pv = np.full(n, np.nan)
        ok = pk >= 0
        pv[ok] = X[cols[ok], pk[ok]]
        best_name = np.asarray(names, dtype=object)[best] if names else np.full(n, "", dtype=object)
        detector = np.where(best_name == "deviation", model, best_name)
        detector = np.where(flagged, detector, "").astype(str)
        direction = np.where(sign > 0, "up", np.where(sign < 0, "down", ""))
        direction = np.where(best_name == "vanished", "missing", direction)
        direction = np.where(flagged, direction, "").astype(str)
        return ScanResult(score=score, flagged=flagged, onset=on, peak=pk, peak_value=pv, direction=direction,
                          detector=detector, detector_scores=det_scores)
