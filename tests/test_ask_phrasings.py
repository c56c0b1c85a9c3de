"""The question parser over a table of phrasings: typos, casing, relative and absolute times, zones
(in the question, explicit, default, across DST), entity names of every kind, ranges — and the
questions it must refuse. Times are written as UTC "YYYY-MM-DD HH:MM"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rca.ask import parse_question
from rca.errors import Ambiguous, BadInput

CATALOG = (
    "service:gateway", "service:agent", "service:rag", "service:embedder", "service:router",
    "model:llama-3-70b", "model:mistral-7b",
    "pod:vllm-llama-3-70b-0", "pod:vllm-llama-3-70b-1", "pod:vllm-llama-3-70b-2",
    "pod:vllm-mistral-7b-0", "pod:vllm-mistral-7b-1",
    "node:gpu-node-1", "node:gpu-node-2", "node:gpu-node-3", "gpu:gpu-node-1/0",
    "tool:web-search", "db:vector-db", "endpoint:/v1/chat/completions",
    "service:checkout", "service:checkout-v2",
)


def _ts(s: str) -> int:
    return int(datetime.strptime(s, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())


def _hm(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


NOW = _ts("2026-11-21 09:30")  # a Saturday
NOW_3PM = _ts("2026-11-21 15:00")
SUMMER = _ts("2026-07-02 09:30")
AFTER_FALL_BACK = _ts("2026-10-26 12:00")  # Europe/Paris left CEST on Sunday 2026-10-25

LAT, ERR = ("latency", "p99"), ("errors", "error_ratio")
TTFT = "time_to_first_token"
TPOT = "time_per_output_token|inter_token_latency"

# (question, options, when: "at" or ("start", "end"), (signal, statistic), metric, scope, intent)
CASES = [
    # --- clock times, most recent past occurrence -------------------------------------------------
    ("why was p99 slow at 20:00?", {}, "2026-11-20 20:00", LAT, None, (), "why"),
    ("Why was P99 latncy high at 8pm on the checkout service?", {}, "2026-11-20 20:00", LAT, None,
     ("service:checkout",), "why"),
    ("why was it slow at 8:15 pm", {}, "2026-11-20 20:15", LAT, None, (), "why"),
    ("why was it slow at 20h", {}, "2026-11-20 20:00", LAT, None, (), "why"),
    ("why was it slow at 20h30", {}, "2026-11-20 20:30", LAT, None, (), "why"),
    ("why was it slow at midnight", {}, "2026-11-21 00:00", LAT, None, (), "why"),
    ("why was it slow at 9", {}, "2026-11-21 09:00", LAT, None, (), "why"),
    ("why was it slow at 10", {}, "2026-11-20 22:00", LAT, None, (), "why"),  # 10:00 today is ahead
    ("why was it slow today at noon", {"now": NOW_3PM}, "2026-11-21 12:00", LAT, None, (), "why"),
    ("why was it slow at 09:15", {}, "2026-11-21 09:15", LAT, None, (), "why"),
    # --- relative --------------------------------------------------------------------------------
    ("why did errors spike 30 minutes ago on gpu-node-2", {}, "2026-11-21 09:00", ERR, None,
     ("node:gpu-node-2",), "why"),
    ("why an hour ago?", {}, "2026-11-21 08:30", LAT, None, (), "why"),
    ("what happened 2 hours ago", {}, "2026-11-21 07:30", LAT, None, (), "why"),
    ("what is the median latency in the last 15 minutes", {}, ("2026-11-21 09:15", "2026-11-21 09:30"),
     ("latency", "p50"), None, (), "what"),
    ("why was it slow in the past 2h", {}, ("2026-11-21 07:30", "2026-11-21 09:30"), LAT, None, (), "why"),
    ("why was it slow since 8am", {}, ("2026-11-21 08:00", "2026-11-21 09:30"), LAT, None, (), "why"),
    ("why was it slow 2 days ago at 20:00", {}, "2026-11-19 20:00", LAT, None, (), "why"),
    # --- days, periods, ranges --------------------------------------------------------------------
    ("what was the eror rate yesterdy at 20:00", {}, "2026-11-20 20:00", ERR, None, (), "what"),
    ("why did throughtput drop last night", {}, ("2026-11-20 18:00", "2026-11-21 06:00"),
     ("token_throughput", "rate"), None, (), "why"),
    ("why was it slow last night at 2am", {}, "2026-11-21 02:00", LAT, None, (), "why"),
    ("why was it slow this morning", {}, ("2026-11-21 06:00", "2026-11-21 09:30"), LAT, None, (), "why"),
    ("why was it slow yesterday evening", {}, ("2026-11-20 18:00", "2026-11-21 00:00"), LAT, None, (), "why"),
    ("why was it slow yesterday", {}, ("2026-11-20 00:00", "2026-11-21 00:00"), LAT, None, (), "why"),
    ("latency on 20 Nov", {}, ("2026-11-20 00:00", "2026-11-21 00:00"), LAT, None, (), "why"),
    ("why was it slow on 2026-11-19", {}, ("2026-11-19 00:00", "2026-11-20 00:00"), LAT, None, (), "why"),
    ("why was it slow last Monday", {}, ("2026-11-16 00:00", "2026-11-17 00:00"), LAT, None, (), "why"),
    ("why was latency high on Nov 20 at 20:00", {}, "2026-11-20 20:00", LAT, None, (), "why"),
    ("why was p95 TPOT slow on Monday at 9am", {}, "2026-11-16 09:00", ("latency", "p95"), TPOT, (), "why"),
    ("why was p99.9 TTFT slow for llama-3-70b between 19:30 and 20:15", {},
     ("2026-11-20 19:30", "2026-11-20 20:15"), ("latency", "p999"), TTFT, ("model:llama-3-70b",), "why"),
    ("why was it slow from 8pm to 9pm on the /v1/chat/completions endpoint", {},
     ("2026-11-20 20:00", "2026-11-20 21:00"), LAT, None, ("endpoint:/v1/chat/completions",), "why"),
    ("why was it slow 19:30-20:15", {}, ("2026-11-20 19:30", "2026-11-20 20:15"), LAT, None, (), "why"),
    ("e2e latency yesterday between 7 and 9pm", {}, ("2026-11-20 19:00", "2026-11-20 21:00"), LAT,
     "e2e_request_latency", (), "why"),
    ("why was it slow between 23:00 and 01:00", {}, ("2026-11-20 23:00", "2026-11-21 01:00"), LAT, None, (),
     "why"),
    # --- ISO stamps -------------------------------------------------------------------------------
    ("why was latency high at 2026-11-20T19:45:00Z", {}, "2026-11-20 19:45", LAT, None, (), "why"),
    ("why was latency high at 2026-11-20T19:45:00+02:00", {}, "2026-11-20 17:45", LAT, None, (), "why"),
    ("what was the average latency on 2026-11-20 19:45", {}, "2026-11-20 19:45", ("latency", "mean"), None,
     (), "what"),
    ("why was it slow between 2026-11-20T19:00:00Z and 2026-11-20T19:30:00Z", {},
     ("2026-11-20 19:00", "2026-11-20 19:30"), LAT, None, (), "why"),
    # --- zones: in the question, explicit, default, DST ------------------------------------------
    ("what was the error rate yesterday at 20:00 CET", {}, "2026-11-20 19:00", ERR, None, (), "what"),
    ("why was it slow at 20:00 Europe/Berlin", {}, "2026-11-20 19:00", LAT, None, (), "why"),
    ("why was it slow at 20:00 PST", {}, "2026-11-21 04:00", LAT, None, (), "why"),
    ("why was it slow at 8pm ET", {}, "2026-11-21 01:00", LAT, None, (), "why"),
    ("why was p99 slow at 20:00 UTC+2", {}, "2026-11-20 18:00", LAT, None, (), "why"),
    ("why was p99 slow at 20:00 +02:00", {}, "2026-11-20 18:00", LAT, None, (), "why"),
    ("why was p99 slow at 2026-11-20T19:45:00+05:30", {}, "2026-11-20 14:15", LAT, None, (), "why"),
    ("why was it slow at 20:00", {"tz": "Asia/Tokyo"}, "2026-11-20 11:00", LAT, None, (), "why"),
    ("why was it slow at 20:00", {"default_tz": "Europe/Paris"}, "2026-11-20 19:00", LAT, None, (), "why"),
    ("why was it slow at 20:00 UTC", {"tz": "Europe/Paris"}, "2026-11-20 19:00", LAT, None, (), "why"),
    ("why was it slow at 20:00", {"default_tz": "Europe/Paris", "now": SUMMER}, "2026-07-01 18:00", LAT, None,
     (), "why"),
    ("why was it slow yesterday", {"default_tz": "Europe/Paris", "now": AFTER_FALL_BACK},
     ("2026-10-24 22:00", "2026-10-25 23:00"), LAT, None, (), "why"),  # a 25-hour day
    ("why was it slow yesterday at 9am EDT", {"now": SUMMER}, "2026-07-01 13:00", LAT, None, (), "why"),
    # --- signals ---------------------------------------------------------------------------------
    ("why did the KV cache fill up on llama 3 70b", {}, "2026-11-21 09:30", ("kv_cache", "value"), None,
     ("model:llama-3-70b",), "why"),
    ("why did preemptions spike on vllm-llama-3-70b-1", {}, "2026-11-21 09:30", ("kv_preempt", "rate"), None,
     ("pod:vllm-llama-3-70b-1",), "why"),
    ("requests per second at 8pm", {}, "2026-11-20 20:00", ("traffic", "rate"), None, (), "why"),
    ("why was GPU utilization low on gpu node 3", {}, "2026-11-21 09:30", ("gpu_util", "value"), None,
     ("node:gpu-node-3",), "why"),
    ("why is the GPU temperature high on gpu-node-1/0", {}, "2026-11-21 09:30", ("gpu_thermal", "value"),
     None, ("gpu:gpu-node-1/0",), "why"),
    ("any XID errors last night?", {}, ("2026-11-20 18:00", "2026-11-21 06:00"), ("gpu_xid", "max"), None, (),
     "is"),
    ("why was tokens per second low yesterday", {}, ("2026-11-20 00:00", "2026-11-21 00:00"),
     ("token_throughput", "rate"), None, (), "why"),
    ("why is time to first token slow for mistral", {}, "2026-11-21 09:30", LAT, TTFT, ("model:mistral-7b",),
     "why"),
    ("queue time at 21:00", {}, "2026-11-20 21:00", LAT, "request_queue_time", (), "why"),
    ("why is the cost up", {}, "2026-11-21 09:30", ("token_throughput", "rate"), None, (), "why"),
    ("why is the model looping", {}, "2026-11-21 09:30", ("token_loop", "value"), None, (), "why"),
    ("why did max_tokens truncations spike", {}, "2026-11-21 09:30", ("token_loop", "value"), None, (),
     "why"),
    ("GPU memory on gpu-node-1", {}, "2026-11-21 09:30", ("gpu_memory", "value"), None, ("node:gpu-node-1",),
     "why"),
    ("why is VRAM full", {}, "2026-11-21 09:30", ("gpu_memory", "value"), None, (), "why"),
    ("why is there a backlog", {}, "2026-11-21 09:30", ("queue_waiting", "value"), None, (), "why"),
    ("how many requests waiting on llama-3-70b", {}, "2026-11-21 09:30", ("queue_waiting", "value"), None,
     ("model:llama-3-70b",), "what"),
    ("why did the router run out of memory", {}, "2026-11-21 09:30", ("memory", "value"), None,
     ("service:router",), "why"),
    ("why is CPU high on the rag service", {}, "2026-11-21 09:30", ("cpu", "value"), None, ("service:rag",),
     "why"),
    ("why were there 500s on the router", {}, "2026-11-21 09:30", ERR, None, ("service:router",), "why"),
    ("Why Are ERRORS High On The Checkout Service", {}, "2026-11-21 09:30", ERR, None, ("service:checkout",),
     "why"),
    ("why was mean latency high", {}, "2026-11-21 09:30", ("latency", "mean"), None, (), "why"),
    ("why was the 99th percentile slow", {}, "2026-11-21 09:30", LAT, None, (), "why"),
    ("why was p90 latency high", {}, "2026-11-21 09:30", ("latency", "p90"), None, (), "why"),
    ("what's the p99 TTFT of pod vllm-mistral-7b-0", {}, "2026-11-21 09:30", LAT, TTFT,
     ("pod:vllm-mistral-7b-0",), "what"),
    # --- scope and intent -------------------------------------------------------------------------
    ("is the gateway healthy?", {}, "2026-11-21 09:30", LAT, None, ("service:gateway",), "is"),
    ("which pod is slowest?", {}, "2026-11-21 09:30", LAT, None, (), "which"),
    ("which service caused the latency spike?", {}, "2026-11-21 09:30", LAT, None, (), "which"),
    ("show me the error rate on the embedder", {}, "2026-11-21 09:30", ERR, None, ("service:embedder",),
     "what"),
    ("is anything wrong?", {}, "2026-11-21 09:30", LAT, None, (), "is"),
    ("why is the web search tool failing", {}, "2026-11-21 09:30", ERR, None, ("tool:web-search",), "why"),
    ("why were requests slow at 20:00 on the gateway and the router", {}, "2026-11-20 20:00", LAT, None,
     ("service:gateway", "service:router"), "why"),
    ("why was chekout slow", {}, "2026-11-21 09:30", LAT, None, ("service:checkout",), "why"),
    ("why was lama-3-70b slow", {}, "2026-11-21 09:30", LAT, None, ("model:llama-3-70b",), "why"),
    ("why was checkout slow", {}, "2026-11-21 09:30", LAT, None, ("service:checkout",), "why"),
    ("why was checkout-v2 slow", {}, "2026-11-21 09:30", LAT, None, ("service:checkout-v2",), "why"),
    ("why is llama slow", {}, "2026-11-21 09:30", LAT, None, ("model:llama-3-70b",), "why"),
    ("why was the vector database slow", {}, "2026-11-21 09:30", LAT, None, ("db:vector-db",), "why"),
    ("why did the agent's latency spike", {}, "2026-11-21 09:30", LAT, None, ("service:agent",), "why"),
    ("is the chat completions endpoint slow", {}, "2026-11-21 09:30", LAT, None,
     ("endpoint:/v1/chat/completions",), "is"),
]


@pytest.mark.parametrize(("text", "opts", "when", "sig", "metric", "scope", "intent"), CASES,
                         ids=[c[0][:60] for c in CASES])
def test_phrasing(text, opts, when, sig, metric, scope, intent):
    opts = dict(opts)
    now = opts.pop("now", NOW)
    q = parse_question(text, now, catalog=CATALOG, **opts)
    if isinstance(when, tuple):
        assert (_hm(q.start), _hm(q.end)) == when
        assert q.at == q.end
    else:
        assert _hm(q.at) == when and q.start is None and q.end is None
    assert (q.signal, q.statistic) == sig
    assert q.metric == metric
    assert q.scope == scope
    assert q.intent == intent
    assert q.at <= now
    assert q.notes, "every parse says what it assumed"


def test_there_are_enough_phrasings():
    assert len(CASES) >= 60 and len(REJECTS) >= 10


def test_zone_of_the_question_lands_in_tz():
    assert parse_question("why at 20:00 CET", NOW).tz == "Europe/Paris"
    assert parse_question("why at 20:00 PST", NOW).tz == "America/Los_Angeles"
    assert parse_question("latency at 2026-11-20T19:45:00+02:00", NOW).tz == "Etc/GMT-2"
    assert parse_question("why at 20:00", NOW, default_tz="Asia/Tokyo").tz == "Asia/Tokyo"
    q = parse_question("why at 20:00 UTC", NOW, tz="Europe/Paris")
    assert q.tz == "Europe/Paris" and any("overridden" in n for n in q.notes)


# (question, options, error class, field, a word the fix must contain, candidates or None)
REJECTS = [
    ("", {}, BadInput, "q", "p99", None),
    ("why at 25:00", {}, BadInput, "q", "20:00", None),
    ("why was it slow at 13pm", {}, BadInput, "q", "8pm", None),
    ("why was it slow on Nov 31", {}, BadInput, "q", "Nov 20", None),
    ("why was it slow at 2026-13-01T10:00:00Z", {}, BadInput, "q", "2026-11-20", None),
    ("why was it slow tomorrow", {}, BadInput, "q", "before now", None),
    ("why was it slow on 2026-11-22", {}, BadInput, "q", "before now", None),
    ("why was it slow today at noon", {}, BadInput, "q", "before now", None),
    ("why was it slow this evening", {}, BadInput, "q", "before now", None),
    ("why was it slow on Nov 22", {}, BadInput, "q", "before now", None),
    ("why was it slow at 20:00", {"tz": "Mars/Base"}, BadInput, "tz", "IANA", None),
    ("why was it slow at 20:00", {"default_tz": "Nowhere/Land"}, BadInput, "tz", "IANA", None),
    ("why was it slow at 20:00 Europe/Parris", {}, BadInput, "tz", "Europe/Paris", None),
    ("why was it slow at 20:00 UTC+5:30", {}, BadInput, "tz", "Asia/Kolkata", None),
    ("what's the p42 latency", {}, BadInput, "q", "p95", None),
    ("x" * 1001, {}, BadInput, "q", "1000", None),
    ("why was it slow on the foobar service", {}, BadInput, "q", "service:", None),
    ("why is gpu-node-9 hot", {}, BadInput, "q", "node:gpu-node-", None),
    ("why is the llama-4 model slow", {}, BadInput, "q", "model:llama-3-70b", None),
    ("why was checkout-v slow", {}, Ambiguous, "q", "service:checkout-v2",
     ["service:checkout", "service:checkout-v2"]),
    ("why was the llama pod slow", {}, Ambiguous, "q", "pod:vllm-llama-3-70b-0",
     ["pod:vllm-llama-3-70b-0", "pod:vllm-llama-3-70b-1", "pod:vllm-llama-3-70b-2"]),
    ("why was vllm-llama-3-70b slow", {}, Ambiguous, "q", "pod:vllm-llama-3-70b-1",
     ["pod:vllm-llama-3-70b-0", "pod:vllm-llama-3-70b-1", "pod:vllm-llama-3-70b-2"]),
    ("why is web-search failing", {"catalog": (*CATALOG, "service:web-search")}, Ambiguous, "q", "tool",
     ["service:web-search", "tool:web-search"]),
]


@pytest.mark.parametrize(("text", "opts", "cls", "field", "fix_has", "candidates"), REJECTS,
                         ids=[(c[0] or "empty")[:50] for c in REJECTS])
def test_rejected(text, opts, cls, field, fix_has, candidates):
    opts = dict(opts)
    catalog = opts.pop("catalog", CATALOG)
    with pytest.raises(cls) as e:
        parse_question(text, NOW, catalog=catalog, **opts)
    assert type(e.value) is cls
    assert e.value.field == field
    assert e.value.fix and fix_has in e.value.fix
    if candidates is not None:
        assert sorted(e.value.candidates) == sorted(candidates)
        assert all(c in e.value.fix for c in candidates)


def test_ambiguous_candidates_are_sorted_best_first():
    with pytest.raises(Ambiguous) as e:
        parse_question("why was checkout-v slow", NOW, catalog=CATALOG)
    # "checkout-v" is one edit from "checkout" and one from "checkout-v2", but every word of
    # "checkout" is in the mention: it ranks first
    assert e.value.candidates[0] == "service:checkout"


def test_the_web_search_tool_settles_the_kind():
    q = parse_question("why is the web-search tool failing", NOW, catalog=(*CATALOG, "service:web-search"))
    assert q.scope == ("tool:web-search",)
