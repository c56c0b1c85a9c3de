"""Fast, NaN-aware robust statistics over the rows of a matrix (shared by the temporal detectors).

``np.nanpercentile(X, q, axis=1)`` falls back to a Python loop over rows when NaNs are present;
one ``np.sort`` along the rows (NaN sorts last) plus the per-row count of valid values gives every
quantile of every row in a single vectorised pass. float32 inputs stay float32 (the fleet scan
uses it to halve memory traffic); everything else is float64.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.base import as_matrix

__all__ = ["as_float_matrix", "ffill_rows", "nan_quantiles", "quantum", "robust_center_scale",
           "sorted_quantiles"]


def as_float_matrix(X: Any, name: str = "X") -> np.ndarray:
    """``models.base.as_matrix`` that keeps float32."""
    return as_matrix(X, name, keep_float32=True)


def sorted_quantiles(S: np.ndarray, count: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles ``qs`` (linear interpolation, numpy's default) of rows already sorted along the
    last axis with NaNs last; ``count`` holds the number of valid values per row.
    Returns ``[..., len(qs)]``; NaN for rows without data."""
    n_last = S.shape[-1]
    out = np.full(S.shape[:-1] + (len(qs),), np.nan, dtype=S.dtype)
    if n_last == 0:
        return out
    valid = count > 0
    last = np.maximum(count - 1, 0)
    for j, q in enumerate(qs):
        pos = q * last
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, last)
        frac = (pos - lo).astype(S.dtype)
        v_lo = np.take_along_axis(S, lo[..., None], axis=-1)[..., 0]
        v_hi = np.take_along_axis(S, hi[..., None], axis=-1)[..., 0]
        out[..., j] = np.where(valid, v_lo + (v_hi - v_lo) * frac, np.nan)
    return out


def nan_quantiles(X: np.ndarray, qs: Sequence[float], axis: int = -1) -> np.ndarray:
    """Per-row NaN-ignoring quantiles via one sort; returns ``[..., len(qs)]``."""
    X = np.moveaxis(X, axis, -1)
    S = np.sort(X, axis=-1)
    count = np.count_nonzero(~np.isnan(X), axis=-1)
    return sorted_quantiles(S, count, qs)


def quantum(S: np.ndarray) -> np.ndarray:
    """Resolution of the data in each row of ``S`` (rows sorted, NaN last): the smallest positive
    gap between its values, and at least 1 when every value is an integer (so a counter that sat
    at 0 in the baseline still has resolution 1); 0 for constant non-integer rows."""
    if S.shape[1] == 0:
        return np.zeros(S.shape[0], dtype=S.dtype)
    with np.errstate(invalid="ignore"):
        integer = np.all((np.round(S) == S) | np.isnan(S), axis=1)
    D = np.diff(S, axis=1)
    D[~(D > 0)] = np.inf
    q = D.min(axis=1) if D.shape[1] else np.full(S.shape[0], np.inf)
    q = np.where(np.isfinite(q), q, 0)
    return np.where(integer, np.fmax(q, 1.0), q).astype(S.dtype)


def robust_center_scale(X: np.ndarray, rel_floor: float, abs_floor: float,
                        with_quantum: bool = False) -> tuple[np.ndarray, ...]:
    """Per-row median and robust scale, the same definition as ``RobustDeviation``:
    scale = max(IQR / 1.349, 1.4826 * MAD, rel_floor * |median|, abs_floor). NaN rows stay NaN.
    ``with_quantum`` adds a third array, the data resolution (``quantum``); the scale is then
    also floored at it, so a one-step change of quantised data (counts) is at most one unit."""
    if X.shape[1] == 0:
        nan = np.full(X.shape[0], np.nan, dtype=X.dtype)
        return (nan, nan.copy(), np.zeros_like(nan)) if with_quantum else (nan, nan.copy())
    S = np.sort(X, axis=1)
    q = sorted_quantiles(S, np.count_nonzero(~np.isnan(X), axis=1), (0.25, 0.5, 0.75))
    med = q[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mad = nan_quantiles(np.abs(X - med[:, None]), (0.5,))[:, 0]
        scale = np.fmax.reduce([(q[:, 2] - q[:, 0]) / 1.349, 1.4826 * mad, rel_floor * np.abs(med),
                                np.full_like(med, abs_floor)])
    if with_quantum:
        qu = quantum(S)
        scale = np.fmax(scale, qu)
    scale = np.where(np.isnan(med), np.nan, scale).astype(X.dtype, copy=False)
    return (med, scale, qu) if with_quantum else (med, scale)


def ffill_rows(X: np.ndarray, fill: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Forward-fill NaNs along each row; leading NaNs take ``fill[row]``. No copy if no NaN.

    Fast path for the common case of isolated lost samples: one shifted ``where``; only rows
    with runs of >= 2 NaNs pay for the running-maximum index fill."""
    mask = np.isnan(X) if mask is None else mask
    if not mask.any():
        return X
    n, t = X.shape
    prev = np.empty_like(X)
    prev[:, 0] = fill
    prev[:, 1:] = X[:, :-1]
    out = np.where(mask, prev, X)
    runs = np.flatnonzero((mask[:, 1:] & mask[:, :-1]).any(axis=1) | (mask[:, 0] & np.isnan(prev[:, 0])))
    if runs.size:
        Xr, mr = X[runs], mask[runs]
        idx = np.where(mr, 0, np.arange(t)[None, :])
        np.maximum.accumulate(idx, axis=1, out=idx)
        filled = np.take_along_axis(Xr, idx, axis=1)
        lead = mr[:, 0]  # only a leading run can still be NaN
        if lead.any():
            f = np.asarray(fill, dtype=X.dtype)[runs][lead, None]
            filled[lead] = np.where(np.isnan(filled[lead]), f, filled[lead])
        out[runs] = filled
    return out
