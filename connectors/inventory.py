"""The inventory (what exists and how it is wired) read from the labels of raw series.

Entities and relations, with the attributes the simulator's inventory carries:

* ``node:<n>`` {ip, role}: from ``kube_pod_info{node, host_ip}``, container series ``{node}``
  (``instance`` = kubelet ``<ip>:<port>``), ``node_*{node|instance}`` and DCGM ``Hostname``;
  ``role`` is ``gpu`` when DCGM reports GPUs on it, else ``cpu``.
* ``gpu:<Hostname>/<gpu>`` {uuid, model, pci_bus_id}: DCGM series; ``gpu part_of node``.
  A DCGM ``pod`` label (Kubernetes mapping) gives ``pod uses gpu``. dcgm-exporter names one
  pod per GPU, so a second pod time-sliced on the same GPU is not seen.
* ``pod:<p>`` {node, namespace}: every ``pod`` label; ``pod runs_on node``.
* ``pod member_of <group>``, one group per pod, first rule that gives one:
  1. ``model_name`` on the pod's ``vllm:``/``sglang:``/``tgi_`` series -> ``model:<model_name>``
     {model_name, engine, replicas, tensor_parallel_size (GPUs per pod)};
  2. its ``service``, then ``app`` / ``app_kubernetes_io_name``, then ``job`` label (not the
     scrapers' own jobs, :data:`INFRA_JOBS`);
  3. ``kube_pod_info{created_by_name}`` (a ReplicaSet's pod-template hash stripped).
  The group's kind follows :data:`KIND_RULES` (``mcp-web-search`` -> ``tool:web-search``,
  ``vector-db`` -> ``db:vector-db``), else ``service``; its attrs are {service, namespace}
  so ``rca.entities.aliases_from_inventory`` maps the label back to the entity.

``calls`` cannot come from labels (spans and service-graph metrics give them).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping

from rca.types import EntityId, Inventory, MetricFrame, Relation

__all__ = ["INFRA_JOBS", "KIND_RULES", "group_of_service", "inventory_from_labels"]

INFRA_JOBS = frozenset({"kubelet", "cadvisor", "kube-state-metrics", "node-exporter", "node_exporter",
                        "dcgm-exporter", "dcgm_exporter", "prometheus", "otel-collector", "apiserver"})

# (service label regex, entity kind, replacement for the name); first match wins, else service
KIND_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^mcp-(.+)$"), "tool", r"\1"),
    (re.compile(r"^(?:.*-)?(?:db|postgres|postgresql|mysql|mariadb|redis|valkey|cache|memcached|mongo|mongodb|"
                r"qdrant|milvus|weaviate|chroma|pgvector|elasticsearch|opensearch|cassandra)$"), "db", r"\g<0>"),
)
_ENGINE_PREFIX = re.compile(r"^(vllm|sglang)[:_]|^(tgi)_")
_RS_HASH = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{5,10}$")


def group_of_service(name: str, kinds: Mapping[str, EntityId] | None = None) -> EntityId:
    """The entity a ``service``/``job`` label value stands for (``kinds`` overrides the rules)."""
    if kinds and name in kinds:
        return kinds[name]
    for rx, kind, repl in KIND_RULES:
        if rx.match(name):
            return f"{kind}:{rx.sub(repl, name)}"
    return f"service:{name}"


def _most_common(c: Counter) -> str | None:
    return min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] if c else None


def inventory_from_labels(frame: MetricFrame, kinds: Mapping[str, EntityId] | None = None) -> Inventory:
    """Entities and ``member_of`` / ``runs_on`` / ``uses`` / ``part_of`` relations from labels."""
    node_ip: dict[str, str] = {}
    gpu_nodes: set[str] = set()
    gpus: dict[EntityId, dict[str, str]] = {}
    gpu_node: dict[EntityId, str] = {}
    pod_ns: dict[str, str] = {}
    pod_node: dict[str, Counter] = defaultdict(Counter)
    uses: set[tuple[str, EntityId]] = set()
    model_of: dict[str, Counter] = defaultdict(Counter)
    engine_of: dict[str, str] = {}
    svc_of: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(3)]  # service, app, job
    owner_of: dict[str, str] = {}
    nodes: set[str] = set()

    for key in frame.keys:
        lab = key.as_dict()
        name = key.name
        pod = lab.get("pod")
        if name.startswith("DCGM_"):
            host = lab.get("Hostname") or lab.get("hostname")
            if host and lab.get("gpu") is not None:
                gid = f"gpu:{host}/{lab['gpu']}"
                attrs = gpus.setdefault(gid, {})
                for src, dst in (("UUID", "uuid"), ("uuid", "uuid"), ("modelName", "model"),
                                 ("pci_bus_id", "pci_bus_id")):
                    if lab.get(src):
                        attrs.setdefault(dst, lab[src])
                gpu_node[gid] = host
                gpu_nodes.add(host)
                nodes.add(host)
                if pod:
                    uses.add((pod, gid))
                    pod_node[pod][host] += 1
            if pod and lab.get("namespace"):
                pod_ns.setdefault(pod, lab["namespace"])
            continue
        if name == "kube_pod_info" and pod:
            if lab.get("node"):
                pod_node[pod][lab["node"]] += 100  # the scheduler's word beats every other hint
                nodes.add(lab["node"])
                if lab.get("host_ip"):
                    node_ip[lab["node"]] = lab["host_ip"]
            if lab.get("created_by_name"):
                owner = lab["created_by_name"]
                owner_of[pod] = _RS_HASH.sub("", owner) if lab.get("created_by_kind") == "ReplicaSet" else owner
        elif name.startswith(("node_", "kube_node_")) and not pod:
            node = lab.get("node") or (lab.get("instance") or "").split(":")[0]
            if node:
                nodes.add(node)
            continue
        if not pod:
            continue
        if lab.get("namespace"):
            pod_ns.setdefault(pod, lab["namespace"])
        if lab.get("node") and name != "kube_pod_info":
            pod_node[pod][lab["node"]] += 1
            nodes.add(lab["node"])
            inst = (lab.get("instance") or "").rsplit(":", 1)[0]
            if lab.get("job") in ("kubelet", "cadvisor") and re.fullmatch(r"[\d.]+", inst or "-"):
                node_ip.setdefault(lab["node"], inst)
        m = _ENGINE_PREFIX.match(name)
        if m and lab.get("model_name"):
            model_of[pod][lab["model_name"]] += 1
            engine_of.setdefault(lab["model_name"], m.group(1) or m.group(2))
            continue
        for level, labs in enumerate((("service",), ("app", "app_kubernetes_io_name"), ("job",))):
            for lname in labs:
                v = lab.get(lname)
                if v and not (lname == "job" and v in INFRA_JOBS):
                    svc_of[level][pod][v] += 1

    ents: dict[EntityId, dict[str, str]] = {}
    rels: list[Relation] = []
    for node in sorted(nodes):
        attrs = {"role": "gpu" if node in gpu_nodes else "cpu"}
        if node in node_ip:
            attrs["ip"] = node_ip[node]
        ents[f"node:{node}"] = attrs
    for gid in sorted(gpus):
        ents[gid] = dict(gpus[gid])
        rels.append(Relation(gid, "part_of", f"node:{gpu_node[gid]}"))
    pods = sorted(set(pod_node) | set(pod_ns) | set(model_of) | set(owner_of)
                  | {p for lvl in svc_of for p in lvl} | {p for p, _ in uses})
    model_pods: dict[str, list[str]] = defaultdict(list)
    for pod in pods:
        pid = f"pod:{pod}"
        node = _most_common(pod_node.get(pod, Counter()))
        attrs = {k: v for k, v in (("node", node), ("namespace", pod_ns.get(pod))) if v}
        ents[pid] = attrs
        if node:
            rels.append(Relation(pid, "runs_on", f"node:{node}"))
        model = _most_common(model_of.get(pod, Counter()))
        if model:
            model_pods[model].append(pod)
            rels.append(Relation(pid, "member_of", f"model:{model}"))
        else:
            svc = next((s for lvl in svc_of if (s := _most_common(lvl.get(pod, Counter())))), None)
            svc = svc or owner_of.get(pod)
            if svc:
                gid = group_of_service(svc, kinds)
                group = ents.setdefault(gid, {"service": svc})
                if pod_ns.get(pod):
                    group.setdefault("namespace", pod_ns[pod])
                rels.append(Relation(pid, "member_of", gid))
        rels.extend(Relation(pid, "uses", g) for p, g in sorted(uses) if p == pod)
    for model, members in model_pods.items():
        per_pod = Counter(sum(1 for p, _ in uses if p == m) for m in members)
        attrs = {"model_name": model, "engine": engine_of.get(model, ""), "replicas": str(len(members))}
        tp = _most_common(Counter({str(k): v for k, v in per_pod.items() if k}))
        if tp:
            attrs["tensor_parallel_size"] = tp
        ents[f"model:{model}"] = attrs
    return Inventory(ents, tuple(dict.fromkeys(rels)))
