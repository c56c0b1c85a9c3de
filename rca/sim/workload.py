"""Time axis and offered load of one simulation.

* step 15 s; the window is 4 h of history before an anchor time plus >= 30 min after it, and
  always >= 10 min after the question time;
* the anchor is 2026-11-20T20:00:00Z minus a seed-dependent 0-40 min shift;
* gateway load: ~40 req/s x daily seasonality (+-30 %, peak 19:00 UTC) x slow lognormal noise
  (~5 %) x short Poisson bursts (+20-50 % for 1-3 min), in every period alike. A varied run
  scales the level (``scale``) and the noise (``noise``); 1.0 and 1.0 are the exact defaults.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from rca.types import Window

__all__ = ["ANCHOR", "STEP", "Timeline", "ar1", "gateway_load", "make_timeline", "rng_for"]

STEP = 15
ANCHOR = 1795204800  # 2026-11-20T20:00:00Z
HISTORY_S = 4 * 3600
AFTER_S = 30 * 60
BASE_RPS = 40.0
PEAK_HOUR_UTC = 19.0


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per purpose, derived from ``seed`` (never global state)."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Timeline:
    window: Window
    anchor: int
    onset: int            # fault onset (unix s, on the step grid)
    question_time: int    # unix s, whole minute

    @property
    def ts(self) -> np.ndarray:
        return self.window.timestamps()

    @property
    def n(self) -> int:
        return len(self.ts)

    def idx(self, t: int) -> int:
        """Index of the first step at or after ``t`` (clamped to the window)."""
        i = -(-(t - self.window.start) // self.window.step)
        return int(min(max(i, 0), self.n - 1))


def make_timeline(seed: int, onset_before_question_s: int = 480) -> Timeline:
    rng = rng_for(seed, "timeline")
    anchor = ANCHOR - 60 * int(rng.integers(0, 41))
    jitter = STEP * int(rng.integers(-4, 5))
    onset = int(round((anchor - onset_before_question_s + jitter) / STEP)) * STEP
    question = (onset + onset_before_question_s) // 60 * 60
    start = anchor - HISTORY_S
    end = max(anchor + AFTER_S, question + 600)
    end = start + -(-(end - start) // STEP) * STEP
    return Timeline(Window(start, end, STEP), anchor, onset, question)


def ar1(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, tau_steps: float) -> np.ndarray:
    """Stationary AR(1) noise along the last axis with std ``sigma`` and time constant ``tau``."""
    a = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    e = rng.standard_normal(shape) * sigma
    e[..., 1:] *= np.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], e, axis=-1)


def gateway_load(seed: int, ts: np.ndarray, scale: float = 1.0, noise_scale: float = 1.0) -> np.ndarray:
    """Gateway requests/s per step (``scale`` x the base level, ``noise_scale`` x its noise)."""
    rng = rng_for(seed, "load")
    hours = (ts % 86400) / 3600.0
    season = 1.0 + 0.3 * np.cos(2 * np.pi * (hours - PEAK_HOUR_UTC) / 24.0)
    noise = np.exp(ar1(rng, (len(ts),), 0.04 * noise_scale, 8) + 0.02 * noise_scale * rng.standard_normal(len(ts)))
    burst = np.ones(len(ts))
    n_bursts = int(rng.poisson(1.5 * (ts[-1] - ts[0]) / 3600.0))
    for start, length, amp in zip(rng.integers(0, len(ts), n_bursts), rng.integers(4, 13, n_bursts),
                                  rng.uniform(0.2, 0.5, n_bursts), strict=True):
        shape = np.minimum(1.0, np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / 2.0)
        seg = slice(int(start), min(len(ts), int(start) + int(length)))
        burst[seg] += amp * shape[: seg.stop - seg.start]
    return BASE_RPS * scale * season * noise * burst
