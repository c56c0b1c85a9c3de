"""Shared plumbing of the scikit-learn style contract (see ``rca.protocols.Detector``)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from rca.errors import BadInput

__all__ = ["BaseDetector", "as_matrix"]


def as_matrix(X: Any, name: str = "X", keep_float32: bool = False) -> np.ndarray:
    """``X`` as a 2-D float64 array ``[n_series, n_time]`` (a 1-D input is one series);
    ``keep_float32`` leaves float32 input as it is (the fleet scanner works in float32)."""
    a = np.asarray(X)
    if not (keep_float32 and a.dtype == np.float32):
        a = a.astype(np.float64, copy=False)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise BadInput(f"expected a 2-D matrix [series, time], got {a.ndim}-D", field=name,
                       fix="pass values shaped (n_series, n_time)")
    return a


class BaseDetector:
    """``get_params``/``set_params`` from the constructor signature; nothing else."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> BaseDetector:
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise BadInput(f"unknown parameter {k!r}", field=k, fix=f"use one of {sorted(valid)}")
            setattr(self, k, v)
        return self

    def _check_fitted(self, X: np.ndarray, attr: str) -> None:
        if not hasattr(self, attr):
            raise BadInput(f"{type(self).__name__} is not fitted", field="fit", fix="call fit(baseline) first")
        n = getattr(self, attr).shape[0]
        if X.shape[0] != n:
            raise BadInput(f"X has {X.shape[0]} series, fit saw {n}", field="X",
                           fix="score the same rows the detector was fitted on")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
