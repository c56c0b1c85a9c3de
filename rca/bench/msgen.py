"""A second, independent generator of microservice fault cases in the RCAEval case-folder format.

``python -m rca.bench.msgen OUT_DIR [--seed S] [--cases-per-fault N] [--sets K]
[--services-min A --services-max B]`` writes ``K`` sets ``OUT_DIR/<style>-<seed>-<k>/``, each one
made-up system (a call DAG of A..B services named like Sock Shop / Online Boutique / Train
Ticket) with ``N`` cases per fault type in ``<root>_<fault>/<rep>/`` folders and a ``cases.csv``.

Why a second generator: the public dev sets have metrics only, 60 s steps and few fault types;
the ranker must also meet logs, traces, 1-5 s steps, memory/disk/loss/socket faults and code
errors. The model is deliberately *not* shaped after any ranker: a closed-loop load generator
(slower entry -> less traffic everywhere), diurnal-ish drift, load bursts, per-service hiccups
(cpu + latency spikes that propagate to callers like real ones do), GC sawtooth, heavy-tailed
tails, Poisson error counts that are 0 most of the time, scrape gaps, constant columns, and
services with 5 to ~40 partly redundant columns. Faults act on the root and reach its callers
through the same latency/error/throughput equations the normal data follow, each call edge with
its own lag, so "the loudest column" is often not the root (delay seen mostly by callers, code
errors where the root's error column has no normal spread).

Everything is deterministic from the seed. ``generate_case`` writes one case folder,
``generate_set`` one system's set; the faults are in :data:`FAULTS`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rca.bench.msgen_model import (
    FAULTS,
    STYLES,
    Rng,
    Svc,
    System,
    ar1,
    logu,
    make_fault,
    make_system,
    simulate,
)
from rca.bench.msgen_obs import write_logs, write_traces
from rca.errors import BadInput

__all__ = ["FAULTS", "System", "generate_case", "generate_set", "main", "make_system", "simulate", "write_sets"]

_QUANT = {"50": 1.0, "avg": 1.12, "90": 1.9, "95": 2.3, "99": 3.4}


# ------------------------------------------------------------------------------------ columns
def _columns(system: System, sig: dict[str, np.ndarray], rng: Rng) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Observed columns ``{"<svc>_<metric>": values}`` and the main column per (service, family)."""
    T = sig["rate"].shape[1]
    step, sch, fam = system.step, system.scheme, system.families
    cols: dict[str, np.ndarray] = {}
    main: dict[str, str] = {}

    def noisy(x: np.ndarray, cv: float, eta: float, phi: float = 0.6) -> np.ndarray:
        return x * np.maximum(0.0, 1 + cv * eta * ar1(rng, (T,), phi))

    pct = sch["cpu"].endswith("pct")
    mem_bytes = sch["mem"].endswith("bytes")
    for i, s in enumerate(system.services):
        n, e = s.name, s.eta
        cpu = sig["cpu"][i]
        c_cpu = noisy(cpu, 0.06, e) + 0.01 * s.limit * e * np.abs(rng.standard_normal(T))
        cols[f"{n}_{sch['cpu']}"] = c_cpu / s.limit * 100 if pct else c_cpu
        main[f"{n}/cpu"] = f"{n}_{sch['cpu']}"
        mem = noisy(sig["mem"][i], 0.01, e, 0.95)
        cols[f"{n}_{sch['mem']}"] = mem * 2**20 if mem_bytes else mem
        main[f"{n}/mem"] = f"{n}_{sch['mem']}"
        disk = sch["disk"]
        if len(disk) == 1:
            cols[f"{n}_{disk[0]}"] = noisy(sig["wr"][i] + sig["rd"][i], 0.3, e, 0.3)
            main[f"{n}/disk"] = f"{n}_{disk[0]}"
        else:
            cols[f"{n}_{disk[0]}"] = noisy(sig["rd"][i], 0.35, e, 0.3)
            cols[f"{n}_{disk[1]}"] = noisy(sig["wr"][i], 0.3, e, 0.3)
            main[f"{n}/disk"], main[f"{n}/disk_read"] = f"{n}_{disk[1]}", f"{n}_{disk[0]}"
        rx, tx = noisy(sig["rx"][i], 0.08, e), noisy(sig["tx"][i], 0.08, e)
        cols[f"{n}_{sch['net'][0]}"], cols[f"{n}_{sch['net'][1]}"] = rx, tx
        main[f"{n}/net"] = f"{n}_{sch['net'][0]}"
        if s.instrumented:
            lat = sig["lat"][i]
            # a quantile of few requests is noisy: spread shrinks with the requests per step
            few = 0.25 / np.sqrt(max(1.0, float(sig["rate"][i].mean()) * step))
            for q in sch["lat"]:
                key = next(k for k in _QUANT if k in q)
                mult = _QUANT[key]
                v = lat * mult * np.exp((0.04 + few * mult**0.5) * e * ar1(rng, (T,), 0.5))
                if mult > 2:  # tail: occasional heavy-tailed outliers and the loss tail
                    v = v * np.exp(rng.exponential(0.08 * e, T)) + sig["tail"][i]
                cols[f"{n}_{q}"] = v / 1000 if system.lat_unit == "s" else v
                main.setdefault(f"{n}/lat", f"{n}_{q}")
            reqs = rng.poisson(np.maximum(sig["rate"][i], 0) * step) / step
            cols[f"{n}_{sch['load']}"] = reqs
            main[f"{n}/load"] = f"{n}_{sch['load']}"
            if "err" in fam:
                cnt = rng.poisson(np.maximum(sig["rate"][i], 0) * step * sig["tot_err"][i])
                name = sch["err"]
                cols[f"{n}_{name}"] = cnt / np.maximum(reqs * step, 1) if name == "error_rate" else cnt / step
                main[f"{n}/err"] = f"{n}_{name}"
        if "sock" in fam:
            cols[f"{n}_{sch['sock']}"] = np.round(noisy(sig["sock"][i], 0.05, e))
            main[f"{n}/sock"] = f"{n}_{sch['sock']}"
        _extras(cols, s, i, sig, rng, noisy, T)
    return cols, main


def _extras(cols: dict[str, np.ndarray], s: Svc, i: int, sig: dict[str, np.ndarray], rng: Rng,
            noisy: Any, T: int) -> None:
    """Redundant columns (per pod, sidecar, JVM, limits): rich services get many, lean none."""
    n, e = s.name, s.eta
    if s.rich == 0:
        return
    if s.pods > 1:
        share = rng.dirichlet(np.full(s.pods, 20.0))
        for k in range(s.pods):
            fams = (("cpu", 0.1), ("mem", 0.02), ("net_rx", 0.12), ("net_tx", 0.12))[: 2 * s.rich]
            for fam, cv in fams:
                src = {"cpu": "cpu", "mem": "mem", "net_rx": "rx", "net_tx": "tx"}[fam]
                base = sig[src][i] * (share[k] if fam != "mem" else 1.0)
                if fam == "cpu" and i == int(sig["hog_root"][0]) and sig["hog_root"][1] >= 0:  # hog in one pod
                    base = (sig["cpu"][i] - sig["hog"]) * share[k] + sig["hog"] * (k == int(sig["hog_root"][1]))
                cols[f"{n}_{fam}_pod{k + 1}"] = noisy(base, cv, e)
    if s.mem_detail:
        cols[f"{n}_mem_rss"] = noisy(sig["mem"][i] * 0.8, 0.015, e, 0.95)
        cols[f"{n}_mem_cache"] = noisy(sig["mem"][i] * rng.uniform(0.05, 0.3) + 10, 0.05, e, 0.95)
        cols[f"{n}_cpu_throttled"] = np.maximum(0, noisy(np.maximum(sig["cpu"][i] / s.limit - 0.7, 0) * 50, 0.3, e))
    if s.rich == 2:
        cols[f"{n}_net_rx_packets"] = noisy(sig["rx"][i] / 900, 0.08, e)
        cols[f"{n}_net_tx_packets"] = noisy(sig["tx"][i] / 900, 0.08, e)
        cols[f"{n}_net_rx_dropped"] = np.round(sig["drop"][i])
        cols[f"{n}_threads"] = np.round(noisy(20 + sig["rate"][i] * 0.2, 0.03, e))
        cols[f"{n}_fs_usage_mib"] = 100 + np.arange(T) * rng.uniform(0, 0.01) + 0.05 * rng.standard_normal(T)
        cols[f"{n}_cpu_limit"] = np.full(T, s.limit)
        cols[f"{n}_mem_limit_mib"] = np.full(T, float(2 ** int(np.ceil(np.log2(s.mem_base * 2.5)))))
    if s.sidecar:
        cols[f"{n}_istio-proxy_cpu"] = noisy(0.005 + sig["rate"][i] * 0.0004, 0.1, e)
        cols[f"{n}_istio-proxy_mem"] = noisy(np.full(T, 45.0), 0.01, e, 0.95)
    if s.jvm:
        cols[f"{n}_jvm_heap_used_mib"] = noisy(sig["mem"][i] * 0.7, 0.02, e, 0.9)
        cols[f"{n}_jvm_gc_pause_ms"] = noisy(sig["gc"][i], 0.3, e, 0.2)


def _spoil(cols: dict[str, np.ndarray], names: list[str], rng: Rng) -> None:
    """Missing cells and whole-service scrape gaps, as scraped data have."""
    T = len(next(iter(cols.values())))
    if rng.random() < 0.5:
        frac = logu(rng, 5e-4, 5e-3)
        for v in cols.values():
            v[rng.random(T) < frac] = np.nan
    for _ in range(rng.poisson(0.4)):
        svc = names[int(rng.integers(len(names)))]
        a = int(rng.integers(0, T - 10))
        ln = int(rng.integers(2, 10))
        for k, v in cols.items():
            if k.startswith(svc + "_"):
                v[a:a + ln] = np.nan


# ------------------------------------------------------------------------------------ writing
_LABEL_FAMILY = {"cpu": "cpu", "mem": "mem", "disk": "disk", "delay": "lat", "loss": "err",
                 "socket": "sock", "code_error": "err"}


def _case_rows(rng: Rng, system: System, rows: int | None) -> tuple[int, int]:
    T = rows or int(rng.integers(600, 1501))
    k0 = int(T * rng.uniform(0.45, 0.75))
    return T, k0


def _write_case(case_dir: Path, system: System, fault_kind: str, root: int, seed: int, *, logs: bool,
                traces: bool, rows: int | None = None, strength: float | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    T, k0 = _case_rows(rng, system, rows)
    fault = make_fault(rng, system, fault_kind, root, k0, T, strength)
    sig = simulate(system, rng, T, fault)
    cols, main = _columns(system, sig, rng)
    _spoil(cols, system.names, rng)
    step = system.step
    t0 = (1_700_000_000 + int(rng.integers(0, 30_000_000))) // 60 * 60
    inject = t0 + k0 * step
    case_dir.mkdir(parents=True, exist_ok=True)
    _write_metrics(case_dir / "metrics.csv", t0 + np.arange(T) * step, cols)
    (case_dir / "inject_time.txt").write_text(f"{inject}\n")
    name = system.services[root].name
    family = _LABEL_FAMILY[fault_kind]
    if fault_kind == "disk" and fault.p["which"] == 1 and f"{name}/disk_read" in main:  # a read-only hog
        family = "disk_read"
    metric = main.get(f"{name}/{family}")
    if fault_kind == "loss" and metric is None:
        metric = main.get(f"{name}/lat")
    kind_of = {"cpu": "resource", "mem": "resource", "disk": "resource", "delay": "network",
               "loss": "network", "socket": "resource", "code_error": "code"}
    label = {"root_cause_service": name, "fault": fault_kind, "root_cause_metric": metric, "source": "msgen",
             "fault_category": kind_of[fault_kind],
             "msgen": {"seed": seed, "strength": round(fault.p["strength"], 3),
                       "params": {k: round(float(v), 4) for k, v in fault.p.items()}}}
    (case_dir / "label.json").write_text(json.dumps(label, indent=1) + "\n")
    prng = random.Random(int(rng.integers(2**32)))
    spans = write_traces(case_dir / "traces.csv", system, sig, t0, prng) if traces else None
    if logs:
        write_logs(case_dir / "logs.csv", system, sig, fault, t0, prng, spans)
    return {"root_cause_service": name, "fault": fault_kind, "inject_time": inject, "n_metrics": len(cols),
            "has_logs": logs, "has_traces": traces, "n_rows": T, "n_normal_rows": k0, "n_anomalous_rows": T - k0,
            "step_s": step, "note": f"strength {fault.p['strength']:.2f}"}


def _write_metrics(path: Path, times: np.ndarray, cols: dict[str, np.ndarray]) -> None:
    """Wide CSV, 5 significant digits, a missing value empty. One C-level ``%`` per row: pandas'
    ``float_format`` formats cell by cell and was 90% of the generation time."""
    names = list(cols)
    mat = np.column_stack([times.astype(np.float64), *(cols[k] for k in names)])
    row = "%d" + ",%.5g" * len(names)
    body = "\n".join(row % tuple(r) for r in mat.tolist()).replace("nan", "")
    path.write_text("time," + ",".join(names) + "\n" + body + "\n")


def _dependency_csv(path: Path, system: System) -> None:
    pairs = sorted({(system.services[e.a].name, system.services[e.b].name) for e in system.edges})
    pd.DataFrame(pairs, columns=["caller", "callee"]).to_csv(path, index=False)


def generate_case(dir: str | Path, fault: str, seed: int, *, services_min: int = 6, services_max: int = 30,
                  root: str | None = None, logs: bool = False, traces: bool = False, dependency: bool = False,
                  step: int | None = None, rows: int | None = None, strength: float | None = None) -> Path:
    """Write one case folder ``dir`` (its own random system from ``seed``); returns ``dir``.
    ``root`` picks the faulty service by name (default: a random one); ``dependency`` also
    writes ``dependency.csv`` into the case folder; ``strength`` in (0, 1] pins the fault's
    magnitude (default: drawn, subtle .. strong). The same seed gives the same system whatever
    the other options, so a second call can target a service seen in the first."""
    if fault not in FAULTS:
        raise BadInput(f"unknown fault {fault!r}", field="fault", fix=f"use one of {', '.join(FAULTS)}")
    if rows is not None and rows < 50:
        raise BadInput(f"rows must be >= 50, got {rows}", field="rows", fix="use 600..1500 rows")
    if strength is not None and not 0 < strength <= 1:
        raise BadInput(f"strength must be in (0, 1], got {strength}", field="strength", fix="use e.g. 0.5")
    rng = np.random.default_rng([seed, 1])
    system = make_system(rng, services_min, services_max, step=step)
    pick, case_seed = int(rng.integers(len(system.services))), int(rng.integers(2**31))
    if root is None:
        idx = pick
    elif root in system.names:
        idx = system.names.index(root)
    else:
        raise BadInput(f"no service {root!r} in this system", field="root", fix=f"use one of {', '.join(system.names)}")
    out = Path(dir)
    _write_case(out, system, fault, idx, case_seed, logs=logs, traces=traces, rows=rows, strength=strength)
    if dependency:
        _dependency_csv(out / "dependency.csv", system)
    return out


def generate_set(out_dir: str | Path, seed: int, per_fault: int, *, faults: tuple[str, ...] = FAULTS,
                 services_min: int = 6, services_max: int = 30, logs: bool | None = None,
                 traces: bool | None = None, dependency: bool | None = None, style: str | None = None) -> Path:
    """Write one system's set: ``per_fault`` cases per fault type, ``cases.csv``, and (when
    ``dependency``) ``dependency.csv``. ``None`` flags are drawn from the seed."""
    if per_fault < 1:
        raise BadInput(f"cases per fault must be >= 1, got {per_fault}", field="--cases-per-fault", fix="use e.g. 5")
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        raise BadInput(f"unknown fault(s) {bad}", field="faults", fix=f"use {', '.join(FAULTS)}")
    rng = np.random.default_rng([seed, 2])
    system = make_system(rng, services_min, services_max, style=style)
    obs = bool(rng.random() < 0.5)
    logs = obs if logs is None else logs
    traces = obs if traces is None else traces
    dependency = bool(rng.random() < 0.5) if dependency is None else dependency
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, reps = [], {}
    for fault in faults:
        for _ in range(per_fault):
            root = int(rng.integers(len(system.services)))
            name = system.services[root].name
            rep = reps[(name, fault)] = reps.get((name, fault), 0) + 1
            rel = f"{name}_{fault}/{rep}"
            info = _write_case(out / rel, system, fault, root, int(rng.integers(2**31)), logs=logs, traces=traces)
            rows.append({"path": rel, **info})
    pd.DataFrame(rows).to_csv(out / "cases.csv", index=False)
    if dependency:
        _dependency_csv(out / "dependency.csv", system)
    (out / "PROVENANCE.md").write_text(
        f"Generated by `rca.bench.msgen` (seed {seed}, {per_fault} per fault, style {system.style}, "
        f"{len(system.services)} services, step {system.step} s, logs {logs}, traces {traces}, "
        f"dependency.csv {dependency}).\n")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases-per-fault", type=int, default=3, help="per set")
    ap.add_argument("--sets", type=int, default=4, help="systems (sets) to generate")
    ap.add_argument("--services-min", type=int, default=6)
    ap.add_argument("--services-max", type=int, default=30)
    a = ap.parse_args(argv)
    try:
        for path in write_sets(a.out, a.seed, a.cases_per_fault, a.sets, a.services_min, a.services_max):
            print(f"wrote {path}")
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def write_sets(out: Path, seed: int, per_fault: int, sets: int, services_min: int = 6,
               services_max: int = 30, faults: tuple[str, ...] = FAULTS) -> list[Path]:
    """``sets`` systems under ``out``: styles rotate; half with ``dependency.csv``, half with
    logs + traces, the two crossed (with 4 sets every combination once)."""
    if sets < 1:
        raise BadInput(f"--sets must be >= 1, got {sets}", field="--sets", fix="use e.g. 4")
    rng = np.random.default_rng([seed, 3])
    combos = [(k % 2 == 0, (k // 2) % 2 == 0) for k in range(sets)]
    combos = [combos[i] for i in rng.permutation(sets)]
    paths = []
    for k, (dep, obs) in enumerate(combos):
        style = list(STYLES)[(seed + k) % len(STYLES)]
        paths.append(generate_set(out / f"{style}-{seed}-{k}", seed * 1000 + k, per_fault,
                                  services_min=services_min, services_max=services_max, logs=obs,
                                  traces=obs, dependency=dep, style=style, faults=faults))
    return paths

if __name__ == "__main__":
    main()
