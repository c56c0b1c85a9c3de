"""Logs and traces for :mod:`rca.bench.msgen` cases, drawn from the same per-row signals as the
metrics so the three sources agree (and disagree only where real ones do: sampling, clients that
log *which* upstream was slow, noise bursts on services that have nothing to do with the fault).

``traces.csv``: a few hundred sampled requests following the call DAG; a span's duration is its
own time plus its calls (sequential, or partly parallel); a delay injected on a service's
network is seen by its *caller's* span, not by its own server span; errors start at a service
and reach callers with the edge's propagation share. ``logs.csv``: sampled INFO access lines,
WARN lines for slow calls / GC / disk / pools, ERROR lines for own and propagated errors (the
template depends on the fault), and unrelated WARN/ERROR bursts.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from rca.bench.msgen import Fault, System

__all__ = ["write_logs", "write_traces"]

SpanIndex = dict[tuple[int, int], list[tuple[str, str, bool]]]

_EXC = ("java.lang.NullPointerException", "java.lang.IllegalStateException: order state is CANCELLED",
        "java.lang.ArrayIndexOutOfBoundsException: Index 3 out of bounds for length 3",
        "runtime error: invalid memory address or nil pointer dereference",
        "KeyError: 'currency_code'", "TypeError: Cannot read properties of undefined (reading 'id')")
_ROOT_ERR = {
    "code_error": ("Unhandled exception in {op}: {exc}",
                   "{exc}\n\tat com.example.{cls}.handle({cls}.java:{line})",
                   "failed to process request {uuid}: {exc}",
                   "returning status 500 for {op}: {exc}"),
    "loss": ("read tcp {ip}:{port}->{ip2}:{port2}: read: connection reset by peer",
             "write tcp {ip}:{port}->{ip2}:{port2}: write: broken pipe",
             "upstream connect error or disconnect/reset before headers"),
    "socket": ("dial tcp {ip2}:{port2}: connect: cannot assign requested address",
               "accept4: too many open files; retrying in 5ms",
               "connection pool exhausted (max {n}), request {uuid} rejected"),
}
_GENERIC_ERR = ("request {uuid} failed: {exc}", "error handling {op}: status 500")
_CALL_ERR = ("call to {callee} failed: status 500 Internal Server Error",
             "rpc error: code = Unavailable desc = {callee}: upstream request failed",
             "error from {callee} while handling {op}: {exc}")
_TIMEOUT_ERR = ("context deadline exceeded calling {callee} ({ms} ms)",
                "i/o timeout reading from {callee} at {ip2}:{port2}")
_INFO = ("{op} 200 {ms}ms", "handled {op} for user {user} in {ms} ms", "cache hit for key {word}:{n}",
         "published event {word}.updated id={uuid}", "{op} completed, {n} items")
_STORE_INFO = ("connection accepted from {ip}:{port} #{n}", "query OK, {n} rows affected ({ms} ms)",
               "checkpoint complete: wrote {n} buffers")
_NOISE = (("WARN", "failed to refresh config from config-server: timeout after 5000ms, using cached values"),
          ("ERROR", "metrics exporter push failed: connection refused ({ip2}:{port2})"),
          ("WARN", "deprecated endpoint {op} called by client {ip}"),
          ("ERROR", "scheduled job cleanup-{word} failed: lock held by another instance"),
          ("WARN", "slow query on table {word} took {ms} ms"))


def _pods(name: str, n: int) -> list[str]:
    h = hashlib.md5(name.encode()).hexdigest()
    return [f"{name}-{h[:9]}-{h[9 + 5 * k:14 + 5 * k]}" for k in range(n)]


def write_traces(path: Path, system: System, sig: dict[str, np.ndarray], t0: int, prng: random.Random) -> SpanIndex:
    """Sampled requests as ``traces.csv``; returns ``(service, row) -> [(traceID, spanID, error)]``."""
    sv, step = system.services, system.step
    T = sig["rate"].shape[1]
    own_lat, hidden, own_err, tail = sig["own_lat"], sig["hidden"], sig["own_err"], sig["tail"]
    callees = [system.callees(i) for i in range(len(sv))]
    pods = [_pods(s.name, s.pods) for s in sv]
    per_req = float(sig["rate"].sum() / max(sig["load"].sum(), 1e-9))
    n_tr = int(min(prng.randint(150, 400), 4000 / max(per_req, 1.0)))
    weights = np.maximum(sig["load"], 1e-9).tolist()
    rows = sorted(prng.choices(range(T), weights=weights, k=max(n_tr, 20)))
    ok, bad = ("200", "500") if system.status_style == "http" else ("0", "2")
    out: list[tuple[Any, ...]] = []
    index: SpanIndex = {}

    def visit(s: int, start: float, row: int, tid: str, parent: str) -> tuple[float, bool]:
        sid = f"{prng.getrandbits(64):016x}"
        own = own_lat[s, row] * 1000 * prng.lognormvariate(0, 0.35)
        if tail[s, row] > 0 and prng.random() < 0.2:
            own += tail[s, row] * 1000 * prng.expovariate(0.5)
        err = prng.random() < own_err[s, row]
        cursor = start + own * 0.3
        for e in callees[s]:
            if err and prng.random() < sv[s].alpha:
                break
            if prng.random() > e.p_call:
                continue
            for _ in range(e.n_calls):
                net = prng.uniform(50, 400)
                dur, cerr = visit(e.b, cursor + net, min(T - 1, row + e.lag), tid, sid)
                cursor += 2 * net + (dur + hidden[e.b, min(T - 1, row + e.lag)] * 1000) * e.weight
                if cerr and prng.random() < e.p_err:
                    err = True
        end = cursor + own * 0.7
        pod = pods[s][prng.randrange(len(pods[s]))]
        out.append((tid, sid, parent, sv[s].name, prng.choice(sv[s].ops), int(start), max(1, int(end - start)),
                    bad if err else ok, pod))
        index.setdefault((s, row), []).append((tid, sid, err))
        return end - start, err

    for row in rows:
        entry = prng.choices(system.entries, weights=system.entry_share)[0]
        start = (t0 + row * step) * 1_000_000 + prng.uniform(0, step * 1_000_000)
        visit(entry, start, row, f"{prng.getrandbits(128):032x}", "")
    cols = ["traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration",
            "statusCode", "pod"]
    df = pd.DataFrame(out, columns=cols).sort_values(["startTime", "traceID"], kind="stable")
    df.to_csv(path, index=False)
    return index


def write_logs(path: Path, system: System, sig: dict[str, np.ndarray], fault: Fault, t0: int,
               prng: random.Random, spans: SpanIndex | None) -> None:
    """``logs.csv`` (timestamp ns, service, level, message, traceID, spanID)."""
    sv, step = system.services, system.step
    S, T = sig["rate"].shape
    rng = np.random.default_rng(prng.getrandbits(32))
    rate, own_err, tot_err = sig["rate"], sig["own_err"], sig["tot_err"]
    k0 = fault.start
    seen = sig["lat"] + sig["hidden"]  # what a caller waits for
    base_seen = np.median(seen[:, :k0], axis=1, keepdims=True)
    warn = "WARN" if system.status_style == "http" else "WARNING"
    reqs = np.maximum(rate, 0) * step
    q_info = prng.uniform(800, 2500) / max(reqs.sum(), 1.0)
    q_err = np.minimum(1.0, 3.0 / np.maximum(reqs.mean(axis=1, keepdims=True), 1e-9))
    n_info = rng.poisson(reqs * q_info)
    n_own = np.minimum(rng.poisson(reqs * own_err * q_err), 25)
    n_prop = np.minimum(rng.poisson(reqs * np.maximum(tot_err - own_err, 0) * q_err), 25)
    slow = np.clip(seen / base_seen - 1.4, 0, 6)
    r = fault.root
    root_part = np.zeros(T)
    if fault.kind in _ROOT_ERR:
        root_part = np.clip(1 - sv[r].err0 / np.maximum(own_err[r], 1e-12), 0, 1)
    lines: list[tuple[int, str, str, str, str, str]] = []

    def ids(s: int, row: int, want_err: bool) -> tuple[str, str]:
        cand = spans.get((s, row)) if spans else None
        if cand:
            pick = [c for c in cand if c[2] == want_err] or cand
            tid, sid, _ = prng.choice(pick)
            return tid, sid
        if prng.random() < 0.3:
            return "", ""
        return f"{prng.getrandbits(128):032x}", f"{prng.getrandbits(64):016x}"

    def fill(tpl: str, s: int, **kw: Any) -> str:
        return tpl.format(op=prng.choice(sv[s].ops), ms=prng.randint(2, 900), user=prng.randint(1000, 99999),
                          word=prng.choice(("cart", "order", "user", "item", "price")), n=prng.randint(1, 512),
                          uuid=f"{prng.getrandbits(64):016x}", exc=prng.choice(_EXC), cls=_cls(sv[s].name),
                          line=prng.randint(40, 900), ip=_ip(prng), ip2=_ip(prng), port=prng.randint(30000, 60999),
                          port2=prng.choice((80, 8080, 5432, 6379, 27017, 9090)), **kw)

    def emit(s: int, row: int, level: str, msg: str, want_err: bool = False) -> None:
        ts = (t0 + row * step) * 1_000_000_000 + prng.randrange(step * 1_000_000_000)
        lines.append((ts, sv[s].name, level, msg, *ids(s, row, want_err)))

    for s in range(S):
        store = sv[s].kind == "store"
        infos = _STORE_INFO if store else _INFO
        kids = system.callees(s)
        for row in np.flatnonzero(n_info[s]):
            for _ in range(int(n_info[s, row])):
                emit(s, int(row), "INFO", fill(prng.choice(infos), s))
        for row in np.flatnonzero(n_own[s]):
            for _ in range(int(n_own[s, row])):
                tpls = _ROOT_ERR[fault.kind] if s == r and prng.random() < root_part[row] else _GENERIC_ERR
                emit(s, int(row), "ERROR", fill(prng.choice(tpls), s), True)
        for row in np.flatnonzero(n_prop[s]):
            if not kids:
                break
            callee = max(kids, key=lambda e: tot_err[e.b, row]).b
            tpls = _TIMEOUT_ERR if fault.kind == "loss" and callee == r else _CALL_ERR
            for _ in range(int(n_prop[s, row])):
                emit(s, int(row), "ERROR", fill(prng.choice(tpls), s, callee=sv[callee].name), True)
        if kids:
            n_slow = rng.poisson(0.3 * slow[s] * (not store))
            for row in np.flatnonzero(n_slow):
                ratio = [seen[e.b, row] / base_seen[e.b, 0] for e in kids]
                callee = kids[int(np.argmax(ratio))].b
                for _ in range(int(n_slow[row])):
                    emit(s, int(row), warn, f"slow call to {sv[callee].name}: {int(seen[callee, row] * 1.5)} ms")
    _fault_warnings(emit, fault, system, sig, rng, warn)
    for _ in range(rng.poisson(0.8)):  # unrelated bursts, anywhere in time
        s = int(rng.integers(S))
        level, tpl = _NOISE[int(rng.integers(len(_NOISE)))]
        a = int(rng.integers(0, T - 5))
        for row in range(a, min(T, a + int(rng.integers(5, 40)))):
            for _ in range(int(rng.integers(1, 5))):
                emit(s, row, warn if level == "WARN" else level, fill(tpl, s))
    df = pd.DataFrame(lines, columns=["timestamp", "service", "level", "message", "traceID", "spanID"])
    df.sort_values("timestamp", kind="stable").to_csv(path, index=False)


def _fault_warnings(emit: Any, fault: Fault, system: System, sig: dict[str, np.ndarray], rng: np.random.Generator,
                    warn: str) -> None:
    """Resource-fault WARN lines at the root: GC pauses, slow fsyncs, pool usage."""
    r, T = fault.root, sig["rate"].shape[1]
    name = system.services[r].name
    if fault.kind == "mem" and system.services[r].jvm:
        n = rng.poisson(0.5 * fault.p["gc"] * fault.grow * 4)
        for row in np.flatnonzero(n):
            emit(r, int(row), warn, f"GC pause (G1 Evacuation Pause) {int(sig['gc'][r, row] * 3)}ms, heap "
                 f"{int(sig['mem'][r, row])}M")
    elif fault.kind == "disk":
        n = rng.poisson(0.3 * fault.ramp * min(1.0, fault.p["io"] / 5))
        for row in np.flatnonzero(n):
            emit(r, int(row), warn, f"fsync on /data/{name} took {int(rng.integers(200, 3000))} ms")
    elif fault.kind == "socket":
        n = rng.poisson(0.4 * fault.grow)
        for row in np.flatnonzero(n[:T]):
            emit(r, int(row), warn, f"connection pool usage {int(sig['sock'][r, row])}/{int(sig['sock'][r, 0] * 2)}")


def _cls(name: str) -> str:
    return "".join(w.capitalize() for w in name.replace("ts-", "").split("-")) or "Handler"


def _ip(prng: random.Random) -> str:
    return f"10.{prng.randint(0, 255)}.{prng.randint(0, 255)}.{prng.randint(2, 254)}"
