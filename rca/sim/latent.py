"""The hidden state of a simulation: per-step arrays that the emitters turn into telemetry.

A distribution per step is a mixture of lognormal components (:class:`Comp`): a component has
a weight and a median per step (arrays), a shape ``sigma`` and optionally a ``cap`` (the
distribution is truncated there, e.g. generation tokens at ``max_tokens``). Everything here
is plain numpy; the stages that fill it live in ``serving`` (vLLM), ``services`` (the call
graph) and ``resources`` (CPU, memory, GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from rca.sim.topology import Fleet, ModelSpec, Pod
from rca.sim.variant import Bystander
from rca.sim.workload import Timeline
from rca.types import LogRecord

__all__ = ["Comp", "GpuState", "Latent", "LlmState", "SvcState", "lag", "mix_cdf", "mix_mean"]


@dataclass
class Comp:
    weight: np.ndarray
    median: np.ndarray
    sigma: float
    tag: str = ""
    cap: float | np.ndarray = float("inf")   # scalar, or a column broadcasting with ``median``


def _z(x: np.ndarray, median: np.ndarray, sigma: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.log(x) - np.log(np.maximum(median, 1e-12))) / max(sigma, 1e-6)


def mix_cdf(comps: list[Comp], bounds: np.ndarray) -> np.ndarray:
    """P(X <= bound) per step: shape ``weight.shape + (len(bounds),)``; weights renormalised."""
    b = np.asarray(bounds, dtype=float)
    total = sum(np.asarray(c.weight, dtype=float) for c in comps)
    out = 0.0
    for c in comps:
        med = np.asarray(c.median, dtype=float)[..., None]
        cdf = ndtr(_z(b, med, c.sigma))
        cap = np.asarray(c.cap, dtype=float)
        if np.any(np.isfinite(cap)):
            capb = cap[..., None] if cap.ndim else cap
            top = ndtr(_z(capb, med, c.sigma))
            cdf = np.where(b >= capb, 1.0, cdf / np.maximum(top, 1e-12))
        out = out + np.asarray(c.weight, dtype=float)[..., None] * np.minimum(cdf, 1.0)
    return out / np.maximum(total, 1e-12)[..., None]


def comp_mean(c: Comp) -> np.ndarray:
    med = np.asarray(c.median, dtype=float)
    mean = med * np.exp(c.sigma ** 2 / 2)
    cap = np.asarray(c.cap, dtype=float)
    if np.any(np.isfinite(cap)):
        zc = _z(cap, med, c.sigma)
        mean = np.minimum(mean * ndtr(zc - c.sigma) / np.maximum(ndtr(zc), 1e-12), cap)
    return mean


def mix_mean(comps: list[Comp]) -> np.ndarray:
    total = sum(np.asarray(c.weight, dtype=float) for c in comps)
    return sum(np.asarray(c.weight) * comp_mean(c) for c in comps) / np.maximum(total, 1e-12)


def lag(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` delayed by ``k`` steps along the last axis (the first values repeat)."""
    if k <= 0:
        return x
    return np.concatenate([np.repeat(x[..., :1], k, axis=-1), x[..., :-k]], axis=-1)


@dataclass
class LlmState:
    """vLLM replicas, arrays ``(P, T)`` in ``Fleet.vllm_pods`` order."""

    pods: list[Pod]
    specs: list[ModelSpec]
    lam: np.ndarray                    # requests/s routed to the pod
    alive: np.ndarray                  # bool; False = pod down (no series)
    prompt: list[Comp]                 # prompt tokens
    gen: list[Comp]                    # generation tokens, tag = finished_reason
    slow_decode: np.ndarray            # TPOT multiplier from the GPU (thermal, neighbour)
    slow_prefill: np.ndarray
    fail: np.ndarray                   # share of routed requests failing at the router (503)
    out: dict[str, np.ndarray] = field(default_factory=dict)
    comps: dict[str, list[Comp]] = field(default_factory=dict)

    def col(self, attr: str) -> np.ndarray:
        """A per-pod model constant as a ``(P, 1)`` column."""
        return np.array([[float(getattr(s, attr))] for s in self.specs])


@dataclass
class SvcState:
    """One non-vLLM service, arrays ``(T,)``; latencies in seconds."""

    rate: np.ndarray
    own: np.ndarray                    # median own processing time
    sigma: float
    extra: list[Comp] = field(default_factory=list)   # fault components of the own latency
    err_own: np.ndarray | None = None  # (3, T) own failure shares for codes 500, 503, 504
    crash: np.ndarray | None = None    # (T,) share of err_own[0] that are unhandled exceptions
    mix: list[Comp] = field(default_factory=list)     # full latency incl. children (output)
    err: np.ndarray | None = None      # (3, T) total failure shares (output)


@dataclass
class GpuState:
    """DCGM-level values, arrays ``(G, T)`` in ``Fleet.gpus`` order (NaN = field not readable)."""

    util: np.ndarray                   # GPU_UTIL, % 0-100
    active: np.ndarray                 # PROF_GR_ENGINE_ACTIVE, 0-1
    power: np.ndarray                  # W
    temp: np.ndarray                   # °C
    clock: np.ndarray                  # SM clock, MHz
    fb_used: np.ndarray                # MiB
    thermal_ns: np.ndarray             # throttling ns per step (counter increments)
    power_ns: np.ndarray
    xid: np.ndarray                    # last XID value, 0 = none
    alive: np.ndarray                  # bool; False = the exporter has no series for the GPU


@dataclass
class Latent:
    seed: int
    fleet: Fleet
    tl: Timeline
    load: np.ndarray
    llm: LlmState | None = None
    svc: dict[str, SvcState] = field(default_factory=dict)
    gpu: GpuState | None = None
    alive: dict[str, np.ndarray] = field(default_factory=dict)   # pod -> bool (T,): running, scraped
    version: dict[str, str] = field(default_factory=dict)        # pod -> image version
    weight: dict[str, np.ndarray] = field(default_factory=dict)  # pod -> share of its service (T,)
    cpu: dict[str, np.ndarray] = field(default_factory=dict)     # pod -> cores
    mem: dict[str, np.ndarray] = field(default_factory=dict)     # pod -> bytes
    batch_items: np.ndarray | None = None                        # items/s of the batch job
    logs: list[LogRecord] = field(default_factory=list)          # fault-specific lines
    noise: float = 1.0                                           # scale of the latent noise terms
    load_scale: float = 1.0                                      # load level; vLLM KV capacity follows it
    extras: tuple[Bystander, ...] = ()                           # healthy bystander services

    def extras_of(self, caller: str) -> list[Bystander]:
        """Bystanders called by the service ``caller`` (wire name)."""
        return [x for x in self.extras if x.caller == caller]

    @property
    def n(self) -> int:
        return self.tl.n
