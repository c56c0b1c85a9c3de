"""Find when an incident started, without being told (``rca rank --detect-time``).

A multivariate change point on the symptom signals:

1. **Series.** Latency and error signals (``rca.catalog``), or every series when a frame has
   none (anonymous ``X1_value`` columns). Constant and empty series are dropped.
2. **Causal robust z.** Row ``t`` is scored against a reference that ends before it: median
   and scale (max of MAD and IQR, with floors) of the rows before the last checkpoint
   ``<= t``. Short frames checkpoint every row (the reference is everything before ``t``);
   long ones use ``_CHECKPOINTS`` checkpoints and a strided sample of ``_REF_SAMPLES`` rows,
   so the cost is two sorts of [series, checkpoint, sample]. NaN is no evidence: gaps are
   not counted in a reference and a pair with a gap scores nothing (forward-filling would
   turn one spike into two).
3. **Sustained, per series.** A series counts at ``t`` with ``min(z_t, z_t+1)`` (one
   reference for both): an onset must persist, a spike is the pointwise detectors' job.
   Symptoms count only in their bad direction (latency up, success rate down), so the
   recovery from an earlier fault is not an onset.
4. **Surprise, not z.** ``-log10`` of the Student-t tail with (reference rows - 1) degrees of
   freedom: z = 10 from a 3-row reference is weak evidence, from 300 rows overwhelming. A
   series adds its surprise above ``threshold + log10(rows / 10)`` (Bonferroni over rows: a
   long frame gives noise more chances), capped so one broken series cannot outvote the
   rest. ``A_t`` is the sum: one SLI far out and many series a little out both register.
5. **The first change, not the biggest.** The onset is the first ``t`` whose ``A_t`` clears an
   absolute floor, ``margin`` x every earlier ``A`` (the noise the statistic has shown so
   far) and a small share of the largest ``A`` (a murmur beside the incident is not its
   onset). A bigger peak later does not move it; when nothing qualifies the largest wins.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import stdtr

from models._robust import nan_quantiles, sorted_quantiles
from rca.catalog import classify
from rca.errors import BadInput
from rca.types import MetricFrame

__all__ = ["detect_onset"]

_SUSTAIN = 2          # rows an onset must last
_CLIP = 1e6           # |z| cap; the surprise cap below is the one that matters
_MAX_SURPRISE = 12.0  # -log10 p cap: one broken series cannot outvote the rest
_CHECKPOINTS = 32     # reference recomputations on long frames
_REF_SAMPLES = 64     # rows sampled from a long reference
_SYMPTOMS = ("latency", "errors")
_SHARE = 0.05         # an onset must reach this share of the largest score
_SMALL_REF = 8        # below this many reference rows the IQR backs up the MAD
_REL_FLOOR = 0.01     # scale floor as a share of the reference level


@lru_cache(maxsize=4096)
def _direction(name: str, stat: str) -> float:
    """+1 bad when up, -1 bad when down, 0 both ways; NaN for non-symptoms."""
    info = classify(name, stat)
    if info.family not in _SYMPTOMS and info.role not in _SYMPTOMS:
        return np.nan
    return {"up": 1.0, "down": -1.0}.get(info.bad_direction, 0.0)


def _select(frame: MetricFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values, direction) of the series the onset is looked for in: the symptoms if any of
    them vary, else every series that varies."""
    X = frame.values
    with np.errstate(invalid="ignore"):
        varies = (np.nanmax(X, axis=1) > np.nanmin(X, axis=1)) if X.shape[1] else np.zeros(len(X), bool)
    direction = np.array([_direction(k.name, k.label("stat", "value") or "value") for k in frame.keys],
                         dtype=np.float64)
    sym = varies & ~np.isnan(direction)
    rows = sym if sym.any() else varies
    X = X[rows]
    direction = np.nan_to_num(direction[rows])
    return X, direction


def _checkpoints(n: int, start: int) -> np.ndarray:
    if n - start <= _CHECKPOINTS:
        return np.arange(start, n)
    return np.unique(np.linspace(start, n - 1, _CHECKPOINTS).astype(np.intp))


def _reference(raw: np.ndarray, cps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per checkpoint the median, robust scale and number of valid rows of the reference
    before it, each [series, checkpoint]. All checkpoints in one sort: the
    reference rows are gathered into [series, checkpoint, sample], NaN-padded where a
    checkpoint has fewer rows than ``_REF_SAMPLES``."""
    size = np.minimum(cps, _REF_SAMPLES)
    m = int(size.max())
    slot = np.arange(m)
    # sample j of checkpoint c: row floor(j * (c - 1) / (size - 1)), i.e. every row while c <= m
    idx = (slot[None, :] * ((cps - 1) / np.maximum(size - 1, 1))[:, None]).astype(np.intp)
    pad = slot[None, :] >= size[:, None]
    R = raw[:, np.minimum(idx, raw.shape[1] - 1)]
    R[:, pad] = np.nan
    count = np.count_nonzero(~np.isnan(R), axis=2)  # a gap is no evidence about the reference
    R.sort(axis=2)
    q25, center, q75 = np.moveaxis(sorted_quantiles(R, count, (0.25, 0.5, 0.75)), -1, 0)
    R -= center[..., None]
    np.abs(R, out=R)
    R.sort(axis=2)
    mad = sorted_quantiles(R, count, (0.5,))[..., 0] * 1.4826
    # the MAD of a handful of rows can be ~0 by chance: the IQR backs it up there (only there:
    # the IQR breaks down when a quarter of the reference is an earlier fault's tail). Floors:
    # a share of the level and 1 % of the series' whole spread (a flat reference has no MAD)
    iqr = np.where(count < _SMALL_REF, (q75 - q25) / 1.349, 0.0)
    q = nan_quantiles(raw, (0.05, 0.95))  # one sort; np.nanpercentile loops over rows with NaN
    spread = (q[:, 1] - q[:, 0])[:, None]
    scale = np.fmax.reduce([mad, iqr, _REL_FLOOR * np.abs(center),
                            np.broadcast_to(0.01 * spread, mad.shape), np.full_like(mad, 1e-12)])
    scale[count < 2] = np.nan
    return center, scale, count.astype(np.float64)


def _scores(X: np.ndarray, direction: np.ndarray, start: int, threshold: float) -> np.ndarray:
    """A_t for t in [start, n - _SUSTAIN] (NaN elsewhere): summed sustained excess. A gap in
    either row of the pair is no evidence (filling it would turn one spike into two)."""
    n = X.shape[1]
    cps = _checkpoints(n - _SUSTAIN + 1, start)
    center, scale, size = _reference(X, cps)
    rows = np.arange(start, n - _SUSTAIN + 1)
    k = np.searchsorted(cps, rows, side="right") - 1
    C, D = center[:, k], scale[:, k]
    sustained = None
    for lag in range(_SUSTAIN):
        Z = (X[:, rows + lag] - C) / D
        Z = np.where(direction[:, None] == 0, np.abs(Z), Z * direction[:, None])
        sustained = Z if sustained is None else np.minimum(sustained, Z)
    # surprise = -log10 P(z this far | m reference rows): Student t with m - 1 degrees of
    # freedom, so a z from a 3-row reference counts for far less than one from 300 rows
    df = np.maximum(size[:, k] - 1, 1.0)
    surprise = np.zeros_like(sustained)
    with np.errstate(invalid="ignore"):
        big = sustained > 1.5  # NaN: no reference yet
    surprise[big] = -np.log10(np.maximum(stdtr(df[big], -np.minimum(sustained[big], _CLIP)), 1e-300))
    # a long frame offers noise more chances to look surprising once: Bonferroni over rows
    bar = threshold + max(0.0, np.log10(n / 10))
    A = np.full(n, np.nan)
    A[rows] = np.maximum(np.minimum(surprise, _MAX_SURPRISE) - bar, 0.0).sum(axis=0)
    return A


def _first_change(A: np.ndarray, floor: float, margin: float, share: float) -> int:
    """First index whose score clears the floor, ``margin`` x every earlier score and
    ``share`` x the largest score (a murmur next to the incident is not its onset)."""
    ok = np.flatnonzero(~np.isnan(A))
    a = A[ok]
    prior = np.concatenate([[0.0], np.maximum.accumulate(a)[:-1]])
    hit = np.flatnonzero((a > max(floor, share * a.max())) & (a > margin * prior))
    return int(ok[hit[0]] if hit.size else ok[np.argmax(a)])


def detect_onset(frame: MetricFrame, threshold: float = 3.0, min_reference: int = 3,
                 floor: float = 1.0, margin: float = 2.0, share: float = _SHARE) -> int:
    """Unix seconds of the first sample of the first sustained change (module doc).

    ``threshold``: surprise (-log10 p) a series must exceed in two consecutive samples to
    count, before the Bonferroni term; ``min_reference``: normal samples needed before the
    earliest possible onset; ``floor``, ``margin``, ``share``: how far the summed excess must
    rise, absolutely, over its own past and relative to its peak. Raises ``BadInput`` on too
    few samples or when no series varies."""
    ts = frame.timestamps
    if min_reference < 2:
        raise BadInput("min_reference must be at least 2", field="min_reference", fix="pass 2 or more")
    if len(ts) < min_reference + _SUSTAIN or not len(frame):
        raise BadInput(f"too little data to detect an onset ({len(frame)} series x {len(ts)} samples)",
                       field="metrics",
                       fix=f"give at least {min_reference + _SUSTAIN} samples or an inject_time.txt")
    X, direction = _select(frame)
    if not len(X):
        raise BadInput("no series varies: there is no change to find", field="metrics",
                       fix="give metrics that cover the incident or an inject_time.txt")
    A = _scores(X, direction, min_reference, threshold)
    return int(ts[_first_change(A, floor, margin, share)])
