"""GPU faults: Xid 79 (fallen off the bus), thermal throttling, a noisy time-sliced neighbour."""

from __future__ import annotations

import numpy as np

from rca.sim.faults import Fault, FaultCtx
from rca.sim.logs import node_log, pod_log
from rca.sim.topology import Fleet
from rca.sim.workload import STEP, ar1
from rca.types import EntityId

__all__ = ["NoisyNeighbor", "Thermal", "Xid"]

FAIL_STEPS = 4     # the router keeps sending to a dead replica for ~1 min (503s)


def _user_row(c: FaultCtx, gpu_eid: EntityId) -> int:
    llm = c.lat.llm
    assert llm is not None
    gi = c.lat.fleet.gpu_index(gpu_eid)
    return next(k for k, p in enumerate(llm.pods) if gi in p.gpus)


class Xid(Fault):
    """Xid 79 on one GPU of a llama-3-70b replica: the GPU and the replica are gone."""

    kind = "xid"

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [fleet.gpus[i].eid for p in fleet.vllm_pods if p.model == "llama-3-70b" for i in p.gpus]

    def inputs(self, c: FaultCtx) -> None:
        llm = c.lat.llm
        assert llm is not None
        k = _user_row(c, c.target)
        dead, moved = c.start + 1, c.start + 1 + FAIL_STEPS
        llm.alive[k, dead:] = False
        llm.fail[k, dead:moved] = 1.0
        peers = [j for j, p in enumerate(llm.pods) if p.model == llm.pods[k].model and j != k]
        for j in peers:
            llm.lam[j, moved:] += llm.lam[k, moved:] / len(peers)
        llm.lam[k, moved:] = 0.0

    def resources(self, c: FaultCtx) -> None:
        gpu = c.lat.gpu
        assert gpu is not None
        gi = c.lat.fleet.gpu_index(c.target)
        shown = 1 + int(c.rng.integers(0, 2))
        gpu.xid[gi, c.start:c.start + shown] = 79
        for arr in (gpu.util, gpu.active, gpu.power, gpu.temp, gpu.clock, gpu.fb_used):
            arr[gi, c.start + 1:] = np.nan
        gpu.alive[gi, c.start + shown:] = False

    def logs(self, c: FaultCtx) -> None:
        fleet = c.lat.fleet
        g = fleet.gpus[fleet.gpu_index(c.target)]
        pod = fleet.pod(str(g.pod))
        t0 = c.t_ns(c.start, -float(c.rng.uniform(2, 12)))
        pid = int(c.rng.integers(1000, 60000))
        for j, body in enumerate([
            f"NVRM: Xid (PCI:{g.kernel_pci}): 79, pid={pid}, GPU has fallen off the bus.",
            f"NVRM: GPU {g.kernel_pci}.0: GPU has fallen off the bus.",
            "NVRM: A GPU crash dump has been created. If possible, please run nvidia-bug-report.sh as "
            "root to collect this data before the NVIDIA kernel module is unloaded.",
        ]):
            c.lat.logs.append(node_log(t0 + j * 1_000_000, g.node, "ERROR", body))
        for j, body in enumerate([
            "RuntimeError: CUDA error: unspecified launch failure. CUDA kernel errors might be "
            "asynchronously reported at some other API call, so the stacktrace below might be incorrect.",
            f"NCCL watchdog: rank {g.index % 4} timed out waiting for collective, aborting communicator",
            "EngineCore encountered a fatal error.",
            "Engine core proc EngineCore_0 died unexpectedly, shutting down client.",
        ]):
            c.lat.logs.append(pod_log(t0 + (400 + 300 * j) * 1_000_000, pod, "ERROR", body))
        routers = fleet.pods_of("llm-router")
        up = f"{pod.name} ({pod.ip}:8000)"
        for idx in range(c.start + 1, min(c.start + 1 + FAIL_STEPS, c.lat.n)):
            for r in routers:
                body = f"upstream {up} request failed: connection refused; returning 503 model={pod.model}"
                c.lat.logs.append(pod_log(c.t_ns(idx, -float(c.rng.uniform(0, STEP))), r, "ERROR", body))
        for r in routers:
            body = f"removed unhealthy upstream {pod.name} from pool model={pod.model} healthy=2/3"
            c.lat.logs.append(pod_log(c.t_ns(c.start + 1 + FAIL_STEPS, -1.0), r, "WARN", body))


class Thermal(Fault):
    """A cooling failure: one GPU heats to 90+ °C and throttles; its TP group slows down."""

    kind = "thermal"
    default_magnitude = 1.7

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [g.eid for g in fleet.gpus if g.pod]

    def _curves(self, c: FaultCtx) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(c.lat.n)
        heat = np.where(i >= c.start, 1 - np.exp(-(i - c.start + 1) / 4.0), 0.0) * c.env(ramp=6)
        throttle = np.clip((heat - 0.7) / 0.25, 0, 1)
        return heat, throttle

    def inputs(self, c: FaultCtx) -> None:
        llm = c.lat.llm
        assert llm is not None
        _, throttle = self._curves(c)
        slow = 1 + (c.magnitude - 1) * throttle
        k = _user_row(c, c.target)
        llm.slow_decode[k] *= slow
        llm.slow_prefill[k] *= 1 + 0.8 * (slow - 1)

    def resources(self, c: FaultCtx) -> None:
        gpu = c.lat.gpu
        assert gpu is not None
        gi = c.lat.fleet.gpu_index(c.target)
        heat, throttle = self._curves(c)
        slow = 1 + (c.magnitude - 1) * throttle
        n = c.lat.n
        gpu.temp[gi] = np.round(gpu.temp[gi] + (91.5 + c.rng.normal(0, 0.8, n) - gpu.temp[gi]) * heat)
        gpu.clock[gi] = np.round(gpu.clock[gi] / slow / 15) * 15
        gpu.power[gi] = gpu.power[gi] * (1 - 0.35 * throttle)
        gpu.thermal_ns[gi] = STEP * 1e9 * (0.6 + 0.35 * c.rng.random(n)) * throttle


class NoisyNeighbor(Fault):
    """The batch-embed job sharing a GPU with a llama-3-8b replica starts heavy work."""

    kind = "noisy_neighbor"
    default_magnitude = 2.0

    def eligible(self, fleet: Fleet) -> list[EntityId]:
        return [fleet.batch_pod.eid]

    def inputs(self, c: FaultCtx) -> None:
        llm = c.lat.llm
        assert llm is not None
        gi = c.lat.fleet.batch_pod.gpus[0]
        k = next(j for j, p in enumerate(llm.pods) if gi in p.gpus)
        env = c.env(ramp=2, delay=1)
        llm.slow_decode[k] *= 1 + (c.magnitude - 1) * env
        llm.slow_prefill[k] *= 1 + 0.8 * (c.magnitude - 1) * env

    def resources(self, c: FaultCtx) -> None:
        lat, gpu = c.lat, c.lat.gpu
        assert gpu is not None
        batch = lat.fleet.batch_pod
        gi, n, env = batch.gpus[0], lat.n, c.env(ramp=2)
        noise = np.exp(ar1(c.rng, (n,), 0.05, 3))
        lat.batch_items = 880 * env * noise
        lat.cpu[batch.name] = lat.cpu[batch.name] + 3.4 * env * noise
        lat.mem[batch.name] = lat.mem[batch.name] + 3.5 * 2 ** 30 * env
        gpu.util[gi] = np.round(gpu.util[gi] + (99.5 - gpu.util[gi]) * env).clip(0, 100)
        gpu.active[gi] = gpu.active[gi] + (0.97 - gpu.active[gi]) * env
        extra_power = (640 - gpu.power[gi]) * env
        gpu.power[gi] = gpu.power[gi] + extra_power
        gpu.temp[gi] = np.round(gpu.temp[gi] + 0.06 * extra_power)
        gpu.fb_used[gi] = gpu.fb_used[gi] + np.round(13_800 * env)

    def logs(self, c: FaultCtx) -> None:
        batch = c.lat.fleet.batch_pod
        total = 1_843_200
        c.lat.logs.append(pod_log(c.t_ns(c.start, -3.0), batch, "INFO",
                                  f"starting embedding job shard=7/16 items={total} batch_size=512 "
                                  "model=bge-large-en-v1.5 device=cuda:0"))
        done = np.cumsum((c.lat.batch_items if c.lat.batch_items is not None else 0) * STEP)
        for idx in c.active_steps(delay=4)[::4]:
            rate = float(c.lat.batch_items[idx]) if c.lat.batch_items is not None else 0.0
            body = f"processed {int(done[idx])}/{total} items ({rate:.1f} items/s)"
            c.lat.logs.append(pod_log(c.t_ns(idx, -1.0), batch, "INFO", body))
