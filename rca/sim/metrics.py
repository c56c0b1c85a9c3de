"""Raw Prometheus series from the latent state, as Prometheus would store them.

Counters are cumulative from a random start (the process was up before the window; a pod
born inside the window starts at 0, and its rarely-hit label values appear with their first
increment). Histograms are cumulative ``_bucket{le}`` counters with ``+Inf`` == ``_count``,
plus ``_sum``: per step, n ~ Poisson(rate x step) observations are spread over the buckets
with ``multinomial`` on the latent mixture's bucket probabilities, so ``histogram_quantile``
recovers the latent latencies. A missing scrape (pod or GPU gone) is NaN. ``_created``
series are not emitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from prometheus_client.utils import floatToGoString

from rca.sim.latent import Comp, Latent, mix_cdf, mix_mean
from rca.sim.serving import finish_shares
from rca.sim.topology import FB_RESERVED_MIB, FB_TOTAL_MIB, GPU_MODEL, NAMESPACE, Pod
from rca.sim.workload import STEP, rng_for
from rca.types import MetricFrame, SeriesKey

__all__ = ["E2E_BUCKETS", "HTTP_BUCKETS", "ITL_BUCKETS", "TTFT_BUCKETS", "FrameBuilder", "emit_metrics",
           "token_buckets"]

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
                20, 40, 80, 160, 640, 2560)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20,
               40, 80)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920,
               7680)
DRIVER_VERSION = "535.154.05"
NODE_MEM_BYTES = {"cpu": 128 * 2 ** 30, "gpu": 2048 * 2 ** 30}


def token_buckets(max_len: int) -> tuple[int, ...]:
    """vLLM's 1-2-5 series up to ``max_model_len`` (``build_1_2_5_buckets``)."""
    out, exp = [], 0
    while True:
        for m in (1, 2, 5):
            if m * 10 ** exp > max_len:
                return tuple(out)
            out.append(m * 10 ** exp)
        exp += 1


class FrameBuilder:
    """Collects rows; ``frame()`` returns the ``MetricFrame``."""

    def __init__(self, ts: np.ndarray, rng: np.random.Generator) -> None:
        self.ts, self.rng = ts, rng
        self.keys: list[SeriesKey] = []
        self.rows: list[np.ndarray] = []

    def gauge(self, name: str, labels: Mapping[str, str], values: np.ndarray,
              alive: np.ndarray | None = None) -> None:
        v = np.asarray(values, dtype=float)
        v = np.broadcast_to(v, self.ts.shape).copy()
        if alive is not None:
            v[~alive] = np.nan
        self.keys.append(SeriesKey.of(name, labels))
        self.rows.append(v)

    def counter(self, name: str, labels: Mapping[str, str], inc: np.ndarray, alive: np.ndarray | None = None,
                offset: float = 0.0, lazy: bool = False) -> None:
        """Cumulative counter. ``lazy``: a label child created on first use, so while it is
        still 0 the series does not exist yet (NaN)."""
        inc = np.nan_to_num(np.asarray(inc, dtype=float))
        if alive is not None:
            inc = np.where(alive, inc, 0.0)
        cum = offset + np.cumsum(inc)
        if lazy:
            cum[cum == 0] = np.nan
        self.gauge(name, labels, cum, alive)

    def histogram(self, name: str, labels: Mapping[str, str], n: np.ndarray, cdf: np.ndarray,
                  mean: np.ndarray, bounds: Sequence[float], alive: np.ndarray | None,
                  n_before: int, integer_sum: bool = False) -> tuple[np.ndarray, float]:
        """Emit ``_bucket``/``_sum``/``_count``; ``n_before`` observations happened before the
        window. Returns the per-step sum increments and the sum offset (for counters that must
        agree, e.g. ``vllm:prompt_tokens_total``)."""
        n = np.asarray(n, dtype=np.int64)
        edges = np.concatenate([np.zeros((len(n), 1)), np.clip(cdf, 0, 1), np.ones((len(n), 1))], axis=1)
        p = np.clip(np.diff(np.maximum.accumulate(edges, axis=1), axis=1), 0, None)
        p = p / p.sum(axis=1, keepdims=True)
        counts = self.rng.multinomial(n, p)
        first = int(np.argmax(alive)) if alive is not None else 0
        off = self.rng.multinomial(max(int(n_before), 0), p[first]).astype(float)
        cum = np.cumsum(np.cumsum(counts, axis=1), axis=0) + np.cumsum(off)[None, :]
        for j, b in enumerate(bounds):
            self.gauge(f"{name}_bucket", {**labels, "le": floatToGoString(b)}, cum[:, j], alive)
        self.gauge(f"{name}_bucket", {**labels, "le": "+Inf"}, cum[:, -1], alive)
        self.gauge(f"{name}_count", labels, cum[:, -1], alive)
        mean = np.nan_to_num(np.asarray(mean, dtype=float))
        noise = np.exp(0.35 * self.rng.standard_normal(len(n)) / np.sqrt(np.maximum(n, 1)))
        s_inc = n * mean * noise
        s_off = float(off.sum()) * float(mean[first])
        if integer_sum:
            s_inc, s_off = np.round(s_inc), float(round(s_off))
        self.gauge(f"{name}_sum", labels, s_off + np.cumsum(s_inc), alive)
        return s_inc, s_off

    def frame(self) -> MetricFrame:
        return MetricFrame(tuple(self.keys), self.ts, np.vstack(self.rows))


def _uptime(b: FrameBuilder, alive: np.ndarray) -> float:
    """Seconds the process ran before its first sample: 0 for a pod born inside the window."""
    return 0.0 if not alive[0] else float(b.rng.uniform(2 * 3600, 12 * 86400))


def _before(b: FrameBuilder, n: np.ndarray, up: float) -> int:
    """Observations before the window: the window's mean rate over the uptime."""
    return int(b.rng.poisson(float(np.mean(n)) / STEP * up)) if up else 0


def emit_metrics(lat: Latent) -> MetricFrame:
    b = FrameBuilder(lat.tl.ts, rng_for(lat.seed, "metrics"))
    _services(b, lat)
    _vllm(b, lat)
    _containers(b, lat)
    _gpus(b, lat)
    _nodes(b, lat)
    return b.frame()


def _app_labels(pod: Pod) -> dict[str, str]:
    return {"job": pod.wire, "service": pod.wire, "pod": pod.name, "namespace": NAMESPACE,
            "instance": f"{pod.ip}:8080"}


def _services(b: FrameBuilder, lat: Latent) -> None:
    for wire, s in lat.svc.items():
        cdf, mean = mix_cdf(s.mix, HTTP_BUCKETS), mix_mean(s.mix)
        assert s.err is not None
        ok = np.clip(1 - s.err.sum(axis=0), 0, 1)
        p = np.stack([ok, *s.err], axis=1)
        p = p / p.sum(axis=1, keepdims=True)
        for pod in lat.fleet.pods_of(wire):
            alive, labels = lat.alive[pod.name], _app_labels(pod)
            n = b.rng.poisson(s.rate * lat.weight[pod.name] * STEP) * alive
            codes = b.rng.multinomial(n, p)
            n_before = _before(b, n, _uptime(b, alive))
            code_before = b.rng.multinomial(n_before, p[0])
            for j, code in enumerate(("200", "500", "503", "504")):
                b.counter("http_requests_total", {**labels, "code": code}, codes[:, j], alive,
                          float(code_before[j]), lazy=True)
            b.histogram("http_request_duration_seconds", labels, n, cdf, mean, HTTP_BUCKETS, alive, n_before)
            b.gauge("app_build_info", {**labels, "version": lat.version[pod.name]}, 1.0, alive)


def _vllm(b: FrameBuilder, lat: Latent) -> None:
    llm = lat.llm
    assert llm is not None
    o, comps = llm.out, llm.comps
    cdf = {name: mix_cdf(comps[name], bounds) for name, bounds in
           (("ttft", TTFT_BUCKETS), ("itl", ITL_BUCKETS), ("e2e", E2E_BUCKETS), ("queue", E2E_BUCKETS))}
    mean = {name: mix_mean(comps[name]) for name in ("ttft", "itl", "e2e", "queue", "prompt", "gen")}
    shares = finish_shares(llm)
    for k, pod in enumerate(llm.pods):
        spec, alive = llm.specs[k], llm.alive[k]
        labels = {"job": "vllm", "namespace": NAMESPACE, "pod": pod.name, "model_name": spec.name,
                  "engine": "0", "instance": f"{pod.ip}:8000"}
        n = b.rng.poisson(o["lam_eff"][k] * STEP) * alive
        n_before = _before(b, n, _uptime(b, alive))
        b.gauge("vllm:num_requests_running", labels, b.rng.poisson(o["running"][k]), alive)
        b.gauge("vllm:num_requests_waiting", labels, b.rng.poisson(o["waiting"][k]), alive)
        b.gauge("vllm:kv_cache_usage_perc", labels, o["kv"][k], alive)
        fin = b.rng.multinomial(n, shares[:, k].T)
        fin_before = b.rng.multinomial(n_before, shares[:, k, 0])
        for j, reason in enumerate(("stop", "length", "abort")):
            b.counter("vllm:request_success_total", {**labels, "finished_reason": reason}, fin[:, j],
                      alive, float(fin_before[j]))
        b.counter("vllm:num_preemptions_total", labels, b.rng.poisson(o["preempt"][k] * STEP), alive,
                  float(b.rng.integers(0, 40)) if n_before else 0.0)
        tok = token_buckets(spec.max_model_len)
        sums = {}
        for metric, name in (("request_prompt_tokens", "prompt"), ("request_generation_tokens", "gen")):
            kcdf = mix_cdf([_row(c, k) for c in comps[name]], tok)
            s_inc, s_off = b.histogram(f"vllm:{metric}", labels, n, kcdf, mean[name][k], tok, alive,
                                       n_before, integer_sum=True)
            total = "vllm:prompt_tokens_total" if name == "prompt" else "vllm:generation_tokens_total"
            b.counter(total, labels, s_inc, alive, s_off)
            sums[name] = (s_inc, s_off)
        n_itl = np.maximum(sums["gen"][0] - n, 0).astype(np.int64)
        itl_before = max(int(sums["gen"][1]) - n_before, 0)
        b.histogram("vllm:time_to_first_token_seconds", labels, n, cdf["ttft"][k], mean["ttft"][k],
                    TTFT_BUCKETS, alive, n_before)
        b.histogram("vllm:inter_token_latency_seconds", labels, n_itl, cdf["itl"][k], mean["itl"][k],
                    ITL_BUCKETS, alive, itl_before)
        b.histogram("vllm:e2e_request_latency_seconds", labels, n, cdf["e2e"][k], mean["e2e"][k],
                    E2E_BUCKETS, alive, n_before)
        b.histogram("vllm:request_queue_time_seconds", labels, n, cdf["queue"][k], mean["queue"][k],
                    E2E_BUCKETS, alive, n_before)


def _row(c: Comp, k: int) -> Comp:
    """A per-pod component restricted to pod row ``k``."""
    cap = c.cap[k] if np.ndim(c.cap) else c.cap
    return Comp(c.weight[k], c.median[k], c.sigma, c.tag, cap)


def _image(pod: Pod, version: str) -> str:
    if pod.model:
        return f"docker.io/vllm/vllm-openai:{version}"
    return f"registry.internal/serving/{pod.wire}:{version}"


def _containers(b: FrameBuilder, lat: Latent) -> None:
    for pod in lat.fleet.pods:
        alive = lat.alive[pod.name]
        labels = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", "namespace": NAMESPACE,
                  "pod": pod.name, "container": pod.container, "node": pod.node,
                  "image": _image(pod, lat.version[pod.name]), "instance": f"{lat.fleet.node_ips[pod.node]}:10250"}
        cpu = lat.cpu[pod.name]
        up = _uptime(b, alive)
        b.counter("container_cpu_usage_seconds_total", labels, cpu * STEP, alive, float(cpu[0]) * up)
        b.gauge("container_memory_working_set_bytes", labels, np.round(lat.mem[pod.name]), alive)
        kind, owner = ("StatefulSet", f"vllm-{pod.model}") if pod.model else \
            ("Job", pod.wire) if pod.wire == "batch-embed" else ("ReplicaSet", pod.name.rsplit("-", 1)[0])
        b.gauge("kube_pod_info", {"job": "kube-state-metrics", "namespace": NAMESPACE, "pod": pod.name,
                                  "node": pod.node, "host_ip": lat.fleet.node_ips[pod.node], "pod_ip": pod.ip,
                                  "created_by_kind": kind, "created_by_name": owner},
                1.0, alive | bool(pod.model))
    batch = lat.fleet.batch_pod
    assert lat.batch_items is not None
    b.counter("batch_embed_items_total", {**_app_labels(batch)}, np.round(lat.batch_items * STEP),
              lat.alive[batch.name], float(b.rng.integers(10 ** 6, 10 ** 7)))


def _gpus(b: FrameBuilder, lat: Latent) -> None:
    gpu = lat.gpu
    assert gpu is not None
    for i, g in enumerate(lat.fleet.gpus):
        labels = {"gpu": str(g.index), "UUID": g.uuid, "pci_bus_id": g.pci_bus_id, "device": f"nvidia{g.index}",
                  "modelName": GPU_MODEL, "Hostname": g.node, "DCGM_FI_DRIVER_VERSION": DRIVER_VERSION,
                  "job": "dcgm-exporter", "instance": f"{lat.fleet.node_ips[g.node]}:9400"}
        if g.pod:   # dcgm-exporter's pod mapping; empty labels are dropped by Prometheus
            labels.update(pod=g.pod, namespace=NAMESPACE, container="vllm")
        alive = gpu.alive[i]
        b.gauge("DCGM_FI_DEV_GPU_UTIL", labels, gpu.util[i], alive)
        b.gauge("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, np.round(gpu.active[i], 4), alive)
        b.gauge("DCGM_FI_DEV_FB_USED", labels, gpu.fb_used[i], alive)
        b.gauge("DCGM_FI_DEV_FB_FREE", labels, FB_TOTAL_MIB - FB_RESERVED_MIB - gpu.fb_used[i], alive)
        b.gauge("DCGM_FI_DEV_GPU_TEMP", labels, gpu.temp[i], alive)
        b.gauge("DCGM_FI_DEV_POWER_USAGE", labels, np.round(gpu.power[i], 3), alive)
        b.gauge("DCGM_FI_DEV_SM_CLOCK", labels, gpu.clock[i], alive)
        b.gauge("DCGM_FI_DEV_XID_ERRORS", labels, gpu.xid[i], alive)
        b.counter("DCGM_FI_DEV_THERMAL_VIOLATION", labels, np.round(gpu.thermal_ns[i]), alive,
                  float(b.rng.integers(0, 3)) * 1e9)
        b.counter("DCGM_FI_DEV_POWER_VIOLATION", labels, np.round(gpu.power_ns[i]), alive,
                  float(b.rng.integers(0, 20)) * 1e9)


def _nodes(b: FrameBuilder, lat: Latent) -> None:
    n = lat.n
    for node in lat.fleet.node_ips:
        on = [p for p in lat.fleet.pods if p.node == node]
        cpu = sum((np.where(lat.alive[p.name], lat.cpu[p.name], 0.0) for p in on), np.zeros(n))
        mem = sum((np.where(lat.alive[p.name], lat.mem[p.name], 0.0) for p in on), np.zeros(n))
        labels = {"job": "node-exporter", "instance": f"{node}:9100", "node": node}
        load = (0.3 + 1.1 * cpu) * np.exp(0.08 * b.rng.standard_normal(n))
        b.gauge("node_load1", labels, np.round(load, 2))
        total = NODE_MEM_BYTES["gpu" if node.startswith("gpu") else "cpu"]
        system = 6 * 2 ** 30 * np.exp(0.02 * b.rng.standard_normal(n))
        b.gauge("node_memory_MemAvailable_bytes", labels, np.round(total - mem - system))
