"""A NAB-like synthetic corpus, for tuning and validating streaming detectors without real NAB data.

``python -m rca.bench.nab_synth OUT --seed 1 [--files 58]`` writes ``OUT/data/<category>/<file>.csv``
(``timestamp,value``) and ``OUT/labels/combined_windows.json`` in NAB's layout. Categories mimic the
character of NAB's real files (not their values):

* ``artificialWithAnomaly`` / ``artificialNoAnomaly`` — clean periodic or flat signals with
  spikes, jumps, level shifts and drifts (NAB's art_* files);
* ``realAWSCloudwatch`` — CPU / network / disk: noisy levels, rare natural spikes, variance
  regimes; anomalies are level shifts, spikes, variance bursts, slow ramps;
* ``realAdExchange`` — hourly CPC/CPM: heavy-tailed, daily pattern, ~1,600 rows;
* ``realKnownCause`` — machine temperature (slow drift, dips), NYC taxi (daily + weekly season,
  anomalies break the pattern), request latency;
* ``realTraffic`` — occupancy / speed, irregular steps, daily rhythm, outages;
* ``realTweets`` — heavy-tailed counts with natural bursts; labelled bursts are bigger and longer.

Windows follow NAB: width = 10% of the file's rows / number of windows, centred on the anomaly's
start, 0–4 windows per file, anomalies after the probationary period. Unlabelled natural extremes
(bursts, spikes smaller than the labelled ones) are there on purpose: real NAB has them, and a
detector that fires on every extreme pays for it. The point is to rank detectors honestly on
another seed than the one they were tuned on; it cannot predict real-NAB scores.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_corpus", "write_corpus"]

Rng = np.random.Generator


def _season(n: int, step_min: float, rng: Rng, weekly: bool = False) -> np.ndarray:
    t = np.arange(n) * step_min / 60.0  # hours
    phase = rng.uniform(0, 2 * np.pi)
    s = np.sin(2 * np.pi * t / 24 + phase) + 0.3 * np.sin(4 * np.pi * t / 24 + 2 * phase)
    if weekly:
        s = s * (1 - 0.35 * ((t // 24) % 7 >= 5))
    return s


def _ar(n: int, rng: Rng, phi: float, scale: float) -> np.ndarray:
    e = rng.normal(0, scale, n)
    out = np.empty(n)
    acc = 0.0
    # a tiny per-sample loop over generated data only (not a detector hot path)
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


# ------------------------------------------------------------------------------------ base signals
def _artificial(n, step, rng):
    kind = rng.choice(["flat", "sine", "square"])
    lvl = rng.uniform(20, 80)
    if kind == "flat":
        return lvl + rng.normal(0, rng.uniform(0.5, 3), n)
    if kind == "sine":
        return lvl + rng.uniform(5, 20) * _season(n, step, rng) + rng.normal(0, 1, n)
    sq = np.sign(_season(n, step, rng))
    return lvl + rng.uniform(5, 20) * sq + rng.normal(0, 1, n)


def _aws(n, step, rng):
    lvl = rng.uniform(2, 60)
    x = lvl + _ar(n, rng, rng.uniform(0.3, 0.95), rng.uniform(0.2, 2.0))
    # variance regimes and rare natural spikes (unlabelled)
    regime = np.repeat(rng.uniform(0.6, 1.8, n // 500 + 1), 500)[:n]
    x = lvl + (x - lvl) * regime
    k = rng.poisson(n / 800)
    idx = rng.integers(0, n, k)
    x[idx] += rng.exponential(lvl * 0.25 + 2, k)
    return np.clip(x, 0, None)


def _adexchange(n, step, rng):
    base = rng.uniform(0.2, 2.0)
    s = _season(n, step, rng)
    x = base * np.exp(0.3 * s + _ar(n, rng, 0.5, 0.25))
    return x


def _knowncause(n, step, rng):
    kind = rng.choice(["machine_temp", "taxi", "latency"])
    if kind == "machine_temp":
        return 80 + np.cumsum(rng.normal(0, 0.05, n)) + _ar(n, rng, 0.9, 0.6)
    if kind == "taxi":
        lvl = rng.uniform(8000, 20000)
        return lvl * (1 + 0.6 * _season(n, step, rng, weekly=True)) + rng.normal(0, lvl * 0.04, n)
    return rng.uniform(20, 60) * np.exp(_ar(n, rng, 0.6, 0.12))


def _traffic(n, step, rng):
    s = _season(n, step, rng, weekly=True)
    if rng.random() < 0.5:  # occupancy (%): busy peaks
        return np.clip(8 + 10 * np.maximum(s, 0) ** 2 + rng.gamma(2, 1.5, n), 0, 100)
    return np.clip(60 - 15 * np.maximum(s, 0) ** 2 + rng.normal(0, 4, n), 0, None)  # speed


def _tweets(n, step, rng):
    lam = rng.uniform(3, 40) * np.exp(0.5 * _season(n, step, rng))
    bursts = np.zeros(n)
    for _ in range(rng.poisson(n / 1500)):  # unlabelled natural bursts
        i = rng.integers(0, n)
        bursts[i:i + rng.integers(1, 12)] += rng.uniform(1, 4)
    return rng.poisson(lam * (1 + bursts)).astype(np.float64)


CATEGORIES: dict[str, tuple[Callable, tuple[int, int], list[float]]] = {
    # name: (base, (min rows, max rows), step minutes choices)
    "artificialWithAnomaly": (_artificial, (4032, 4032), [5.0]),
    "artificialNoAnomaly": (_artificial, (4032, 4032), [5.0]),
    "realAWSCloudwatch": (_aws, (1200, 4800), [5.0]),
    "realAdExchange": (_adexchange, (1500, 1700), [60.0]),
    "realKnownCause": (_knowncause, (1100, 22000), [5.0, 30.0]),
    "realTraffic": (_traffic, (1100, 2500), [5.0, 10.0]),
    "realTweets": (_tweets, (10000, 16000), [5.0]),
}
WEIGHTS = {"artificialWithAnomaly": 6, "artificialNoAnomaly": 3, "realAWSCloudwatch": 17, "realAdExchange": 6,
           "realKnownCause": 7, "realTraffic": 7, "realTweets": 10}


# ------------------------------------------------------------------------------------ anomalies
def _inject(x: np.ndarray, i: int, rng: Rng, category: str) -> str:
    """Put one anomaly starting at row i (in place). Size is relative to the local spread."""
    n = len(x)
    ref = x[max(0, i - 500):i]
    spread = max(np.percentile(ref, 90) - np.percentile(ref, 10), 1e-3 * (abs(np.median(ref)) + 1), 1e-6)
    lvl = np.median(ref)
    kinds = ["spike", "shift", "ramp", "variance", "dip", "burst", "flatline"]
    p = {"realTweets": [0.25, 0.1, 0.05, 0.05, 0.05, 0.45, 0.05],
         "realKnownCause": [0.2, 0.2, 0.2, 0.1, 0.2, 0.05, 0.05]}.get(category, [0.25, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1])
    kind = rng.choice(kinds, p=p)
    sign = rng.choice([-1.0, 1.0])
    mag = spread * rng.uniform(0.8, 3.0)
    if kind == "spike":
        x[i:i + rng.integers(1, 4)] += mag * 1.5 * (sign if lvl > mag * 2 else 1.0)
    elif kind == "shift":
        x[i:] += sign * mag
    elif kind == "ramp":
        L = int(rng.integers(30, max(31, n // 10)))
        r = np.minimum(np.arange(n - i) / L, 1.0)
        x[i:] += sign * mag * 1.2 * r
    elif kind == "variance":
        L = int(rng.integers(50, 400))
        seg = x[i:i + L]
        x[i:i + L] = np.median(seg) + (seg - np.median(seg)) * rng.uniform(2.5, 5) + rng.normal(0, spread * 0.3, len(seg))
    elif kind == "dip":
        L = int(rng.integers(5, 60))
        x[i:i + L] = lvl - rng.uniform(0.8, 1.5) * spread
    elif kind == "burst":
        L = int(rng.integers(5, 60))
        x[i:i + L] += mag * rng.uniform(1.0, 2.0)
    else:  # flatline: the signal freezes (stuck sensor / stalled pipeline)
        L = int(rng.integers(30, 300))
        x[i:i + L] = x[i]
    return str(kind)


def _make_file(category: str, rng: Rng, start: pd.Timestamp) -> tuple[pd.DataFrame, list[list[str]], list[str]]:
    base, (lo, hi), steps = CATEGORIES[category]
    n = int(rng.integers(lo, hi + 1))
    step = float(rng.choice(steps))
    x = base(n, step, rng).astype(np.float64)
    if category == "artificialNoAnomaly":
        k = 0
    else:
        k = int(rng.choice([1, 2, 2, 3, 4] if category != "artificialWithAnomaly" else [1, 1, 2]))
    width = int(0.1 * n / max(k, 1))
    prob = int(min(np.floor(0.15 * n), 750))
    starts: list[int] = []
    slots = np.arange(prob + width // 2 + 1, n - width // 2 - 1)
    for _ in range(k):
        ok = [s for s in rng.permutation(slots)[:200] if all(abs(s - t) > width + 5 for t in starts)]
        if ok:
            starts.append(int(ok[0]))
    starts.sort()
    kinds = [_inject(x, i, rng, category) for i in starts]
    if category == "realTweets":
        x = np.round(np.clip(x, 0, None))
    secs = np.arange(n) * step * 60.0
    if category == "realTraffic":  # irregular sampling, as NAB's traffic files
        secs = np.cumsum(np.r_[0, step * 60.0 * rng.uniform(0.6, 1.6, n - 1)]).round(-1)
    ts = start + pd.to_timedelta(secs, unit="s")
    df = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": np.round(x, 4)})
    wins = []
    for i in starts:
        a, b = max(i - width // 2, 0), min(i - width // 2 + width - 1, n - 1)
        wins.append([ts[a].strftime("%Y-%m-%d %H:%M:%S.%f"), ts[b].strftime("%Y-%m-%d %H:%M:%S.%f")])
    return df, wins, kinds


def make_corpus(seed: int, n_files: int = 58) -> dict[str, tuple[pd.DataFrame, list[list[str]], list[str]]]:
    """``{"<category>/<file>.csv": (frame, windows, anomaly kinds)}``, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    cats = list(WEIGHTS)
    p = np.array([WEIGHTS[c] for c in cats], dtype=float)
    counts = np.maximum(np.round(p / p.sum() * n_files).astype(int), 1)
    out = {}
    for c, m in zip(cats, counts, strict=True):
        for j in range(m):
            start = pd.Timestamp("2014-01-01") + pd.Timedelta(days=int(rng.integers(0, 400)))
            out[f"{c}/s{seed}_{c[:6]}_{j}.csv"] = _make_file(c, rng, start)
    return out


def write_corpus(root: Path, seed: int, n_files: int = 58) -> Path:
    """Write the corpus in NAB's layout under ``root``; returns ``root``. The kind of each labelled
    anomaly goes to ``labels/synth_kinds.json`` (diagnostics only; NAB tools ignore it)."""
    labels, kinds = {}, {}
    for name, (df, wins, kk) in make_corpus(seed, n_files).items():
        p = root / "data" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(p, index=False)
        labels[name] = wins
        kinds[name] = kk
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for fname, obj in (("combined_windows.json", labels), ("synth_kinds.json", kinds)):
        lab = root / "labels" / fname
        old = json.loads(lab.read_text()) if lab.is_file() else {}
        lab.write_text(json.dumps({**old, **obj}, indent=1))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, action="append", required=True,
                    help="repeat to pool several seeds into one corpus")
    ap.add_argument("--files", type=int, default=58, help="files per seed")
    a = ap.parse_args()
    for s in a.seed:
        write_corpus(a.out, s, a.files)  # several seeds pool into one corpus
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
