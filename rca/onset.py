"""Find when an incident started, without being told (``rca rank --detect-time``).

A multivariate change point: every series is scored against the first third of the data
(robust deviation); the onset is the first time the share of clearly deviating series jumps
above its normal level and stays there for two samples.
"""

from __future__ import annotations

import numpy as np

from models.deviation import RobustDeviation
from rca.errors import BadInput
from rca.types import MetricFrame

__all__ = ["detect_onset"]


def detect_onset(frame: MetricFrame, threshold: float = 4.0) -> int:
    ts = frame.timestamps
    if len(ts) < 6 or not len(frame):
        raise BadInput("too little data to detect an onset", field="metrics",
                       fix="give at least 6 samples or an inject_time.txt")
    ref = max(3, len(ts) // 3)
    det = RobustDeviation().fit(frame.values[:, :ref])
    with np.errstate(invalid="ignore"):
        share = np.nanmean(det.anomaly_score(frame.values) >= threshold, axis=0)
    share = np.nan_to_num(share)
    base = share[:ref]
    level = np.median(base) + 3 * max(np.median(np.abs(base - np.median(base))) * 1.4826, 0.01)
    above = share > level
    for j in range(ref, len(ts) - 1):
        if above[j] and above[j + 1]:
            return int(ts[j])
    return int(ts[ref + int(np.argmax(share[ref:]))])
