"""``rca detect FILE``: score a CSV of series with the streaming detector (``models.streaming``).

Formats:

* ``nab``  — NAB's ``timestamp,value``;
* ``wide`` — first column ``timestamp`` (or ``time``), every other column a numeric series; each
  column is scored and a row reports its highest score and, in ``series``, which column it came from.

Modes:

* ``streaming=True`` — causal: the score of row t uses rows <= t only (what a live feed would
  have said at t). The first rows have little history and score low.
* ``streaming=False`` — the whole file may be used. Rows after the first 15% are scored as in
  streaming (their history is everything before them); the first 15% — where a streaming detector
  has too little history — are scored by the same detector run backwards in time, so their
  "history" is the rest of the file.

Scores are in [0, 1): ``r / (1 + r)`` of the detector's record ratio, so 0.5 means "as surprising
as the most surprising thing in the recent past". ``is_anomaly`` is ``anomaly_score >=
DEFAULT_THRESHOLD`` = 0.6: the detector's own alert level (its ``trigger``), which is also where
NAB's threshold sweep (standard profile) lands on our synthetic NAB-like corpora
(``rca.bench.nab_synth``). Rows of the streaming warm-up (no history yet) can still be flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.streaming import StreamingNAB
from rca.errors import BadInput

__all__ = ["DEFAULT_THRESHOLD", "detect_file", "score_matrix"]

DEFAULT_THRESHOLD = 0.6
BASELINE_FRACTION = 0.15


def score_matrix(X: np.ndarray, streaming: bool) -> np.ndarray:
    """Scores in [0, 1] of ``X`` [n_series, n_time] (0 where a value is missing)."""
    det = StreamingNAB()
    fwd = det.fit(np.empty((X.shape[0], 0))).anomaly_score(X)
    if not streaming and X.shape[1]:
        b = max(int(BASELINE_FRACTION * X.shape[1]), 1)
        back = det.anomaly_score(X[:, ::-1])[:, ::-1]
        fwd[:, :b] = back[:, :b]
    return np.nan_to_num(fwd, nan=0.0)


def _numeric(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce")
    bad = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInput(f"column {col!r} of {path.name} has a non-numeric value {raw.iloc[i]!r} (data row {i + 1})",
                       field=col, fix="keep only numbers (or empty cells for missing values) in series columns")
    return vals.to_numpy(dtype=np.float64)


def _read(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BadInput(f"{path.name} is not a readable CSV: {e}", field="FILE", fix="pass a CSV with a header row") from e
    if df.empty:
        raise BadInput(f"{path.name} has no data rows", field="FILE", fix="pass a CSV with at least one row")
    return df


def detect_file(path: Path, fmt: str, streaming: bool) -> pd.DataFrame:
    """Columns ``timestamp, anomaly_score, is_anomaly`` (+ ``series`` for ``wide``), one row per input row."""
    path = Path(path)
    df = _read(path)
    if fmt == "nab":
        for col in ("timestamp", "value"):
            if col not in df.columns:
                raise BadInput(f"{path.name} has no {col!r} column (columns: {list(df.columns)})", field=col,
                               fix="NAB files have the header timestamp,value")
        X = _numeric(df, "value", path)[None, :]
        ts, names = df["timestamp"], None
    elif fmt == "wide":
        first = str(df.columns[0])
        if first.strip().lower() not in ("timestamp", "time"):
            raise BadInput(f"the first column of {path.name} is {first!r}", field="timestamp",
                           fix="make the first column 'timestamp' (or 'time'), then one column per series")
        names = [str(c) for c in df.columns[1:]]
        if not names:
            raise BadInput(f"{path.name} has no series columns", field="FILE",
                           fix="add one numeric column per series after the timestamp column")
        X = np.vstack([_numeric(df, c, path) for c in names])
        ts = df[df.columns[0]]
    else:
        raise BadInput(f"unknown format {fmt!r}", field="--format", fix="use nab or wide")
    S = score_matrix(X, streaming)
    out = pd.DataFrame({"timestamp": ts.to_numpy(), "anomaly_score": S.max(axis=0)})
    out["is_anomaly"] = out["anomaly_score"] >= DEFAULT_THRESHOLD
    if names is not None:
        out["series"] = np.asarray(names, dtype=object)[S.argmax(axis=0)]
    return out
