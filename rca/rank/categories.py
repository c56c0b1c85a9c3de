"""Root-cause categories, decided from a hypothesis' evidence by an ordered rule table.

Each rule is data: the category, what it needs (anomalous signal families, an entity kind, a
nearby change event, a minimum observed value) and the human sentence used in summaries. The
first rule whose needs are met wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from rca.types import entity_kind

__all__ = ["CATEGORY_RULES", "GENERIC_FAMILIES", "MICROSERVICE_CATEGORIES", "MICROSERVICE_NAMES", "CategoryRule", "Facts", "categorize",
           "describe"]


@dataclass(frozen=True)
class Facts:
    """What the ranker found about one candidate root."""

    entity: str
    families: Mapping[str, float]  # anomalous family -> best score
    roles: Mapping[str, float]
    observed_max: Mapping[str, float] = field(default_factory=dict)  # family -> max observed value
    change_near_onset: bool = False
    explains_shared_resource: bool = False


@dataclass(frozen=True)
class CategoryRule:
    category: str
    any_family: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    needs_change: bool = False
    needs_shared_resource: bool = False
    min_observed: tuple[str, float] | None = None
    or_family: tuple[str, ...] = ()  # any of these anomalous families stands in for min_observed
    sentence: str = ""

    def matches(self, f: Facts) -> bool:
        if self.kinds and entity_kind(f.entity) not in self.kinds:
            return False
        if self.needs_change and not f.change_near_onset:
            return False
        if self.needs_shared_resource and not f.explains_shared_resource:
            return False
        if self.any_family and not any(fam in f.families for fam in self.any_family):
            return False
        if self.min_observed:
            fam, v = self.min_observed
            if f.observed_max.get(fam, float("-inf")) < v and not set(self.or_family) & set(f.families):
                return False
        return True


CATEGORY_RULES: tuple[CategoryRule, ...] = (
    CategoryRule("gpu_hw_fault", any_family=("gpu_xid",),
                 sentence="a GPU hardware fault (XID) took the GPU out"),
    CategoryRule("gpu_hw_fault", any_family=("vanished",), kinds=("gpu", "node"),
                 sentence="the GPU stopped reporting (fell off the bus or its exporter died)"),
    CategoryRule("gpu_thermal_throttle", any_family=("gpu_thermal",),
                 sentence="the GPU is thermally/power throttled, its clocks dropped"),
    CategoryRule("bad_deploy", any_family=("errors", "latency", "status_mix", "vanished"), needs_change=True,
                 sentence="a deploy/config change just before the onset broke requests"),
    CategoryRule("kv_cache_exhaustion", any_family=("kv_cache", "kv_preempt"), min_observed=("kv_cache", 0.9),
                 or_family=("kv_preempt", "queue_waiting"),
                 sentence="the KV cache is full: requests are preempted and queue up"),
    CategoryRule("token_loop", any_family=("token_loop",),
                 sentence="outputs loop until max_tokens (token black hole)"),
    CategoryRule("noisy_neighbor", needs_shared_resource=True,
                 sentence="its own load saturates a resource it shares with the symptom's path"),
    CategoryRule("tool_or_mcp_failure", kinds=("tool",),
                 sentence="a tool/MCP server is failing or timing out"),
    CategoryRule("input_drift", any_family=("input",),
                 sentence="the input distribution shifted (longer prompts), no component is faulty"),
    CategoryRule("network_loss", any_family=("network_loss",),
                 sentence="packets are lost: retransmissions, timeouts and failed calls"),
    CategoryRule("socket", any_family=("socket",),
                 sentence="sockets/connections are exhausted or failing"),
    CategoryRule("resource_cpu", any_family=("cpu",), sentence="CPU saturation"),
    CategoryRule("resource_memory", any_family=("memory", "gpu_memory"), sentence="memory pressure"),
    CategoryRule("disk", any_family=("disk",), sentence="disk pressure"),
    CategoryRule("traffic_surge", any_family=("traffic", "work"), sentence="a surge of requests"),
    CategoryRule("code_error", any_family=("errors", "status_mix"), sentence="requests fail with errors"),
    CategoryRule("network_delay", any_family=("latency", "network"), sentence="calls got slower"),
)


# families any fault moves a little; they name the category only when they are among the
# entity's strongest anomalies (a delay fault also nudges CPU, a CPU hog also slows calls)
GENERIC_FAMILIES = frozenset({"cpu", "memory", "disk", "network", "latency", "errors", "traffic", "syscall",
                              "socket", "network_loss", "log_novel", "work", "status_mix"})
# the microservice benchmarks' vocabulary (cpu, memory, disk, network_delay, network_loss,
# socket, code_error) for the same categories
MICROSERVICE_NAMES = {"resource_cpu": "cpu", "resource_memory": "memory"}
MICROSERVICE_CATEGORIES = frozenset({"cpu", "memory", "disk", "network_delay", "network_loss", "socket",
                                     "code_error"})


def categorize(facts: Facts, vocabulary: str = "fleet") -> str:
    top = max(facts.families.values(), default=0.0)
    strong = {f: v for f, v in facts.families.items() if f not in GENERIC_FAMILIES or v >= min(0.25 * top, 10.0)}
    if strong != dict(facts.families):
        facts = replace(facts, families=strong)
    micro = vocabulary == "microservice"
    if micro:
        return _microservice(facts.families)
    for rule in CATEGORY_RULES:
        name = MICROSERVICE_NAMES.get(rule.category, rule.category) if micro else rule.category
        if micro and name not in MICROSERVICE_CATEGORIES:
            continue
        if rule.matches(facts):
            return name
    return "unknown"


_RESOURCE_CATEGORY = {"cpu": "cpu", "syscall": "cpu", "memory": "memory", "disk": "disk", "socket": "socket",
                      "network_loss": "network_loss"}
_ERROR_FAMILIES = ("errors", "log_novel", "status_mix")


def _microservice(fams: Mapping[str, float]) -> str:
    """The microservice vocabulary, decided by the *strongest* resource family (a disk fault
    also nudges CPU; a memory leak also makes GC burn CPU), then by what the calls show:
    failing and slower with the network moving -> packet loss; failing -> code error; only
    slower -> network delay."""
    res = {f: v for f, v in fams.items() if f in _RESOURCE_CATEGORY}
    if res:
        return _RESOURCE_CATEGORY[max(res, key=res.get)]
    errors = any(f in fams for f in _ERROR_FAMILIES)
    if errors and "latency" in fams and "network" in fams:
        return "network_loss"
    if errors:
        return "code_error"
    if "latency" in fams or "network" in fams:
        return "network_delay"
    return "unknown"


def describe(category: str) -> str:
    back = {v: k for k, v in MICROSERVICE_NAMES.items()}
    for rule in CATEGORY_RULES:
        if rule.category == back.get(category, category):
            return rule.sentence
    return "the cause is unclear"
