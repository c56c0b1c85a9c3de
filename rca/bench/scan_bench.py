"""``rca bench scan``: the fleet scan on a generated day of metrics, vectorised vs per-series.

The matrix: ``n_series`` x ``n_points`` samples at 30 s (one day by default) of realistic
series: log-uniform levels, AR(1) noise, a daily sine on 60% of the series (random phase and
amplitude up to 1.5 noise sd), 20% integer counts, 0.1% lost scrapes. The first half is the
baseline, the second half is scanned. Into the scanned half ``n_series // 500`` (>= 2) series of
each kind are injected: level shifts (3-8 noise sd, sustained), spikes (a 1-3 point burst of
10-20 sd; for counts the size unit is max(sd, 1) and the result is rounded) and vanishing series
(no samples from the onset on).

Reported, from one run: wall time of ``fit`` + ``score`` on the whole matrix (and the process
CPU time over the same span: on a shared machine wall time also measures the neighbours; CPU
time above wall time means the scanner's threads ran in parallel), series x points per second,
peak memory (``tracemalloc`` peak of a second, traced run of fit + score — numpy reports its
buffers to tracemalloc — plus the process ``ru_maxrss`` high-water mark for reference),
detection sanity (per kind recall and onset error, false positives among the clean series), and
the same scanner looped one series at a time over ``loop_sample`` series, extrapolated to the
whole set, for the vectorisation speed-up.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.signal import lfilter

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["generate_fleet", "render_table", "run_scan_bench"]

STEP_S = 30.0
T0_S = 1_767_225_600.0  # 2026-01-01T00:00Z: a midnight, so the phase is easy to read


def generate_fleet(n_series: int, n_points: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """(X float32 [n_series, n_points], truth) with truth['kind'][i] in {'', 'shift', 'spike',
    'vanish'} and truth['onset'][i] the injected column (-1 for clean series)."""
    rng = np.random.default_rng(seed)
    t = T0_S + STEP_S * np.arange(n_points)
    level = 10 ** rng.uniform(0, 3, n_series)
    sd = level * rng.uniform(0.02, 0.1, n_series)
    phi = rng.uniform(0.0, 0.8, n_series)
    eps = rng.standard_normal((n_series, n_points)).astype(np.float32)
    noise = np.empty_like(eps)
    for p in np.unique(np.round(phi, 1)):  # AR(1) per group of similar phi: one lfilter each
        rows = np.flatnonzero(np.round(phi, 1) == p)
        noise[rows] = lfilter([np.sqrt(1 - p * p)], [1, -p], eps[rows], axis=1)
    X = level[:, None] + sd[:, None] * noise
    seasonal = rng.random(n_series) < 0.6
    amp = np.where(seasonal, rng.uniform(0.3, 1.5, n_series), 0.0) * sd
    phase = rng.uniform(0, 2 * np.pi, n_series)
    X += (amp[:, None] * np.sin(2 * np.pi * t[None, :] / 86_400.0 + phase[:, None])).astype(np.float32)
    counts = rng.random(n_series) < 0.2
    X[counts] = np.round(X[counts])
    X[rng.random(X.shape) < 0.001] = np.nan

    half = n_points // 2
    k = max(2, n_series // 500)
    size = np.where(counts, np.fmax(sd, 1.0), sd)  # a count series cannot move by less than 1
    chosen = rng.choice(n_series, size=3 * k, replace=False)
    kind = np.full(n_series, "", dtype=object)
    onset = np.full(n_series, -1, dtype=np.intp)
    span = n_points - half
    for j, row in enumerate(chosen):
        what = ("shift", "spike", "vanish")[j // k]
        at = half + int(rng.integers(span // 10, span - max(30, span // 10)))
        if what == "shift":
            X[row, at:] += rng.choice([-1, 1]) * rng.uniform(3, 8) * size[row]
        elif what == "spike":
            X[row, at: at + int(rng.integers(1, 4))] += rng.uniform(10, 20) * size[row]
        else:
            X[row, at:] = np.nan
        if counts[row]:
            X[row] = np.round(X[row])
        kind[row], onset[row] = what, at - half
    return X.astype(np.float32), {"kind": kind, "onset": onset, "baseline_points": half, "phi": phi,
                                  "seasonal_amp_sd": amp / sd, "counts": counts, "level": level, "sd": sd}


def _scan(Xb: np.ndarray, Xs: np.ndarray):
    from models.scan import FleetScanner

    return FleetScanner(step_s=STEP_S, t0_s=T0_S).fit(Xb).score(Xs)


def run_scan_bench(n_series: int = 10_000, n_points: int = 2_880, seed: int = 0, loop_sample: int = 200,
                   progress: bool = True) -> dict[str, Any]:
    """Generate, scan vectorised (timed, then traced for memory), loop a sample; see module doc."""
    say = print if progress else (lambda *a, **k: None)
    say(f"generating {n_series} x {n_points} ...")
    X, truth = generate_fleet(n_series, n_points, seed)
    half = truth["baseline_points"]
    Xb, Xs = X[:, :half], X[:, half:]

    from models.scan import FleetScanner

    say("scanning the whole matrix ...")
    c0 = time.process_time()
    t0 = time.perf_counter()
    scanner = FleetScanner(step_s=STEP_S, t0_s=T0_S).fit(Xb)
    t1 = time.perf_counter()
    res = scanner.score(Xs)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    wall = t2 - t0

    tracemalloc.start()
    _scan(Xb, Xs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    m = min(loop_sample, n_series)
    say(f"looping one series at a time over {m} series ...")
    rows = np.random.default_rng(seed + 1).choice(n_series, size=m, replace=False)
    t3 = time.perf_counter()
    for i in rows:
        _scan(Xb[i: i + 1], Xs[i: i + 1])
    loop_s = time.perf_counter() - t3
    loop_full = loop_s * n_series / max(m, 1)

    kinds = truth["kind"]
    det: dict[str, Any] = {}
    for what in ("shift", "spike", "vanish"):
        idx = np.flatnonzero(kinds == what)
        hit = res.flagged[idx]
        err = np.abs(res.onset[idx[hit]] - truth["onset"][idx[hit]])
        det[what] = {"injected": int(idx.size), "found": int(hit.sum()),
                     "median_onset_error_points": float(np.median(err)) if err.size else None,
                     "detectors": sorted(set(res.detector[idx[hit]].tolist()))}
    clean = kinds == ""
    fp = res.flagged & clean
    by = {d: int(((res.detector == d) & fp).sum()) for d in sorted(set(res.detector[fp].tolist()))}
    pts = n_series * n_points
    return {
        "n_series": n_series, "n_points": n_points, "baseline_points": half, "seed": seed,
        "fit_s": round(t1 - t0, 3), "score_s": round(t2 - t1, 3), "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "points_per_s": round(pts / wall), "peak_mem_mib_tracemalloc": round(peak / 2**20, 1),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loop_sample": m, "loop_s": round(loop_s, 3), "loop_extrapolated_s": round(loop_full, 2),
        "speedup": round(loop_full / wall, 1) if wall > 0 else None,
        "detection": det,
        "false_positives": int(fp.sum()), "clean_series": int(clean.sum()),
        "false_positive_rate": round(float(fp.sum()) / max(int(clean.sum()), 1), 5),
        "false_positives_by_detector": by,
    }


def render_table(res: dict[str, Any]) -> Table:
    """A rich Table of ``run_scan_bench``'s result."""
    from rich.table import Table

    tab = Table(title=f"fleet scan: {res['n_series']:,} series x {res['n_points']:,} points "
                      f"(baseline {res['baseline_points']:,}, seed {res['seed']})")
    tab.add_column("measure")
    tab.add_column("value", justify="right")
    rows = [
        ("wall time fit + score (s)",
         f"{res['wall_s']:.3f}  (fit {res['fit_s']:.3f}, score {res['score_s']:.3f})"),
        ("process CPU time fit + score (s)", f"{res['cpu_s']:.3f}"),
        ("series x points / s", f"{res['points_per_s']:,}"),
        ("peak memory, tracemalloc (MiB)", f"{res['peak_mem_mib_tracemalloc']:.1f}"),
        ("process maxrss (MiB)", f"{res['maxrss_mib']:.1f}"),
        (f"per-series loop, {res['loop_sample']} series (s)", f"{res['loop_s']:.3f}"),
        ("per-series loop, extrapolated (s)", f"{res['loop_extrapolated_s']:.1f}"),
        ("vectorisation speed-up", f"{res['speedup']}x"),
    ]
    for what, d in res["detection"].items():
        err = d["median_onset_error_points"]
        extra = f"  (median onset error {err:g} pts; {', '.join(d['detectors'])})" if err is not None else ""
        rows.append((f"{what}: found / injected", f"{d['found']} / {d['injected']}{extra}"))
    rows.append(("false positives / clean series",
                 f"{res['false_positives']} / {res['clean_series']}  {res['false_positives_by_detector']}"))
    for r in rows:
        tab.add_row(*r)
    return tab
