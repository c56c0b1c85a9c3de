"""The simulated fleet: services, vLLM replicas, GPUs and nodes, and its ``Inventory``.

The default shape is fixed (namespace ``serving``); names that Kubernetes would randomise (pod
hashes, IPs, GPU UUIDs) come from the seed. A varied run (``rca.sim.variant``) passes other
service specs (replica counts, bystander services), call edges and a GPU placement. The
default GPU placement (``PLACEMENT``):

* ``gpu-node-1``: ``vllm-llama-3-70b-0`` on GPUs 0-3, ``vllm-llama-3-70b-1`` on GPUs 4-7
* ``gpu-node-2``: ``vllm-llama-3-70b-2`` on GPUs 0-3, ``vllm-llama-3-8b-0`` on GPU 4, 5-7 idle
* ``gpu-node-3``: ``vllm-llama-3-8b-1`` on GPU 0, time-sliced with ``batch-embed-<hash>``;
  1-7 idle
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rca.types import EntityId, Inventory, Relation

__all__ = ["CALLS", "FB_RESERVED_MIB", "FB_TOTAL_MIB", "GPU_MODEL", "GPU_NODES", "MODELS", "NAMESPACE",
           "PLACEMENT", "SERVICES", "Fleet", "Gpu", "ModelSpec", "Placement", "Pod", "ServiceSpec", "build_fleet",
           "k8s_suffix", "make_inventory"]

NAMESPACE = "serving"
GPU_MODEL = "NVIDIA H100 80GB HBM3"
FB_TOTAL_MIB = 81559
FB_RESERVED_MIB = 513
DRIVER_VERSION = "535.154.05"
PCI_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")  # DGX H100 layout
GPU_NODES = ("gpu-node-1", "gpu-node-2", "gpu-node-3")
CPU_NODES = ("cpu-node-1", "cpu-node-2")
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class ServiceSpec:
    """A non-vLLM service. ``cpu_*`` in cores, ``mem_mib`` working set; ``version`` of the image."""

    eid: EntityId
    wire: str
    replicas: int
    cpu_base: float
    cpu_per_rps: float
    mem_mib: float
    version: str
    cpu_limit: float = 2.0


SERVICES = (
    ServiceSpec("service:api-gateway", "api-gateway", 2, 0.08, 0.004, 180, "2.3.1"),
    ServiceSpec("service:orchestrator", "orchestrator", 2, 0.15, 0.02, 720, "1.14.2"),
    ServiceSpec("service:rag-retriever", "rag-retriever", 2, 0.1, 0.01, 420, "0.9.4"),
    ServiceSpec("service:embedder", "embedder", 2, 0.2, 0.03, 1250, "0.4.0"),
    ServiceSpec("db:vector-db", "vector-db", 1, 0.25, 0.008, 6100, "1.9.2", cpu_limit=4.0),
    ServiceSpec("service:llm-router", "llm-router", 2, 0.05, 0.003, 150, "0.6.3"),
    ServiceSpec("tool:web-search", "mcp-web-search", 1, 0.05, 0.02, 260, "0.3.1"),
    ServiceSpec("tool:code-exec", "mcp-code-exec", 1, 0.08, 0.05, 540, "0.2.7"),
    ServiceSpec("db:cache", "cache", 1, 0.05, 0.0006, 2100, "7.2.4"),
    ServiceSpec("db:postgres", "postgres", 1, 0.1, 0.004, 3100, "15.6"),
)
BATCH = ServiceSpec("service:batch-embed", "batch-embed", 1, 0.04, 0.0, 2800, "0.1.5")

CALLS = (
    ("service:api-gateway", "service:orchestrator"),
    ("service:orchestrator", "service:rag-retriever"),
    ("service:orchestrator", "service:llm-router"),
    ("service:orchestrator", "tool:web-search"),
    ("service:orchestrator", "tool:code-exec"),
    ("service:orchestrator", "db:cache"),
    ("service:orchestrator", "db:postgres"),
    ("service:rag-retriever", "service:embedder"),
    ("service:rag-retriever", "db:vector-db"),
    ("service:llm-router", "model:llama-3-70b"),
    ("service:llm-router", "model:llama-3-8b"),
)

Placement = dict[str, tuple[str, tuple[int, ...]]]   # vLLM pod -> (node, GPU indices on the node)
PLACEMENT: Placement = {
    "vllm-llama-3-70b-0": ("gpu-node-1", (0, 1, 2, 3)),
    "vllm-llama-3-70b-1": ("gpu-node-1", (4, 5, 6, 7)),
    "vllm-llama-3-70b-2": ("gpu-node-2", (0, 1, 2, 3)),
    "vllm-llama-3-8b-0": ("gpu-node-2", (4,)),
    "vllm-llama-3-8b-1": ("gpu-node-3", (0,)),   # time-sliced with the batch-embed job
}
SHARED_POD = "vllm-llama-3-8b-1"


@dataclass(frozen=True)
class ModelSpec:
    """A served model. Latencies in seconds, sizes in tokens; ``share`` of the router's calls."""

    name: str
    tp: int
    replicas: int
    share: float
    max_model_len: int
    max_num_seqs: int
    max_tokens: int
    prompt_median: float
    gen_median: float
    tpot_s: float
    prefill_tok_s: float
    kv_capacity_tokens: float
    gpu_mem_util: float


MODELS = (
    ModelSpec("llama-3-70b", 4, 3, 0.7, 32768, 256, 512, 1500, 250, 0.030, 9000, 840_000, 0.9),
    ModelSpec("llama-3-8b", 1, 2, 0.3, 8192, 256, 384, 800, 180, 0.012, 24000, 72_000, 0.9),
)


@dataclass(frozen=True)
class Pod:
    name: str
    group: EntityId          # member_of target: a service/db/tool entity, or a model
    wire: str                # ``service``/``job`` label ("vllm" for vLLM pods)
    node: str
    ip: str
    container: str
    gpus: tuple[int, ...] = ()   # indices into Fleet.gpus
    model: str | None = None

    @property
    def eid(self) -> EntityId:
        return f"pod:{self.name}"


@dataclass(frozen=True)
class Gpu:
    node: str
    index: int
    uuid: str
    pci_bus_id: str          # DCGM form, e.g. 00000000:3A:00.0
    pod: str | None          # the vLLM pod using it (None when idle)

    @property
    def eid(self) -> EntityId:
        return f"gpu:{self.node}/{self.index}"

    @property
    def kernel_pci(self) -> str:
        """Kernel log form, e.g. ``0000:3a:00``."""
        return f"0000:{self.pci_bus_id[9:11].lower()}:00"


@dataclass(frozen=True, eq=False)
class Fleet:
    """``services``: the non-vLLM service specs (replica counts, bystanders); ``calls``: the
    call edges between entities."""

    pods: tuple[Pod, ...]
    gpus: tuple[Gpu, ...]
    node_ips: dict[str, str]
    inventory: Inventory
    services: tuple[ServiceSpec, ...] = SERVICES
    calls: tuple[tuple[EntityId, EntityId], ...] = CALLS

    @property
    def vllm_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.model]

    @property
    def batch_pod(self) -> Pod:
        return next(p for p in self.pods if p.wire == BATCH.wire)

    def pods_of(self, wire: str) -> list[Pod]:
        return [p for p in self.pods if p.wire == wire and not p.model]

    def pod(self, name: str) -> Pod:
        return next(p for p in self.pods if p.name == name)

    def gpu_index(self, eid: EntityId) -> int:
        return next(i for i, g in enumerate(self.gpus) if g.eid == eid)


def k8s_suffix(rng: np.random.Generator, n: int) -> str:
    return "".join(_K8S_ALPHABET[i] for i in rng.integers(0, len(_K8S_ALPHABET), n))


def _uuid(rng: np.random.Generator) -> str:
    h = rng.bytes(16).hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_fleet(rng: np.random.Generator, services: tuple[ServiceSpec, ...] = SERVICES,
                calls: tuple[tuple[EntityId, EntityId], ...] = CALLS, placement: Placement | None = None) -> Fleet:
    """The fleet for one seed (``rng`` is the topology stream); the defaults are the fixed shape."""
    placement = PLACEMENT if placement is None else placement
    node_ips = {n: f"10.0.0.{11 + i}" for i, n in enumerate(CPU_NODES + GPU_NODES)}
    used_ips: set[str] = set()

    def pod_ip() -> str:
        while True:
            ip = f"10.244.{int(rng.integers(0, 8))}.{int(rng.integers(2, 254))}"
            if ip not in used_ips:
                used_ips.add(ip)
                return ip

    pods: list[Pod] = []
    for spec in services:
        tmpl = k8s_suffix(rng, 5)
        for _ in range(spec.replicas):
            node = CPU_NODES[int(rng.integers(0, len(CPU_NODES)))]
            pods.append(Pod(f"{spec.wire}-{tmpl}-{k8s_suffix(rng, 5)}", spec.eid, spec.wire, node, pod_ip(),
                            spec.wire))

    users = {(node, i): pod for pod, (node, idx) in placement.items() for i in idx}
    gpus = tuple(Gpu(node, i, _uuid(rng), f"00000000:{PCI_BUSES[i]}:00.0", users.get((node, i)))
                 for node in GPU_NODES for i in range(8))
    gidx = {(g.node, g.index): k for k, g in enumerate(gpus)}
    for m in MODELS:
        for r in range(m.replicas):
            name = f"vllm-{m.name}-{r}"
            node, idx = placement[name]
            pods.append(Pod(name, f"model:{m.name}", "vllm", node, pod_ip(), "vllm",
                            tuple(gidx[(node, i)] for i in idx), m.name))
    shared_node, shared_idx = placement[SHARED_POD]
    pods.append(Pod(f"batch-embed-{k8s_suffix(rng, 5)}", BATCH.eid, BATCH.wire, shared_node, pod_ip(),
                    BATCH.wire, (gidx[shared_node, shared_idx[0]],)))
    return Fleet(tuple(pods), gpus, node_ips, make_inventory(pods, gpus, node_ips, services, calls), services,
                 calls)




def make_inventory(pods: list[Pod] | tuple[Pod, ...], gpus: tuple[Gpu, ...], node_ips: dict[str, str],
                   services: tuple[ServiceSpec, ...] = SERVICES,
                   calls: tuple[tuple[EntityId, EntityId], ...] = CALLS) -> Inventory:
    ents: dict[EntityId, dict[str, str]] = {}
    rels: list[Relation] = []
    for spec in (*services, BATCH):
        ents[spec.eid] = {"service": spec.wire, "namespace": NAMESPACE}
    for m in MODELS:
        ents[f"model:{m.name}"] = {"model_name": m.name, "engine": "vllm",
                                   "tensor_parallel_size": str(m.tp), "replicas": str(m.replicas)}
    for node, ip in node_ips.items():
        ents[f"node:{node}"] = {"ip": ip, "role": "gpu" if node.startswith("gpu") else "cpu"}
    for g in gpus:
        ents[g.eid] = {"uuid": g.uuid, "model": GPU_MODEL, "pci_bus_id": g.pci_bus_id}
        rels.append(Relation(g.eid, "part_of", f"node:{g.node}"))
    for p in pods:
        ents[p.eid] = {"node": p.node, "namespace": NAMESPACE}
        rels.append(Relation(p.eid, "member_of", p.group))
        rels.append(Relation(p.eid, "runs_on", f"node:{p.node}"))
        rels.extend(Relation(p.eid, "uses", gpus[i].eid) for i in p.gpus)
    rels.extend(Relation(a, "calls", b) for a, b in calls)
    return Inventory(ents, tuple(rels))
