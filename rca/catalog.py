"""The signal catalogue: what a derived series *means*, as data.

Each rule matches a derived signal (metric name + ``stat``) and says which **family** it
belongs to, its **role** in a causal story, its unit, and the category it points to:

* ``load``       demand put on an entity (request rate, prompt tokens): a cause, not an effect
* ``saturation`` how full a resource is (KV cache, CPU, GPU utilisation, queue)
* ``latency``    how slow (quantiles, means of durations)
* ``errors``     how often requests fail
* ``output``     what the entity produces per request (generated tokens, ``length`` finishes)
* ``fault``      a hardware or platform fault signal (XID, throttle violations, restarts)

Rules are tried in order; the first match wins; unmatched signals are ``other``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CATALOG", "SignalInfo", "classify"]


@dataclass(frozen=True)
class SignalInfo:
    family: str
    role: str
    unit: str = ""
    category: str = ""
    bad_direction: str = "up"  # which way is bad: up | down | both


def _r(pattern: str, stats: str, family: str, role: str, unit: str = "", category: str = "",
       bad: str = "up") -> tuple[re.Pattern[str], re.Pattern[str], SignalInfo]:
    return re.compile(pattern, re.I), re.compile(stats), SignalInfo(family, role, unit, category, bad)


# (name regex, stat regex, info). Names are matched with vllm_/vllm: and sglang_/sglang: alike.
CATALOG: tuple[tuple[re.Pattern[str], re.Pattern[str], SignalInfo], ...] = (
    _r(r"^DCGM_FI_DEV_XID_ERRORS$", r".*", "gpu_xid", "fault", "xid", "gpu_hw_fault"),
    _r(r"^DCGM_(FI_DEV_(ROW_REMAP_FAILURE|UNCORRECTABLE_REMAPPED_ROWS|ECC_DBE.*)|EXP_XID_ERRORS_COUNT)$",
       r".*", "gpu_xid", "fault", "", "gpu_hw_fault"),
    _r(r"^DCGM_FI_DEV_(THERMAL|POWER)_VIOLATION$", r".*", "gpu_thermal", "fault", "ns/s",
       "gpu_thermal_throttle"),
    _r(r"^DCGM_FI_DEV_GPU_TEMP$", r".*", "gpu_thermal", "saturation", "C", "gpu_thermal_throttle"),
    _r(r"^DCGM_FI_DEV_SM_CLOCK$", r".*", "gpu_thermal", "saturation", "MHz", "gpu_thermal_throttle",
       "down"),
    _r(r"^DCGM_FI_DEV_(GPU_UTIL|POWER_USAGE|MEM_COPY_UTIL)$|^DCGM_FI_PROF_", r".*", "gpu_util",
       "saturation", "", "gpu_contention"),
    _r(r"^DCGM_FI_DEV_FB_USED$", r".*", "gpu_memory", "saturation", "MiB", "gpu_contention"),
    _r(r"^DCGM_FI_DEV_FB_FREE$", r".*", "gpu_memory", "saturation", "MiB", "gpu_contention", "down"),
    _r(r"(kv_cache_usage_perc|gpu_cache_usage_perc|token_usage)$", r".*", "kv_cache", "saturation",
       "fraction", "kv_cache_exhaustion"),
    _r(r"(num_preemptions|num_retractions|num_retracted_reqs)", r".*", "kv_preempt", "saturation",
       "1/s", "kv_cache_exhaustion"),
    _r(r"(num_requests_waiting|num_queue_reqs|queue_size)$", r".*", "queue_waiting", "saturation", "",
       "kv_cache_exhaustion"),
    _r(r"(num_requests_running|num_running_reqs)$", r".*", "queue", "saturation", ""),
    _r(r"request_success(_total)?$", r"^ratio:finished_reason=(length|repetition)$", "token_loop",
       "output", "fraction", "token_loop"),
    _r(r"request_success(_total)?$", r"^ratio:finished_reason=(abort|error)$", "errors", "errors",
       "fraction", "code_error"),
    _r(r"request_success(_total)?$", r"^ratio:", "finish_mix", "output", "fraction"),
    _r(r"request_success(_total)?$", r"^rate$", "traffic", "load", "1/s", "traffic_surge"),
    _r(r"(request_generation_tokens|generated_tokens|request_prompt_tokens|input_length)$", r"^rate$",
       "traffic", "load", "1/s", "traffic_surge"),
    _r(r"(request_generation_tokens|generated_tokens)$", r".*", "token_loop", "output", "tokens",
       "token_loop"),
    _r(r"generation_tokens(_total)?$", r".*", "token_throughput", "load", "tokens/s"),
    _r(r"(request_prompt_tokens|input_length)$", r"^(p50|p95|p99|mean)$", "input", "load", "tokens",
       "input_drift"),
    _r(r"prompt_tokens(_total)?$", r".*", "token_throughput", "load", "tokens/s"),
    _r(r"(request_prompt_tokens|input_length)$", r"^rate$", "traffic", "load", "1/s", "traffic_surge"),
    _r(r"(time_to_first_token|inter_token_latency|time_per_output_token|e2e_request_latency|"
       r"request_queue_time|duration|latency)", r"^rate$", "traffic", "load", "1/s", "traffic_surge"),
    _r(r"(time_to_first_token|inter_token_latency|time_per_output_token|e2e_request_latency|"
       r"request_queue_time|duration|latency|_seconds$|_s$|_ms$)", r".*", "latency", "latency", "s"),
    _r(r"(http_requests|requests|grpc_server_handled)(_total)?$", r"^error_ratio$", "errors", "errors",
       "fraction", "code_error"),
    _r(r"(http_requests|requests|grpc_server_handled)(_total)?$", r"^ratio:", "status_mix", "errors",
       "fraction"),
    _r(r"(http_requests|requests|workload_ops|_ops$|qps)", r".*", "traffic", "load", "1/s",
       "traffic_surge"),
    _r(r"^trace_error_origin_ratio$", r".*", "errors", "errors", "fraction", "code_error"),
    _r(r"^log_novel_lines$", r".*", "log_novel", "errors", "1/step", "code_error"),
    _r(r"(success_rate)", r".*", "errors", "errors", "%", "code_error", "down"),
    _r(r"(error|fail|exception)", r".*", "errors", "errors", "", "code_error"),
    _r(r"(items|jobs|batch)", r".*", "work", "load", "1/s", "traffic_surge"),
    _r(r"(cpu|load1|load5)", r".*", "cpu", "saturation", "", "resource_cpu"),
    _r(r"(mem|memory)", r".*", "memory", "saturation", "", "resource_memory"),
    _r(r"(disk|fs_|filesystem|io_)", r".*", "disk", "saturation", "", "disk"),
    _r(r"(socket|sockstat|tcp_(established|inuse|alloc|tw|orphan)|conntrack|open_fds|file_descriptors)",
       r".*", "socket", "saturation", "", "socket"),
    _r(r"(retrans|packet_loss|_loss$|_drop(s|ped)?(_total)?$)", r".*", "network_loss", "saturation", "",
       "network_loss"),
    _r(r"(network|net_|_bytes$|transmit|receive|packets)", r".*", "network", "load", "", "network_delay"),
    _r(r"(syscall)", r".*", "syscall", "saturation", "", "resource_cpu"),
)

_OTHER = SignalInfo("other", "other")
_PREFIX = re.compile(r"^(vllm|sglang)[:_]")


@lru_cache(maxsize=8192)
def classify(name: str, stat: str = "value") -> SignalInfo:
    """The catalogue entry of a derived signal (``other`` when nothing matches). Pure, so
    cached: an analysis asks about the same few hundred (name, stat) pairs thousands of times."""
    bare = _PREFIX.sub("", name)
    for name_re, stat_re, info in CATALOG:
        if (name_re.search(name) or name_re.search(bare)) and stat_re.search(stat):
            return info
    return _OTHER
