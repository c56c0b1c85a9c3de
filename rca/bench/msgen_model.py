"""The physics of :mod:`rca.bench.msgen`: a made-up deployment (:func:`make_system`), a fault
(:func:`make_fault`) and the per-service base signals of one recording (:func:`simulate`).

Requests enter at one or two entry services and spread along call edges (calls per request,
call probability); latency is own time (queueing on cpu utilisation) plus the callees' latency
per edge weight and lag; errors start at a service and reach callers with the edge's share;
throughput follows the entry latency (closed-loop clients). Faults change the root's own terms
only; everything the callers show comes through these equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

from rca.errors import BadInput

__all__ = ["FAULTS", "STYLES", "Edge", "Fault", "Svc", "System", "ar1", "logu", "make_fault", "make_system", "simulate"]

FAULTS = ("cpu", "mem", "disk", "delay", "loss", "socket", "code_error")
Rng = np.random.Generator

_WORDS = ("order", "cart", "payment", "user", "auth", "catalog", "shipping", "inventory", "search",
          "recommend", "review", "price", "notify", "email", "currency", "ad", "route", "station",
          "travel", "seat", "ticket", "food", "consign", "config", "basic", "security", "verify",
          "contacts", "preserve", "rebook", "cancel", "execute", "admin", "invoice", "coupon", "stock",
          "media", "rating", "session", "profile", "account", "ledger", "report", "geo", "quote", "tax",
          "loyalty", "wallet", "checkout", "product")
STYLES: dict[str, dict[str, Any]] = {
    "ticket": {"app": "ts-{w}-service", "store": "ts-{w}-mongo", "entry": ("ts-ui-dashboard", "ts-gateway-service")},
    "shop": {"app": "{w}", "store": "{w}-db", "entry": ("front-end", "edge-router")},
    "boutique": {"app": "{w}service", "store": "redis-{w}", "entry": ("frontend", "frontend-external")},
    "generic": {"app": "{w}-api", "store": "postgres-{w}", "entry": ("api-gateway", "web")},
}
# naming schemes per metric family; a set picks one variant of each
_SCHEMES: dict[str, list[Any]] = {
    "cpu": ["cpu", "cpu_usage", "container_cpu_usage", "cpu_usage_rate_pct"],
    "mem": ["mem", "memory_usage_mib", "mem_usage", "memory_working_set_bytes"],
    "disk": [("diskio",), ("disk_read", "disk_write"), ("fs_read_bytes", "fs_write_bytes")],
    "net": [("net_rx", "net_tx"), ("network_receive_bytes", "network_transmit_bytes"), ("net_in", "net_out")],
    "lat": [("latency-50", "latency-90"), ("latency_p50", "latency_p90", "latency_p99"),
            ("latency-50", "latency-90", "latency-99"), ("latency_p99",), ("response_time_avg", "response_time_p95")],
    "load": ["workload", "requests", "rps", "qps"],
    "err": ["error", "error_rate", "errors", "http_5xx"],
    "sock": ["socket", "tcp_established", "sockets"],
}


@dataclass
class Svc:
    """One service and the constants of its behaviour (units: cores, MiB, ms, req/s)."""

    name: str
    kind: str  # entry | app | store
    pods: int
    rich: int  # 0 lean (~5 columns) .. 2 rich (~40 columns)
    jvm: bool
    sidecar: bool
    instrumented: bool  # latency / workload / error columns exist
    cpu_idle: float
    cpu_per_req: float
    limit: float
    mem_base: float
    own_ms: float
    err0: float
    eta: float  # noise level multiplier
    payload: float  # bytes per request
    io: float  # disk bytes/s at mean load
    alpha: float  # share of own failures that skip the calls to callees
    mem_detail: bool = False  # rss / cache / throttling columns
    ops: tuple[str, ...] = ()


@dataclass
class Edge:
    a: int  # caller
    b: int  # callee
    mult: float  # calls per request of the caller (p_call * n_calls)
    p_call: float
    n_calls: int
    weight: float  # share of the callee's latency added to the caller's (sequential 1, parallel < 1)
    p_err: float  # share of callee errors the caller turns into its own
    lag: int  # rows
    retry: float


@dataclass
class System:
    """A made-up deployment: services in topological order (callers before callees), call edges,
    metric naming scheme and recording habits shared by every case of a set."""

    style: str
    services: list[Svc]
    edges: list[Edge]
    entries: list[int]
    entry_share: list[float]
    step: int
    scheme: dict[str, Any]
    families: set[str]
    load: float
    kappa: float  # closed-loop strength: throughput ~ (lat0 / lat)^kappa
    lat_unit: str  # ms | s
    status_style: str  # http | otel
    max_lag: int

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def callers(self, i: int) -> list[Edge]:
        return [e for e in self.edges if e.b == i]

    def callees(self, i: int) -> list[Edge]:
        return [e for e in self.edges if e.a == i]


def logu(rng: Rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# ------------------------------------------------------------------------------------ system
def _names(rng: Rng, style: str, n_entry: int, n_app: int, n_store: int) -> list[str]:
    st = STYLES[style]
    words = list(rng.permutation(_WORDS))
    apps = [st["app"].format(w=w) for w in words[:n_app]]
    stores = [st["store"].format(w=w) for w in words[:n_store]]
    if n_store and rng.random() < 0.5:
        stores[-1] = str(rng.choice(["rabbitmq", "kafka", "memcached", "mysql"]))
    return [*st["entry"][:n_entry], *apps, *stores]


def make_system(rng: Rng, services_min: int = 6, services_max: int = 30, step: int | None = None,
                style: str | None = None) -> System:
    """A random deployment with ``services_min..services_max`` services (see :class:`System`)."""
    if not 2 <= services_min <= services_max <= 2 + 2 * len(_WORDS):
        raise BadInput(f"services range {services_min}..{services_max} is not usable", field="--services-min",
                       fix=f"use 2 <= min <= max <= {2 + 2 * len(_WORDS)}")
    n = int(rng.integers(services_min, services_max + 1))
    drawn_style = str(rng.choice(list(STYLES)))  # always drawn: options do not shift the stream
    style = style or drawn_style
    n_entry = 2 if n >= 8 and rng.random() < 0.35 else 1
    n_store = int(np.clip(round(n * rng.uniform(0.1, 0.3)), 1 if n >= 4 else 0, n - n_entry - 1))
    n_app = n - n_entry - n_store
    names = _names(rng, style, n_entry, n_app, n_store)
    kinds = ["entry"] * n_entry + ["app"] * n_app + ["store"] * n_store
    fan = rng.integers(1, 5, n)
    out_deg = np.zeros(n, int)
    edges: list[tuple[int, int]] = []

    def pick_caller(i: int) -> int:
        cand = [j for j in range(i) if kinds[j] != "store" and out_deg[j] < fan[j]]
        if not cand:
            cand = [j for j in range(i) if kinds[j] != "store"]
        w = np.array([1.0 + 2.0 * (j >= i - 4) for j in cand])  # recent apps -> depth
        return int(cand[int(rng.choice(len(cand), p=w / w.sum()))])

    for i in range(n_entry, n):
        callers = {pick_caller(i)}
        if rng.random() < (0.45 if kinds[i] == "store" else 0.25):
            callers.add(pick_caller(i))
        for j in callers:
            edges.append((j, i))
            out_deg[j] += 1
    if n_entry == 2 and not any(a == 1 for a, _ in edges):  # the 2nd entry calls something too
        edges.append((1, int(rng.integers(2, n))))
    drawn_step = int(rng.choice([1, 5]))
    step = step or drawn_step
    max_lag = int(rng.integers(0, 4 if step == 5 else 9))
    E = []
    for a, b in edges:
        p_call = float(rng.uniform(0.3, 1.0))
        n_calls = int(rng.choice([1, 1, 1, 2, 3]))
        E.append(Edge(a, b, p_call * n_calls, p_call, n_calls, float(rng.choice([1.0, 1.0, rng.uniform(0.3, 0.8)])),
                      float(rng.uniform(0.3, 1.0)), int(rng.integers(0, max_lag + 1)), float(rng.uniform(0, 0.6))))
    E.sort(key=lambda e: (e.a, e.b))
    fam = {"cpu", "mem", "disk", "net", "lat", "load"}
    if rng.random() < 0.7:
        fam.add("err")
    if rng.random() < 0.5:
        fam.add("sock")
    scheme = {k: v[int(rng.integers(len(v)))] for k, v in _SCHEMES.items()}
    all_instr = rng.random() < 0.5
    svcs = []
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        store = kind == "store"
        rich = int(rng.choice([0, 0, 1, 1, 1, 2])) if not store else int(rng.choice([0, 0, 1]))
        pods = int(rng.choice([1, 1, 2, 3])) if not store else 1
        limit = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
        svcs.append(Svc(
            name=name, kind=kind, pods=pods, rich=rich, jvm=(not store) and rng.random() < 0.4,
            sidecar=(not store) and rng.random() < 0.7, instrumented=(not store) or all_instr or i < n_entry,
            cpu_idle=limit * rng.uniform(0.01, 0.06), cpu_per_req=0.0, limit=limit,
            mem_base=logu(rng, 40, 1500), own_ms=logu(rng, 0.5, 25) * (0.5 if store else 1.0),
            err0=0.0 if rng.random() < 0.35 else logu(rng, 1e-4, 8e-3), eta=logu(rng, 0.4, 2.5),
            payload=logu(rng, 300, 20000), io=logu(rng, 2e3, 2e6) * (8 if store else 1),
            alpha=float(rng.uniform(0, 1)), mem_detail=rich == 2 or (rich == 1 and rng.random() < 0.5),
            ops=_ops(rng, style, name, kind)))
    load = logu(rng, 5, 120)
    shares = [1.0] if n_entry == 1 else [0.75, 0.25]
    system = System(style, svcs, E, list(range(n_entry)), shares, step, scheme, fam, load,
                    float(rng.uniform(0.0, 0.8)), str(rng.choice(["ms", "s"])), str(rng.choice(["http", "otel"])),
                    max_lag)
    rate = _flow(system, np.full((1,), load), np.zeros((n, 1)), np.zeros((n, 1)))[:, 0]
    for s, r in zip(svcs, rate, strict=True):  # utilisation 5-55% at the mean load
        s.cpu_per_req = float(s.limit * rng.uniform(0.04, 0.5) / max(r, 1e-3))
    return system


def _ops(rng: Rng, style: str, name: str, kind: str) -> tuple[str, ...]:
    word = name.replace("ts-", "").replace("-service", "").replace("service", "").split("-")[0] or name
    if kind == "entry":
        pages = ("/", "/product/{id}", "/cart", "/cart/checkout", "/api/orders", "/login")
        k = int(rng.integers(2, 5))
        return tuple(f"{'POST' if 'checkout' in pg or 'login' in pg else 'GET'} {pg}" for pg in pages[:k])
    if kind == "store":
        return tuple(f"{v} {word}" for v in ("SELECT", "INSERT", "UPDATE"))[: int(rng.integers(1, 4))]
    if style == "boutique":
        cls = word.capitalize() + "Service"
        return tuple(f"hipstershop.{cls}/{v}{word.capitalize()}" for v in ("Get", "List", "Put"))[: int(rng.integers(1, 4))]
    verbs = ("GET", "POST", "PUT")
    acts = ("query", "create", "update", "list")
    k = int(rng.integers(1, 4))
    return tuple(f"{verbs[i % 3]} /api/v1/{word}/{acts[i]}" for i in range(k))


def _flow(system: System, entry_load: np.ndarray, own_err: np.ndarray, tot_err: np.ndarray) -> np.ndarray:
    """Request rate per service ``[S, T]``: entry load spread along the call edges; a failing
    caller skips some calls, a failing callee gets retried."""
    S = len(system.services)
    rate = np.zeros((S, entry_load.shape[0]))
    for i, sh in zip(system.entries, system.entry_share, strict=True):
        rate[i] = entry_load * sh
    for e in system.edges:  # sorted by caller; callers precede callees
        skip = system.services[e.a].alpha * own_err[e.a]
        rate[e.b] += rate[e.a] * e.mult * (1 - skip) * (1 + e.retry * tot_err[e.b])
    return rate


# ------------------------------------------------------------------------------------ helpers
def ar1(rng: Rng, shape: tuple[int, ...], phi: float | np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) noise along the last axis."""
    e = rng.standard_normal(shape)
    phi = float(phi)
    return lfilter([np.sqrt(1 - phi * phi)], [1, -phi], e, axis=-1)


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    return x if lag <= 0 else np.concatenate([np.repeat(x[..., :1], lag, axis=-1), x[..., :-lag]], axis=-1)


def _bumps(rng: Rng, T: int, rate_per_row: float, len_lo: int, len_hi: int, mag: tuple[float, float]) -> np.ndarray:
    """Sum of trapezoid episodes (load bursts, hiccups); heights log-uniform in ``mag``."""
    out = np.zeros(T)
    for _ in range(rng.poisson(rate_per_row * T)):
        s, ln = int(rng.integers(0, T)), int(rng.integers(len_lo, len_hi + 1))
        h = logu(rng, *mag)
        ramp = max(1, ln // 4)
        idx = np.arange(s, min(T, s + ln))
        shape = np.minimum(1.0, np.minimum(idx - s + 1, s + ln - idx) / ramp)
        out[idx] += h * shape
    return out


@dataclass
class Fault:
    kind: str
    root: int
    start: int  # first anomalous row (effect may lag a few rows)
    ramp: np.ndarray  # [T] 0..1 onset shape at the root
    grow: np.ndarray  # [T] 0..1 linear growth from start to the end (leaks)
    p: dict[str, float]


def make_fault(rng: Rng, system: System, kind: str, root: int, k0: int, T: int, strength: float | None = None) -> Fault:
    delay = int(rng.integers(0, 3))
    start = k0 + delay
    tt = np.arange(T)
    ramp_len = int(rng.choice([1, 1, 2, int(rng.integers(3, 12))]))
    ramp = np.clip((tt - start + 1) / ramp_len, 0, 1)
    grow = np.clip((tt - start + 1) / max(1, T - start), 0, 1)
    s = system.services[root]
    # one knob, subtle .. strong; resource hogs in chaos experiments are rarely very mild
    drawn = logu(rng, 0.2 if kind == "code_error" else 0.25, 1.0)
    strength = drawn if strength is None else strength
    p: dict[str, float] = {"strength": strength}
    if kind == "cpu":
        # a share of the headroom below the cgroup limit (a hog cannot use more than the limit)
        p["hog"] = s.limit * (1 - 0.55 * 0.5) * strength * rng.uniform(0.4, 0.9)
        p["pod"] = float(rng.integers(0, s.pods)) if s.pods > 1 and rng.random() < 0.5 else -1.0
    elif kind == "mem":
        p["leak"] = s.mem_base * strength * rng.uniform(0.3, 1.5)
        p["gc"] = rng.uniform(0, 0.4) * strength
        if rng.random() < 0.5:
            grow = 1 - np.exp(-3 * grow)
    elif kind == "disk":
        p["io"] = strength * logu(rng, 3, 30)
        p["lat"] = strength * rng.uniform(0.1, 1.0)
        p["cpu"] = strength * rng.uniform(0.01, 0.1) * s.limit
        p["which"] = float(rng.integers(0, 3))  # 0 write, 1 read, 2 both
    elif kind == "delay":
        p["delay_ms"] = max(2.0, strength * logu(rng, 10, 500))
        p["visible"] = float(rng.uniform(0.1, 1))  # share the root's own latency metric shows
    elif kind == "loss":
        p["loss"] = strength * rng.uniform(0.2, 0.8)
        p["err"] = p["loss"] * rng.uniform(0.05, 0.5)
        p["lat"] = p["loss"] * rng.uniform(1.0, 4.0)  # retransmissions
        p["tail_ms"] = p["loss"] * rng.uniform(200, 1000)  # retransmission timeouts
        p["net"] = p["loss"] * rng.uniform(0.3, 1.0)
    elif kind == "socket":
        p["sock"] = strength * logu(rng, 1, 15)
        p["err"] = strength * logu(rng, 0.002, 0.15)
        p["lat"] = strength * rng.uniform(0.2, 1.5)
    elif kind == "code_error":
        p["err"] = strength * logu(rng, 0.01, 0.5)
        p["lat"] = float(rng.uniform(0.6, 1.3))
    else:
        raise BadInput(f"unknown fault {kind!r}", field="fault", fix=f"use one of {', '.join(FAULTS)}")
    return Fault(kind, root, start, ramp, grow, p)


# ------------------------------------------------------------------------------------ simulation
def simulate(system: System, rng: Rng, T: int, fault: Fault | None) -> dict[str, np.ndarray]:
    """Per-service base signals ``[S, T]`` (before per-column noise): rate, cpu, mem, disk,
    network, latency (own / total / hidden delay), error shares, sockets, GC pause."""
    S, tt = len(system.services), np.arange(T)
    sv = system.services
    period = rng.uniform(1.0, 4.0) * T
    load = system.load * rng.uniform(0.8, 1.25)
    L = load * (1 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * tt / period + rng.uniform(0, 2 * np.pi)))
    L *= 1 + 0.03 * ar1(rng, (T,), 0.9) + _bumps(rng, T, rng.uniform(0.3, 2.0) / 700, 10, 80, (0.1, 0.8))
    z = np.zeros((S, T))
    r = fault.root if fault else -1
    on = fault.ramp if fault else np.zeros(T)
    p = fault.p if fault else {}
    kind = fault.kind if fault else ""

    # errors, bottom-up: background (Poisson-sparse later) + fault at the root + propagation
    own_err = np.array([s.err0 * np.exp(0.5 * ar1(rng, (T,), 0.8)) for s in sv])
    if kind in ("loss", "code_error"):
        own_err[r] += p["err"] * on
    if kind == "socket":  # connection errors start once the pool is mostly used
        own_err[r] += p["err"] * np.clip(fault.grow * 2 - 0.3, 0, 1)  # type: ignore[union-attr]
    own_err = np.clip(own_err, 0, 0.95)
    tot_err = own_err.copy()
    for i in range(S - 1, -1, -1):
        keep = 1 - own_err[i]
        for e in system.callees(i):
            keep = keep * (1 - e.p_err * min(1.0, e.mult) * _shift(tot_err[e.b], e.lag))
        tot_err[i] = 1 - keep

    rate0 = _flow(system, L, own_err, tot_err)
    # hiccups (GC, cron, noisy neighbour): episodes of 2-12 "noise sigmas" of cpu and latency
    hic = np.array([_bumps(rng, T, rng.uniform(0, 1.5) / 1000, 1, 12, (1.5, 8)) for _ in sv])
    lim = np.array([s.limit for s in sv])[:, None]
    eta = np.array([s.eta for s in sv])[:, None]
    cpu_sigma = 0.06 * eta * np.array([s.cpu_idle + s.cpu_per_req * rt.mean() for s, rt in zip(sv, rate0, strict=True)])[:, None]

    def cpu_of(rate: np.ndarray) -> np.ndarray:
        c = np.array([s.cpu_idle + s.cpu_per_req * rt for s, rt in zip(sv, rate, strict=True)])
        c += hic * cpu_sigma
        if kind == "cpu":
            c[r] += p["hog"] * on
        if kind == "disk":
            c[r] += p["cpu"] * on
        if kind == "code_error":
            c[r] *= 1 - 0.4 * own_err[r] * on
        return np.minimum(c, lim)  # cgroup throttling

    cpu0 = cpu_of(rate0)
    u = np.clip(cpu0 / lim, 0, 0.93)
    own_lat = np.array([s.own_ms for s in sv])[:, None] * (1 + 0.25 * u**2 / (1 - u))
    own_lat *= 1 + 0.05 * hic * eta
    own_lat *= np.exp(0.04 * ar1(rng, (S, T), 0.7))
    hidden = z.copy()
    if kind == "mem":
        own_lat[r] *= 1 + p["gc"] * fault.grow  # type: ignore[union-attr]
    elif kind == "disk":
        own_lat[r] *= 1 + p["lat"] * on
    elif kind == "delay":
        d = p["delay_ms"] * on * np.exp(0.1 * rng.standard_normal(T))
        own_lat[r] += p["visible"] * d
        hidden[r] = (1 - p["visible"]) * d
    elif kind == "loss":
        own_lat[r] *= 1 + p["lat"] * on
    elif kind == "socket":
        own_lat[r] *= 1 + p["lat"] * fault.grow  # type: ignore[union-attr]
    elif kind == "code_error":
        own_lat[r] *= 1 + (p["lat"] - 1) * on * np.clip(own_err[r] * 4, 0, 1)
    lat = own_lat.copy()
    for i in range(S - 1, -1, -1):
        for e in system.callees(i):
            lat[i] += e.weight * e.mult * _shift(lat[e.b] + hidden[e.b], e.lag)
    tail = z.copy()
    if kind == "loss":  # retransmission timeouts: the tail grows much more than the median
        tail[r] = p["tail_ms"] * on
        for e in system.callers(r):
            tail[e.a] += e.weight * _shift(tail[r], e.lag)

    # closed loop: slower entries -> fewer requests everywhere
    ent = np.mean([lat[i] for i in system.entries], axis=0)
    k0 = fault.start if fault else T
    base = np.median(ent[: max(10, k0)])
    f = np.clip((base / ent) ** system.kappa, 0.2, 1.1)
    rate = _flow(system, L * f, own_err, tot_err)
    cpu = cpu_of(rate)
    rel = rate / np.maximum(rate[:, : max(10, k0)].mean(axis=1, keepdims=True), 1e-9)

    mem = np.array([s.mem_base for s in sv])[:, None] * (1 + 0.05 * (rel - 1))
    gc = z.copy()
    for i, s in enumerate(sv):
        if s.jvm:
            P = rng.uniform(20, 200)
            mem[i] += s.mem_base * rng.uniform(0.05, 0.25) * (((tt + rng.uniform(0, P)) * rel[i]) % P) / P
            gc[i] = rng.uniform(2, 30) * (1 + 0.3 * (rel[i] - 1))
    if kind == "mem":
        mem[r] += p["leak"] * fault.grow  # type: ignore[union-attr]
        gc[r] *= 1 + 3 * p["gc"] * fault.grow  # type: ignore[union-attr]
    io = np.array([s.io for s in sv])[:, None]
    wr = io * rel
    for i, s in enumerate(sv):  # flushes / compactions
        if s.kind == "store" or s.jvm:
            wr[i] *= 1 + _bumps(rng, T, 1 / 700, 1, 4, (0.3, 2.0))
    rd = io * rng.uniform(0.1, 1.5) * rel
    if kind == "disk":
        w = int(p["which"])
        if w in (0, 2):
            wr[r] += io[r] * p["io"] * on
        if w in (1, 2):
            rd[r] += io[r] * p["io"] * on
    pay = np.array([s.payload for s in sv])[:, None]
    rx, tx = rate * pay * 0.4 + 800, rate * pay + 1200
    drop = z.copy()
    if kind == "loss":
        rx[r] *= 1 - p["net"] * on
        tx[r] *= 1 - p["net"] * on
        drop[r] = rate[r] * p["loss"] * on * 3
    sock = 4 + rate * lat / 1000 * 1.5 + np.array([rng.uniform(2, 40) for _ in sv])[:, None]
    if kind == "socket":
        sock[r] += sock[r, :k0].mean() * p["sock"] * fault.grow  # type: ignore[union-attr]
    return {"load": L * f, "rate": rate, "cpu": cpu, "mem": mem, "gc": gc, "wr": wr, "rd": rd, "rx": rx,
            "tx": tx, "drop": drop, "own_lat": own_lat, "lat": lat, "tail": tail, "hidden": hidden,
            "own_err": own_err, "tot_err": tot_err, "sock": sock,
            "hog": p["hog"] * on if kind == "cpu" else np.zeros(T), "hog_root": np.array([r, p.get("pod", -1.0)])}
