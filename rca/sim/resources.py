"""Container CPU/memory per pod and the GPUs' DCGM-level state, from the request flow.

GPU model (H100 SXM): a GPU used by a live vLLM replica is busy in proportion to its running
batch (``GR_ENGINE_ACTIVE`` ~0.45-0.85, ``GPU_UTIL`` 70-100 %), draws 90 W + up to 560 W,
runs at 1980 MHz and holds ``gpu_memory_utilization`` x 81559 MiB (vLLM preallocates, so
``FB_USED`` is flat). Idle GPUs sit at 345 MHz, ~70 W, ~30 °C. Temperature follows power.
"""

from __future__ import annotations

import numpy as np

from rca.sim.latent import GpuState, Latent
from rca.sim.topology import BATCH, FB_TOTAL_MIB
from rca.sim.workload import ar1, rng_for

__all__ = ["SHARED_GPU_MEM_UTIL", "base_resources", "gpu_state"]

MIB = 2 ** 20
SHARED_GPU_MEM_UTIL = 0.7   # the vLLM replica that time-slices its GPU with the batch job
BATCH_IDLE_FB_MIB = 1150.0


def base_resources(lat: Latent) -> None:
    """Traffic weight, CPU cores, memory bytes and image version per pod.

    ``lat.alive`` may already hold lifecycles set by a fault (a rollout); pods without one
    live through the whole window. A service's traffic is split over its live pods.
    """
    rng = rng_for(lat.seed, "resources")
    n = lat.n
    for spec in lat.fleet.services:
        pods = lat.fleet.pods_of(spec.wire)
        shares = rng.dirichlet(np.full(len(pods), 200.0))
        alive = np.array([lat.alive.setdefault(p.name, np.ones(n, bool)) for p in pods], dtype=float)
        weights = shares[:, None] * alive
        weights = weights / np.maximum(weights.sum(axis=0), 1e-12)
        for pod, w in zip(pods, weights, strict=True):
            lat.weight[pod.name] = w
            lat.version.setdefault(pod.name, spec.version)
            rps = lat.svc[spec.wire].rate * w
            cpu = (spec.cpu_base + spec.cpu_per_rps * rps) * np.exp(ar1(rng, (n,), 0.07 * lat.noise, 3))
            lat.cpu[pod.name] = np.minimum(cpu, spec.cpu_limit)
            lat.mem[pod.name] = _memory(rng, spec.mem_mib, n, lat.noise)
    llm = lat.llm
    assert llm is not None
    for k, pod in enumerate(llm.pods):
        lam = llm.out["lam_eff"][k]
        lat.cpu[pod.name] = (0.9 + 0.05 * lam) * np.exp(ar1(rng, (n,), 0.06 * lat.noise, 3))
        lat.mem[pod.name] = _memory(rng, 14_500 if llm.specs[k].tp > 1 else 9_200, n, lat.noise)
        lat.alive[pod.name] = llm.alive[k].copy()
        lat.version[pod.name] = "v0.12.0"
    batch = lat.fleet.batch_pod
    lat.cpu[batch.name] = BATCH.cpu_base * np.exp(ar1(rng, (n,), 0.15 * lat.noise, 3))
    lat.mem[batch.name] = _memory(rng, BATCH.mem_mib, n, lat.noise)
    lat.alive.setdefault(batch.name, np.ones(n, bool))
    lat.version[batch.name] = BATCH.version
    lat.batch_items = np.zeros(n)


def _memory(rng: np.random.Generator, mib: float, n: int, noise: float = 1.0) -> np.ndarray:
    drift = np.linspace(0, rng.uniform(-0.02, 0.05), n)
    return mib * MIB * (1 + drift) * np.exp(ar1(rng, (n,), 0.01 * noise, 40))


def gpu_state(lat: Latent) -> None:
    rng = rng_for(lat.seed, "gpu")
    fleet, llm = lat.fleet, lat.llm
    assert llm is not None
    g, n = len(fleet.gpus), lat.n
    busy = np.zeros((g, n))          # 0..1 load of the GPU's user
    used = np.zeros((g, n), bool)
    fb = np.full((g, n), 0.0)
    for k, pod in enumerate(llm.pods):
        alive = llm.alive[k]
        load = 1 - np.exp(-llm.out["running"][k] / 40.0)
        for i in pod.gpus:
            shared = i in fleet.batch_pod.gpus
            busy[i] = np.where(alive, load, 0.0)
            used[i] = alive
            util = SHARED_GPU_MEM_UTIL if shared else llm.specs[k].gpu_mem_util
            fb[i] = np.where(alive, util * FB_TOTAL_MIB + rng.uniform(380, 520), 0.0)
    for i in fleet.batch_pod.gpus:
        fb[i] += BATCH_IDLE_FB_MIB
    noise = np.exp(ar1(rng, (g, n), 0.03 * lat.noise, 3))
    active = np.where(used, np.clip((0.25 + 0.65 * busy) * noise, 0, 1), 0.0)
    util = np.where(used, np.clip(100 * (0.55 + 0.5 * busy) * noise, 0, 100), 0.0)
    clock = np.where(used, 1980 - np.abs(rng.normal(0, 6 * lat.noise, (g, n))).round(), 345.0)
    power = np.where(used, 90 + 560 * active, 68 + 4 * rng.random((g, 1))) + rng.normal(0, 3 * lat.noise, (g, n))
    temp = 27 + 0.06 * power + ar1(rng, (g, n), 0.8 * lat.noise, 10)
    lat.gpu = GpuState(util=np.round(util), active=active, power=power, temp=np.round(temp),
                       clock=clock, fb_used=np.round(fb + rng.integers(0, 3, (g, n))),
                       thermal_ns=np.zeros((g, n)), power_ns=np.zeros((g, n)),
                       xid=np.zeros((g, n)), alive=np.ones((g, n), bool))

