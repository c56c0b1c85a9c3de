"""``rca bench detect DIR --format nab``: the Numenta Anomaly Benchmark on a NAB-layout corpus.

Corpus layout (as NAB's repo): ``data/<category>/<file>.csv`` with columns ``timestamp,value`` and
``labels/combined_windows.json`` mapping ``"<category>/<file>.csv"`` to ``[[start, end], ...]``.
Every detector is run CAUSALLY on every file (the score at row t uses rows <= t only) and scored
with ``rca.bench.nab_score`` (exact NAB v1.1 scoring, one threshold per profile for the corpus).

Detectors in the same run, so ours is read beside references:

* ``ours`` — ``models.streaming.StreamingNAB`` (this project's streaming detector);
* ``windowed_gaussian`` — NAB's own baseline (``windowedGaussian_detector.py``): mean/std of a
  window of the last 6400 values that slides by 100 rows, score ``1 - Q(|z|)``;
* ``random`` — NAB's random detector (uniform scores, seeded per file);
* ``null`` — NAB's null detector (constant 0.5): 0 by construction.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table
from scipy.special import erfc

from rca.bench.nab_score import PROFILES, score_corpus, window_rows
from rca.errors import BadInput

__all__ = ["DETECTOR_FNS", "load_corpus", "render_table", "run_nab_bench", "windowed_gaussian"]

PUBLISHED = {"Numenta HTM": 70.1, "CAD OSE": 69.9, "ARTime": 74.9}  # standard profile, real NAB


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed Gaussian, vectorised. Row t is scored against the window NAB holds after t-1
    records: the first ``min(t, window)`` values, then every ``step`` records it slides by ``step``."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.empty(0)
    xc = x - x[0]  # centring for numerically stable cumulative sums (causal: uses row 0 only)
    c1 = np.r_[0.0, np.cumsum(xc)]
    c2 = np.r_[0.0, np.cumsum(xc * xc)]
    t = np.arange(n)
    steps = np.maximum(t - window, 0) // step
    lo = steps * step
    hi = np.minimum(t, window) + steps * step
    cnt = np.maximum(hi - lo, 1)
    mean = (c1[hi] - c1[lo]) / cnt
    var = np.maximum((c2[hi] - c2[lo]) / cnt - mean * mean, 0.0)
    std = np.sqrt(var)
    std = np.where(std == 0.0, 1e-6, std)
    z = np.abs(xc - mean) / std
    score = 1.0 - 0.5 * erfc(z / np.sqrt(2.0))
    score[0] = 0.0  # NAB scores 0 until the window holds a value
    return score


def _ours(values: np.ndarray) -> np.ndarray:
    from models.streaming import StreamingNAB

    det = StreamingNAB().fit(np.empty((1, 0)))
    return np.nan_to_num(det.anomaly_score(values[None, :])[0], nan=0.0)


def _random(values: np.ndarray, name: str = "") -> np.ndarray:
    return np.random.default_rng(zlib.crc32(name.encode())).random(len(values))


DETECTOR_FNS: dict[str, Callable[..., np.ndarray]] = {
    "ours": _ours,
    "windowed_gaussian": windowed_gaussian,
    "random": _random,
    "null": lambda v: np.full(len(v), 0.5),
}


def load_corpus(root: Path) -> list[dict[str, Any]]:
    """Files of a NAB corpus: name, timestamps (datetime64), values and window row ranges."""
    data, lab = root / "data", root / "labels" / "combined_windows.json"
    if not data.is_dir() or not lab.is_file():
        raise BadInput(f"{root} is not a NAB corpus", field="DIR",
                       fix="pass a folder with data/<category>/<file>.csv and labels/combined_windows.json")
    labels = json.loads(lab.read_text())
    files = []
    for path in sorted(data.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        df = pd.read_csv(path)
        if not {"timestamp", "value"} <= set(df.columns):
            raise BadInput(f"{name} lacks timestamp,value columns", field=name,
                           fix="NAB files have the header timestamp,value")
        ts = pd.to_datetime(df["timestamp"]).values
        values = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64)
        wins = [(pd.Timestamp(a).to_datetime64(), pd.Timestamp(b).to_datetime64()) for a, b in labels.get(name, [])]
        files.append({"name": name, "timestamps": ts, "values": values, "windows": window_rows(ts, wins)})
    if not files:
        raise BadInput(f"no CSV under {data}", field="DIR", fix="put files at data/<category>/<file>.csv")
    return files


def run_nab_bench(root: Path, progress: bool = True) -> dict[str, Any]:
    """Run every detector of ``DETECTOR_FNS`` causally over the corpus and score the three profiles."""
    files = load_corpus(Path(root))
    wins = [f["windows"] for f in files]
    out: dict[str, Any] = {"corpus": str(root), "files": len(files), "rows": int(sum(len(f["values"]) for f in files)),
                           "windows": int(sum(len(w) for w in wins)), "published_standard": PUBLISHED,
                           "detectors": {}}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("NAB", total=len(DETECTOR_FNS) * len(files))
        for name, fn in DETECTOR_FNS.items():
            t0 = time.perf_counter()
            scores = []
            for f in files:
                s = fn(f["values"], f["name"]) if name == "random" else fn(f["values"])
                scores.append(np.clip(np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0), 0.0, 1.0))
                bar.advance(task)
            elapsed = time.perf_counter() - t0
            res = {p: score_corpus(scores, wins, cost).as_dict() for p, cost in PROFILES.items()}
            res["elapsed_s"] = round(elapsed, 2)
            out["detectors"][name] = res
    return out


def render_table(res: dict[str, Any]) -> Table:
    """One row per detector: the three normalised NAB scores, then the standard profile's details."""
    t = Table(title=f"NAB — {res['files']} files, {res['rows']} rows, {res['windows']} windows "
                    f"(published, real NAB, standard: " + ", ".join(f"{k} {v}" for k, v in res["published_standard"].items())
              + ")")
    for col in ("detector", "standard", "low FP", "low FN", "raw std", "threshold", "TP win", "FN win",
                "FP rows", "seconds"):
        t.add_column(col, justify="left" if col == "detector" else "right")
    for name, r in res["detectors"].items():
        s = r["standard"]
        t.add_row(name, f"{s['normalised']:.1f}", f"{r['reward_low_FP_rate']['normalised']:.1f}",
                  f"{r['reward_low_FN_rate']['normalised']:.1f}", f"{s['raw']:.2f}", f"{s['threshold']:.4g}",
                  str(s["tp_windows"]), str(s["fn_windows"]), str(s["fp_rows"]), f"{r['elapsed_s']:.1f}")
    return t
